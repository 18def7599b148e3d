/**
 * Validates a submission before anything is stored and resolves it into a JobSpec: queue chosen,
 * defaults filled in, account resolved. Every rejection is an HpcqError with a stable code naming
 * the field. Pure but for the UserDirectory port.
 */
import { createHash } from 'node:crypto';
import type { ClusterConfig, DaemonConfig, QueueConfig } from '../config/daemon-config.js';
import { clusterNotFound, HpcqError, invalidParameter, queueNotFound } from './errors.js';
import type { DependencyCondition, JobDependency } from './dependency.js';
import { MAX_RETRY_BACKOFF_SECONDS, MAX_RETRY_COUNT, type RetryPolicy } from './retry.js';
import { JOB_UUID_PATTERN, type JobSpec } from './job.js';
import { quoteValue } from './quote.js';
import { assertMayRunAs, assertQueueAllows, assertRunnableAccount, isAdmin, type Principal } from './access-policy.js';
import type { UserAccount, UserDirectory } from './ports.js';
import { parseResourceLimit } from './resource-limit.js';
import type { SubmitRequest } from './submit-request.js';

export const JOB_NAME_MAX = 64;
export const CMD_LINE_MAX_BYTES = 64 * 1024;
export const PATH_MAX_BYTES = 4096;
export const CLIENT_TOKEN_MAX = 64;
export const PRIORITY_MAX = 10_000;
/** BatchCompute's limit for a job description. */
export const DESCRIPTION_MAX = 1024;
export const ARGV_MAX_ENTRIES = 4096;
export const ENV_MAX_ENTRIES = 256;
export const ENV_MAX_BYTES = 64 * 1024;
export const JOB_NAME_RE = /^[A-Za-z_-][A-Za-z0-9_-]*$/;
/** POSIX portable user names (plus the common trailing $ of machine accounts is not accepted). */
const USER_NAME_RE = /^[a-z_][a-z0-9_.-]{0,31}$/i;

export interface SubmitContext {
  config: Pick<DaemonConfig, 'clusters' | 'clockSkewSeconds' | 'access' | 'maxArrayCount'>;
  /** Who submits: the run_user defaults to its account, and it must be allowed to run as it. */
  principal: Principal;
  users: UserDirectory;
  /** uid the daemon runs as: when not 0, jobs may run only as that same account. */
  daemonUid: number;
  /**
   * The id of the job a dependency names (numeric id or uuid), if the submitter may see it; throws
   * ResourceNotFound.Job (field depends_on) otherwise.
   */
  findDependency?: (idOrUuid: string) => Promise<number>;
  nowMs: number;
}

export interface ValidatedSubmit {
  spec: JobSpec;
  queue: QueueConfig;
  /**
   * Identifies the request for client_token idempotency (the timestamp is left out: retries resend
   * it). Empty when the request has no client_token.
   */
  fingerprint: string;
}

export async function validateSubmit(req: SubmitRequest, ctx: SubmitContext): Promise<ValidatedSubmit> {
  checkName(req.name);
  checkClientToken(req.clientToken);
  checkTimestamp(req.timestamp, ctx.nowMs, ctx.config.clockSkewSeconds);
  for (const [field, value] of [
    ['core_limit', req.coreLimit],
    ['mem_limit', req.memLimit],
    ['time_limit', req.timeLimit],
    ['priority', req.priority],
  ] as const) {
    if (value < 0) throw invalidParameter('InvalidParameterValue.Negative', field, `${field} must not be negative, got ${value}`);
    if (value === Infinity) throw invalidParameter('InvalidParameterValue.OutOfRange', field, `${field} is too large`);
    if (!Number.isSafeInteger(value)) throw invalidParameter('InvalidParameterValue.NotInteger', field, `${field} must be an integer`);
  }
  if (req.priority > PRIORITY_MAX) {
    throw invalidParameter('InvalidParameterValue.PriorityTooLarge', 'priority', `priority must be at most ${PRIORITY_MAX}`);
  }
  if (req.submitType !== 0 && req.submitType !== 1) {
    throw invalidParameter('InvalidParameterValue.SubmitType', 'submit_type', 'submit_type must be 0 (console) or 1 (cli)');
  }
  checkCommand(req.cmdLine, req.inputFile, req.argv);
  checkEnv(req.env);
  checkDescription(req.description);
  const dependencyConditions = checkDependencies(req.dependsOn);
  const retry = checkRetry(req.retry);
  const array = checkArray(req.array, ctx.config.maxArrayCount);
  const beginAtMs = checkBeginTime(req.beginTime, ctx.nowMs);
  const { limits: resourceLimits, canonical: resourceLimit } = parseResourceLimit(req.resourceLimit);

  const cluster = resolveCluster(req, ctx.config.clusters);
  const queue = resolveQueue(req, cluster);
  const cores = req.coreLimit || queue.defaultCores;
  const memoryLimitMb = req.memLimit || queue.defaultMemMb;
  const timeLimitSeconds = req.timeLimit || queue.defaultTimeSeconds;
  if (cores > queue.maxCores) {
    throw invalidParameter('InvalidParameterValue.CoreLimitTooLarge', 'core_limit', `core_limit ${cores} exceeds queue ${queue.hpcqueueId}'s maximum of ${queue.maxCores}`);
  }
  if (memoryLimitMb > queue.maxMemMb) {
    throw invalidParameter('InvalidParameterValue.MemLimitTooLarge', 'mem_limit', `mem_limit ${memoryLimitMb} MiB exceeds queue ${queue.hpcqueueId}'s maximum of ${queue.maxMemMb} MiB`);
  }
  if (timeLimitSeconds > queue.maxTimeSeconds) {
    throw invalidParameter('InvalidParameterValue.TimeLimitTooLarge', 'time_limit', `time_limit ${timeLimitSeconds} s exceeds queue ${queue.hpcqueueId}'s maximum of ${queue.maxTimeSeconds} s`);
  }

  const account = await resolveRunUser(req.runUser, ctx);
  const accessContext = { access: ctx.config.access, daemonUid: ctx.daemonUid };
  assertRunnableAccount(account, accessContext);
  assertMayRunAs(ctx.principal, account, accessContext);
  assertQueueAllows(queue, account);
  const dependsOn: JobDependency[] = [];
  for (const [i, dep] of req.dependsOn.entries()) {
    if (!ctx.findDependency) throw invalidParameter('InvalidParameter.DependsOn', 'depends_on', 'dependencies cannot be resolved here');
    dependsOn.push({ jobId: await ctx.findDependency(dep.jobId), condition: dependencyConditions[i]! });
  }
  const stdoutPathTemplate = resolveRedirectPath('stdout_redirect_path', req.stdoutRedirectPath || '~/hpcq-%j.out', account.home);
  const stderrPathTemplate = resolveRedirectPath('stderr_redirect_path', req.stderrRedirectPath || '~/hpcq-%j.err', account.home);

  const spec: JobSpec = {
    name: req.name,
    clusterId: cluster.clusterId,
    zone: cluster.zone,
    hpcqueueId: queue.hpcqueueId,
    schedulerQueueName: queue.schedulerQueueName,
    runUser: account.name,
    uid: account.uid,
    gid: account.gid,
    home: account.home,
    shell: account.shell,
    cmdLine: req.cmdLine,
    inputFile: req.inputFile,
    cores,
    memoryLimitMb,
    timeLimitSeconds,
    resourceLimit,
    resourceLimits,
    priority: req.priority,
    stdoutPathTemplate,
    stderrPathTemplate,
    submitType: req.submitType,
    clientToken: req.clientToken,
    clientTimestamp: req.timestamp,
    argv: req.argv,
    env: req.env,
    workingDir: resolveWorkingDir(req.workingDir, account.home),
    description: req.description,
    dependsOn,
    ...(retry ? { retry } : {}),
    ...(array ? { array } : {}),
    ...(beginAtMs !== undefined ? { beginAtMs } : {}),
    ...(req.hold ? { holdAtSubmit: isAdmin(ctx.principal, accessContext) ? ('admin' as const) : ('user' as const) } : {}),
  };
  // Only a client_token needs the fingerprint; hashing every request would cost the submit path.
  return { spec, queue, fingerprint: spec.clientToken === '' ? '' : fingerprintOf(spec) };
}

function fingerprintOf(spec: JobSpec): string {
  const { clientTimestamp: _ignored, uid: _u, gid: _g, home: _h, shell: _s, ...stable } = spec;
  return createHash('sha256').update(JSON.stringify(stable)).digest('base64url').slice(0, 32);
}

function checkName(name: string): void {
  if (name.length === 0) throw invalidParameter('MissingParameter.JobName', 'name', 'name is required');
  if (name.length > JOB_NAME_MAX) {
    throw invalidParameter('InvalidParameter.JobNameTooLong', 'name', `name must be at most ${JOB_NAME_MAX} characters, got ${name.length}`);
  }
  if (!JOB_NAME_RE.test(name)) {
    throw invalidParameter('InvalidParameter.JobNameMalformed', 'name', 'name may contain only letters, digits, - and _, and must not start with a digit');
  }
}

/** client_token: at most CLIENT_TOKEN_MAX printable ASCII characters (a submit's or a group's). */
export function checkClientToken(token: string): void {
  if (token.length > CLIENT_TOKEN_MAX) {
    throw invalidParameter('InvalidParameter.ClientTokenTooLong', 'client_token', `client_token must be at most ${CLIENT_TOKEN_MAX} characters`);
  }
  if (!/^[\x21-\x7e]*$/.test(token)) {
    throw invalidParameter('InvalidParameter.ClientTokenMalformed', 'client_token', 'client_token must be printable ASCII without spaces');
  }
}

/** Accepts RFC 3339 / ISO 8601 with a zone, or Unix seconds. Empty means "not given". */
export function parseTimestamp(text: string): number | undefined {
  if (/^\d{9,11}(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

function checkTimestamp(text: string, nowMs: number, skewSeconds: number): void {
  if (text === '') return;
  const ms = parseTimestamp(text);
  if (ms === undefined) {
    throw invalidParameter('InvalidParameter.TimestampMalformed', 'timestamp', 'timestamp must be RFC 3339 (2026-01-02T03:04:05Z) or Unix seconds');
  }
  if (Math.abs(ms - nowMs) > skewSeconds * 1000) {
    throw invalidParameter('InvalidParameterValue.TimestampOutOfRange', 'timestamp', `timestamp differs from the daemon's clock by more than ${skewSeconds} s`);
  }
}

function hasControl(text: string): boolean {
  return text.includes('\0') || text.includes('\n') || text.includes('\r');
}

function checkCommand(cmdLine: string, inputFile: string, argv: readonly string[]): void {
  const given = [cmdLine !== '', inputFile !== '', argv.length > 0].filter(Boolean).length;
  if (given > 1) {
    throw invalidParameter('InvalidParameter.InvalidParameterCombination', 'cmd_line', 'give exactly one of cmd_line, input_file and argv');
  }
  if (given === 0) {
    throw invalidParameter('MissingParameter.Command', 'cmd_line', 'one of cmd_line, input_file and argv is required');
  }
  if (argv.length > 0) {
    if (argv.length > ARGV_MAX_ENTRIES) throw invalidParameter('InvalidParameter.ArgvTooLong', 'argv', `argv must have at most ${ARGV_MAX_ENTRIES} entries`);
    if (argv[0] === '') throw invalidParameter('InvalidParameter.ArgvMalformed', 'argv', 'argv[0], the program, must not be empty');
    // The program is started through env(1), which would take NAME=value as a variable, not a program.
    if (argv[0]!.includes('=')) throw invalidParameter('InvalidParameter.ArgvMalformed', 'argv', "argv[0], the program, must not contain '='");
    let bytes = 0;
    for (const arg of argv) {
      if (arg.includes('\0')) throw invalidParameter('InvalidParameter.ArgvMalformed', 'argv', 'argv entries must not contain NUL');
      bytes += Buffer.byteLength(arg) + 1;
    }
    if (bytes > CMD_LINE_MAX_BYTES) throw invalidParameter('InvalidParameter.ArgvTooLong', 'argv', `argv must be at most ${CMD_LINE_MAX_BYTES} bytes in all`);
    return;
  }
  if (cmdLine !== '') {
    if (Buffer.byteLength(cmdLine) > CMD_LINE_MAX_BYTES) {
      throw invalidParameter('InvalidParameter.CmdLineTooLong', 'cmd_line', `cmd_line must be at most ${CMD_LINE_MAX_BYTES} bytes`);
    }
    if (cmdLine.includes('\0')) throw invalidParameter('InvalidParameter.CmdLineMalformed', 'cmd_line', 'cmd_line must not contain NUL');
    return;
  }
  if (hasControl(inputFile)) throw invalidParameter('InvalidParameter.InputFileMalformed', 'input_file', 'input_file must not contain NUL or newlines');
  if (Buffer.byteLength(inputFile) > PATH_MAX_BYTES) throw invalidParameter('InvalidParameter.InputFileTooLong', 'input_file', `input_file must be at most ${PATH_MAX_BYTES} bytes`);
  if (!inputFile.startsWith('/')) throw invalidParameter('InvalidParameter.InputFileNotAbsolute', 'input_file', 'input_file must be an absolute path');
}

/** Environment names the job may set: not the daemon's own (HPCQ_) nor the scheduler's, whose values jobs trust. */
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED_ENV_PREFIXES = ['HPCQ_', 'SLURM_', 'SBATCH_', 'SRUN_', 'SALLOC_'];

function checkEnv(env: Readonly<Record<string, string>>): void {
  const names = Object.keys(env);
  if (names.length > ENV_MAX_ENTRIES) throw invalidParameter('InvalidParameter.EnvTooLarge', 'env', `env may have at most ${ENV_MAX_ENTRIES} variables, got ${names.length}`);
  let bytes = 0;
  for (const name of names) {
    if (!ENV_NAME_RE.test(name) || name.length > 256) {
      throw invalidParameter('InvalidParameter.EnvName', 'env', `env name ${quoteValue(name)} must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)`);
    }
    const reserved = RESERVED_ENV_PREFIXES.find((p) => name.toUpperCase().startsWith(p));
    if (reserved) throw invalidParameter('InvalidParameter.EnvName', 'env', `env name ${quoteValue(name)} is reserved (${reserved}* is set by the scheduler)`);
    const value = env[name]!;
    if (value.includes('\0')) throw invalidParameter('InvalidParameter.EnvName', 'env', `env value of ${name} must not contain NUL`);
    bytes += name.length + Buffer.byteLength(value) + 2;
  }
  if (bytes > ENV_MAX_BYTES) throw invalidParameter('InvalidParameter.EnvTooLarge', 'env', `env must be at most ${ENV_MAX_BYTES} bytes in all, got ${bytes}`);
}

/** The retry policy as the job keeps it; undefined when no further attempt was asked for. */
function checkRetry(retry: SubmitRequest['retry']): RetryPolicy | undefined {
  if (!retry || retry.maxRetryCount === 0) return undefined;
  if (!Number.isInteger(retry.maxRetryCount) || retry.maxRetryCount < 0 || retry.maxRetryCount > MAX_RETRY_COUNT) {
    throw invalidParameter('InvalidParameterValue.MaxRetryCount', 'retry.max_retry_count', `max_retry_count must be 0..${MAX_RETRY_COUNT}, got ${retry.maxRetryCount}`);
  }
  if (!Number.isInteger(retry.backoffSeconds) || retry.backoffSeconds < 0 || retry.backoffSeconds > MAX_RETRY_BACKOFF_SECONDS) {
    throw invalidParameter('InvalidParameterValue.RetryBackoff', 'retry.backoff_seconds', `backoff_seconds must be 0..${MAX_RETRY_BACKOFF_SECONDS}, got ${retry.backoffSeconds}`);
  }
  if (retry.exitCodes.length > 255 || retry.exitCodes.some((c) => !Number.isInteger(c) || c < 1 || c > 255)) {
    throw invalidParameter('InvalidParameterValue.RetryExitCodes', 'retry.exit_codes', 'exit_codes must be exit statuses 1..255');
  }
  return {
    maxRetryCount: retry.maxRetryCount,
    retryOnTimeout: retry.retryOnTimeout,
    retryOnOutOfMemory: retry.retryOnOutOfMemory,
    exitCodes: [...retry.exitCodes],
    backoffSeconds: retry.backoffSeconds,
  };
}

/** begin_time as Unix ms; undefined when empty or already past (the job may start now). */
function checkBeginTime(text: string, nowMs: number): number | undefined {
  if (text === '') return undefined;
  const ms = parseTimestamp(text);
  if (ms === undefined) {
    throw invalidParameter('InvalidParameterValue.BeginTime', 'begin_time', `begin_time ${quoteValue(text)} must be RFC 3339 (2026-01-02T03:04:05Z) or Unix seconds`);
  }
  return ms > nowMs ? ms : undefined;
}

/** The array spec as the job keeps it; undefined for a plain job. */
function checkArray(array: SubmitRequest['array'], maxArrayCount: number): { count: number; parallelism: number } | undefined {
  if (!array) return undefined;
  if (!Number.isInteger(array.count) || array.count < 1 || array.count > maxArrayCount) {
    throw invalidParameter('InvalidParameterValue.ArrayCount', 'array.count', `array.count must be 1..${maxArrayCount} (max_array_count), got ${array.count}`);
  }
  if (!Number.isInteger(array.parallelism) || array.parallelism < 0) {
    throw invalidParameter('InvalidParameterValue.ArrayParallelism', 'array.parallelism', `array.parallelism must be 0 (no cap) or more, got ${array.parallelism}`);
  }
  return { count: array.count, parallelism: array.parallelism };
}

/** At most this many dependencies per job. */
export const DEPENDENCIES_MAX = 64;
/** DependencyCondition numbers of the proto, in order (0 = unspecified = afterok). */
const CONDITION_OF_NUMBER: readonly DependencyCondition[] = ['afterok', 'afterok', 'afterany', 'afternotok', 'after'];

/** Checks the form of depends_on; returns each entry's condition. The jobs are looked up later. */
function checkDependencies(dependsOn: SubmitRequest['dependsOn']): DependencyCondition[] {
  if (dependsOn.length > DEPENDENCIES_MAX) {
    throw invalidParameter('InvalidParameter.DependsOnTooLong', 'depends_on', `depends_on may name at most ${DEPENDENCIES_MAX} jobs`);
  }
  return dependsOn.map((dep) => {
    const condition = CONDITION_OF_NUMBER[dep.condition];
    if (condition === undefined) throw invalidParameter('InvalidParameterValue.DependencyCondition', 'depends_on', `unknown dependency condition ${dep.condition}`);
    if (!/^\d{1,15}$/.test(dep.jobId) && !JOB_UUID_PATTERN.test(dep.jobId)) {
      throw invalidParameter('InvalidParameter.JobIdMalformed', 'depends_on', `depends_on job_id ${quoteValue(dep.jobId)} must be a numeric job id or an hpcjob-xxxxxxxx uuid`);
    }
    return condition;
  });
}

function checkDescription(description: string): void {
  if (description.length > DESCRIPTION_MAX) {
    throw invalidParameter('InvalidParameter.JobDescriptionTooLong', 'description', `description must be at most ${DESCRIPTION_MAX} characters, got ${description.length}`);
  }
  if (description.includes('\0')) throw invalidParameter('InvalidParameter.JobDescriptionMalformed', 'description', 'description must not contain NUL');
}

/** The directory the job starts in: working_dir (absolute, entered as the user at launch), else home. */
function resolveWorkingDir(workingDir: string, home: string): string {
  if (workingDir === '') return home;
  if (hasControl(workingDir)) throw invalidParameter('InvalidParameter.WorkingDirMalformed', 'working_dir', 'working_dir must not contain NUL or newlines');
  if (!workingDir.startsWith('/')) throw invalidParameter('InvalidParameter.WorkingDirNotAbsolute', 'working_dir', `working_dir must be an absolute path, got ${quoteValue(workingDir)}`);
  if (Buffer.byteLength(workingDir) > PATH_MAX_BYTES) throw invalidParameter('InvalidParameter.WorkingDirTooLong', 'working_dir', `working_dir must be at most ${PATH_MAX_BYTES} bytes`);
  return workingDir;
}

function resolveCluster(req: SubmitRequest, clusters: readonly ClusterConfig[]): ClusterConfig {
  let cluster: ClusterConfig | undefined;
  if (req.clusterId === '') {
    if (clusters.length !== 1) throw invalidParameter('MissingParameter.ClusterId', 'cluster_id', 'cluster_id is required when more than one cluster is configured');
    cluster = clusters[0];
  } else {
    cluster = clusters.find((c) => c.clusterId === req.clusterId);
  }
  if (!cluster) throw clusterNotFound(req.clusterId);
  if (req.zone !== '' && req.zone !== cluster.zone) {
    throw invalidParameter('InvalidZone.MismatchRegion', 'zone', `zone ${quoteValue(req.zone)} does not match cluster ${cluster.clusterId}'s zone ${cluster.zone}`);
  }
  return cluster;
}

function resolveQueue(req: SubmitRequest, cluster: ClusterConfig): QueueConfig {
  const byId = req.hpcqueueId === '' ? undefined : cluster.queues.find((q) => q.hpcqueueId === req.hpcqueueId);
  const byName = req.schedulerQueueName === '' ? undefined : cluster.queues.find((q) => q.schedulerQueueName === req.schedulerQueueName);
  if (req.hpcqueueId !== '' && !byId) throw queueNotFound(req.hpcqueueId, 'hpcqueue_id', cluster.clusterId);
  if (req.schedulerQueueName !== '' && !byName) throw queueNotFound(req.schedulerQueueName, 'scheduler_queue_name', cluster.clusterId);
  if (byId && byName && byId !== byName) {
    throw invalidParameter('InvalidParameter.InvalidParameterCombination', 'scheduler_queue_name', `hpcqueue_id ${byId.hpcqueueId} and scheduler_queue_name ${byName.schedulerQueueName} name different queues`);
  }
  const queue = byId ?? byName ?? cluster.queues.find((q) => q.isDefault);
  if (!queue) throw new HpcqError('ResourceNotFound.Queue', 'not_found', `cluster ${cluster.clusterId} has no default queue`, 'hpcqueue_id');
  return queue;
}

/** The account a job runs as: run_user, or when empty the caller's own account. */
async function resolveRunUser(runUser: string, ctx: SubmitContext): Promise<UserAccount> {
  if (runUser === '') {
    if (ctx.principal.account) return ctx.principal.account;
    throw invalidParameter('MissingParameter.RunUser', 'run_user', `run_user is required: ${ctx.principal.name} is not a local account`);
  }
  if (!USER_NAME_RE.test(runUser)) throw invalidParameter('InvalidParameter.RunUserMalformed', 'run_user', `run_user ${quoteValue(runUser)} is not a valid user name`);
  const account = await ctx.users.lookup(runUser);
  if (!account) throw invalidParameter('InvalidParameter.RunUserNotFound', 'run_user', `run_user ${runUser} is not an account on this node`);
  return account;
}

/** Resolves `~/` to the user's home and checks the path; %j %x %u stay for the store to expand. */
function resolveRedirectPath(field: string, path: string, home: string): string {
  if (hasControl(path)) throw invalidParameter('InvalidParameter.RedirectPathMalformed', field, `${field} must not contain NUL or newlines`);
  if (path.replace(/%[jxuaA%]/g, '').includes('%')) throw invalidParameter('InvalidParameter.RedirectPathMalformed', field, `${field} may use only %j, %x, %u, %A, %a and %%`);
  const resolved = path.startsWith('~/') ? `${home.replace(/\/+$/, '')}/${path.slice(2)}` : path;
  if (!resolved.startsWith('/')) throw invalidParameter('InvalidParameter.RedirectPathNotAbsolute', field, `${field} must be absolute or start with ~/`);
  if (resolved.split('/').some((part) => part === '..')) throw invalidParameter('InvalidParameter.RedirectPathTraversal', field, `${field} must not contain .. components`);
  if (resolved.endsWith('/')) throw invalidParameter('InvalidParameter.RedirectPathMalformed', field, `${field} names a directory`);
  // Leave room for %j growing into a long job id.
  if (Buffer.byteLength(resolved) > PATH_MAX_BYTES - 64) throw invalidParameter('InvalidParameter.RedirectPathTooLong', field, `${field} must be at most ${PATH_MAX_BYTES - 64} bytes`);
  return resolved;
}
