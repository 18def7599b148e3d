/** A submission as it arrives, before validation: QingCloud EHPC job/submitJob fields (camelCase). */
export interface SubmitRequest {
  timestamp: string;
  clusterId: string;
  zone: string;
  runUser: string;
  name: string;
  cmdLine: string;
  inputFile: string;
  coreLimit: number;
  memLimit: number;
  timeLimit: number;
  resourceLimit: string;
  hpcqueueId: string;
  schedulerQueueName: string;
  stdoutRedirectPath: string;
  stderrRedirectPath: string;
  priority: number;
  submitType: number;
  clientToken: string;
}
