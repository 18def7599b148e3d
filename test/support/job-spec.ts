// A valid JobSpec for tests that need one; pure (no store, no I/O), so unit tests can use it.
import type { Job, JobSpec } from '../../src/core/job.js';

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
 * `run` overrides the run fields (id, uuid, enforcement, ...).
 */
export function testRunningJob(spec: Partial<JobSpec>, run: Partial<Job> = {}): Job {
  const now = Date.now();
  return {
    ...testJobSpec(spec),
    id: 1,
    uuid: 'hpcjob-00000001',
    state: 'RUNNING',
    reason: '',
    exitCode: 0,
    termSignal: 0,
    submitTimeMs: now,
    startTimeMs: now,
    endTimeMs: 0,
    stdoutPath: '/dev/null',
    stderrPath: '/dev/null',
    enforcement: '',
    limitHit: '',
    eventCount: 0,
    attempt: 1,
    previousAttempts: [],
    eligibleAtMs: 0,
    heldBy: '',
    backendJobId: '',
    backendSubmitting: false,
    ...run,
  };
}
