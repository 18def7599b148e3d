/**
 * Job groups at scale: a 1,000-task DAG of `true` tasks as a chain (each task after the previous)
 * and as a wide fan-out (one root, 999 tasks after it). Measures the SubmitJobGroup latency (one
 * RPC, one synced write), the time until every task has ended, and the daemon's CPU per finished
 * task (dispatch, dependency reviews, launches and outcomes together).
 */
import { availableParallelism } from 'node:os';
import type { SubmitJobGroupRequest, SubmitJobGroupResponse, SubmitJobRequest } from '../gen/hpcq/v1/job_service.js';
import { BenchDaemon, benchConfig, EMPTY_SUBMIT } from './bench-daemon.js';

export interface GroupFigures {
  shape: 'chain' | 'fan-out';
  tasks: number;
  submitMs: number;
  allDoneSeconds: number;
  daemonCpuMsPerTask: number;
}

export async function groupRun(runUser: string, shape: GroupFigures['shape'], tasks: number): Promise<GroupFigures> {
  const daemon = await BenchDaemon.start(benchConfig({ cores: availableParallelism() }));
  try {
    const names = Array.from({ length: tasks }, (_, i) => `t${i}`);
    const request: SubmitJobGroupRequest = {
      name: `bench-${shape}`,
      tasks: names.map((taskName): SubmitJobRequest => ({ ...EMPTY_SUBMIT, taskName, runUser, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' })),
      dependences: names.slice(1).map((endTask, i) => ({ startTask: shape === 'chain' ? names[i]! : names[0]!, endTask })),
      clientToken: '',
    };
    const cpu0 = daemon.cpuMs();
    const t0 = performance.now();
    const res = await new Promise<SubmitJobGroupResponse>((resolve, reject) => daemon.client.submitJobGroup(request, (err, r) => (err ? reject(err) : resolve(r))));
    const submitMs = performance.now() - t0;
    // The last task of a chain ends last; in a fan-out, wait for every task.
    const ids = shape === 'chain' ? [res.taskJobIds[names[tasks - 1]!]!] : Object.values(res.taskJobIds);
    for (const id of ids) await daemon.waitFor(id, ['completed', 'failed', 'cancelled', 'node_fail']);
    return { shape, tasks, submitMs, allDoneSeconds: (performance.now() - t0) / 1000, daemonCpuMsPerTask: (daemon.cpuMs() - cpu0) / tasks };
  } finally {
    await daemon.close();
  }
}
