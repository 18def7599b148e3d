// A valid JobSpec for tests that need one; pure (no store, no I/O), so unit tests can use it.
import { type Job, type JobSpec, newPendingJob, transition } from '../../src/core/job.js';

/** A valid JobSpec (job `job` of alice in c1/z1, queue q1 `batch`, outputs in /tmp); `overrides` win. */
export function testJobSpec(overrides: Partial<JobSpec> = {}): JobSpec {
  return {
    name: 'job',
    clusterId: 'c1',
    zone: 'z1',
    hpcqueueId: 'q1',
    schedulerQueueName: 'batch',
    runUser: 'alice',
    uid: 1000,
    gid: 1000,
    home: '/home/alice',
    shell: '/bin/sh',
    cmdLine: 'true',
    inputFile: '',
    cores: 1,
    memoryLimitMb: 64,
    timeLimitSeconds: 60,
    resourceLimit: '',
    resourceLimits: {},
    priority: 0,
    stdoutPathTemplate: '/tmp/%j.out',
    stderrPathTemplate: '/tmp/%j.err',
    submitType: 0,
    clientToken: '',
    clientTimestamp: '',
    argv: [],
    env: {},
    workingDir: '/home/alice',
    description: '',
    dependsOn: [],
    ...overrides,
  };
}

/**
 * A job of `spec` already RUNNING (as the executor gets it from the engine), outputs discarded;
 * `run` overrides the run fields (id, uuid, enforcement, ...). Built as the engine builds it:
 * newPendingJob, then the RUNNING transition.
 */
export function testRunningJob(spec: Partial<JobSpec>, run: Partial<Job> = {}): Job {
  const now = Date.now();
  const pending = newPendingJob(testJobSpec({ stdoutPathTemplate: '/dev/null', stderrPathTemplate: '/dev/null', ...spec }), {
    id: run.id ?? 1,
    uuid: run.uuid ?? 'hpcjob-00000001',
    reason: '',
    submitTimeMs: now,
  });
  return { ...transition(pending, 'RUNNING', '', now).job, ...run };
}
