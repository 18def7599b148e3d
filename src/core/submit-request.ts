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
  /** The command as an argument vector (no shell); empty when cmd_line or input_file is used. */
  argv: readonly string[];
  /** Variables added to the job's environment. */
  env: Readonly<Record<string, string>>;
  /** Absolute directory to start in; empty = the run user's home. */
  workingDir: string;
  description: string;
  /** Jobs this one waits for: job id or uuid, and the proto's DependencyCondition number (0 = afterok). */
  dependsOn: readonly { jobId: string; condition: number }[];
  /** Run this many instances of the job; undefined = one job. */
  array?: { count: number; parallelism: number } | undefined;
  /** Not before this time (RFC 3339 or Unix seconds); empty = now. */
  beginTime: string;
  /** Store the job held. */
  hold: boolean;
  /** The task's name inside a job group; empty for a job on its own. */
  taskName: string;
  /** Retry policy as sent; undefined = none. */
  retry?: { maxRetryCount: number; retryOnTimeout: boolean; retryOnOutOfMemory: boolean; exitCodes: readonly number[]; backoffSeconds: number } | undefined;
}
