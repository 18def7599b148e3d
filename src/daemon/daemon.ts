/**
 * The composition root: builds every component from the compiled config, passes dependencies in,
 * and owns the start/stop order.
 *
 * Lifecycle:
 * - created: nothing opened.
 * - starting: state dir checked and locked (hpcqd.pid: a second daemon on the same state dir
 *   fails here, before it touches anything; LevelDB's LOCK backs this up) -> database opened ->
 *   enforcement detected -> engine started
 *   (active jobs loaded, running jobs re-attached) -> housekeeping -> audit log and token key
 *   opened -> gRPC serving.
 * - running. While the store refuses writes, health says so (store-health.ts). reconfigure()
 *   (SIGHUP, AccessService.Reconfigure) applies a reread configuration: access policy, queue limits,
 *   new queues, the TLS certificate; a file with errors changes nothing.
 * - stopping (stop()): as below; the audit log is closed after the last RPC.
 * - stopping (stop()): health NOT_SERVING -> open WatchJob streams ended (UNAVAILABLE: they last
 *   as long as their job and would only hold up the drain) -> in-flight RPCs drained (deadline) ->
 *   dispatching stopped, launches in progress finished, running jobs left to their supervisors ->
 *   state flushed -> database closed last. Idempotent; a second call returns the same promise.
 *   A stop() during start() makes start() fail once the step in progress is done.
 */
import { AccessGate } from '../access/access-gate.js';
import { AuditLog } from '../access/audit-log.js';
import { TokenAuthority } from '../access/token-authority.js';
import { createAccessService } from '../api/access-service.js';
import { GrpcServer } from '../api/grpc-server.js';
import { createJobService } from '../api/job-service.js';
import { createQueueService } from '../api/queue-service.js';
import type { DaemonConfig } from '../config/daemon-config.js';
import { ConfigError } from '../config/load-config.js';
import { HpcqError } from '../core/errors.js';
import { JobEngine } from '../engine/job-engine.js';
import { ScheduleRunner } from '../engine/schedule-runner.js';
import { createScheduleService } from '../api/schedule-service.js';
import { SupervisedExecutor } from '../exec/supervised-executor.js';
import type { Logger } from '../logger.js';
import { LevelJobStore } from '../store/level-job-store.js';
import { GetentUserDirectory } from '../system/getent-user-directory.js';
import { selectEnforcement, type EnforcementSelection } from './enforcement.js';
import { Housekeeping } from './housekeeping.js';
import { StoreHealthWatch } from './store-health.js';
import { lockStateDir, prepareStateDir } from './state-dir.js';

/** Settings read once at start: a reload that changes them says a restart is needed. */
const RESTART_ONLY_SETTINGS: ReadonlyArray<readonly [string, (a: DaemonConfig, b: DaemonConfig) => boolean]> = [
  ['state_dir', (a, b) => a.stateDir === b.stateDir],
  ['listen', (a, b) => a.listen.join() === b.listen.join()],
  ['enforcement', (a, b) => a.enforcement === b.enforcement && a.requireEnforcement === b.requireEnforcement],
  ['kill_grace_seconds', (a, b) => a.killGraceSeconds === b.killGraceSeconds],
  ['job_umask', (a, b) => a.jobUmask === b.jobUmask],
  ['retention', (a, b) => a.retentionMaxAgeDays === b.retentionMaxAgeDays && a.retentionSchedule === b.retentionSchedule],
  ['access.audit_log', (a, b) => a.access.auditLogPath === b.access.auditLogPath],
  // TLS files are reread on reload; turning TLS on or off changes the listeners.
  ['tls (on or off)', (a, b) => (a.tls === undefined) === (b.tls === undefined)],
];

/** How long in-flight RPCs get to finish on shutdown before they are cut. */
const RPC_DRAIN_DEADLINE_MS = 5000;

export class Daemon {
  private store: LevelJobStore | undefined;
  private engine: JobEngine | undefined;
  private schedules: ScheduleRunner | undefined;
  private server: GrpcServer | undefined;
  private housekeeping: Housekeeping | undefined;
  private storeHealth: StoreHealthWatch | undefined;
  private stopping: Promise<void> | undefined;
  private unlockStateDir: (() => void) | undefined;
  private audit: AuditLog | undefined;
  private tokens: TokenAuthority | undefined;
  private reconfiguring: Promise<string[]> | undefined;
  enforcement: EnforcementSelection | undefined;

  constructor(
    private config: DaemonConfig,
    private readonly log: Logger,
    private readonly uid = process.getuid?.() ?? 0,
    /** Rereads the configuration from where it came (file, environment, flags); throws ConfigError. */
    private readonly reloadConfig: () => DaemonConfig = () => config,
  ) {}

  /** The configuration in force. */
  get currentConfig(): DaemonConfig {
    return this.config;
  }

  get addresses(): readonly string[] {
    return this.server?.boundAddresses ?? [];
  }

  async start(): Promise<void> {
    const { config, log } = this;
    if (this.uid !== 0) {
      log.warn({ uid: this.uid }, 'hpcqd is not running as root: jobs can run only as this same user');
    }
    const paths = prepareStateDir(config.stateDir, this.uid);
    this.unlockStateDir = lockStateDir(paths);
    try {
      this.store = new LevelJobStore({ location: paths.database, log, onModeChange: (mode) => this.storeHealth?.modeChanged(mode) });
      await this.store.open();
      this.storeHealth = new StoreHealthWatch(this.store, (writable) => this.server?.setJobStoreWritable(writable), this.store.diskFullRetryIntervalMs);
    } catch (err) {
      this.unlockStateDir();
      this.unlockStateDir = undefined;
      throw err;
    }
    try {
      const detection = await selectEnforcement(config.enforcement, config.requireEnforcement, this.uid, config.stateDir);
      this.enforcement = detection;
      if (!detection.ok) throw new Error(`cannot enforce job limits (enforcement: ${detection.mode}): ${detection.reasons.join('; ')}`);
      if (detection.mode === 'rlimit') log.warn({ reasons: detection.reasons }, 'enforcing limits with rlimits only: memory is per process (RLIMIT_AS), CPU is time not cores, escaped processes are not tracked');
      else log.info({ enforcement: detection.mode, reasons: detection.reasons }, 'limit enforcement selected');
      const executor = new SupervisedExecutor({
        runDir: paths.run,
        limiter: detection.limiter,
        killGraceSeconds: config.killGraceSeconds,
        jobUmask: config.jobUmask,
        log,
      });
      const users = new GetentUserDirectory();
      this.engine = new JobEngine({ config, store: this.store, executor, users, log, daemonUid: this.uid });
      await this.engine.start();
      this.assertNotStopping();
      this.schedules = new ScheduleRunner({ engine: this.engine, store: this.store, users, log, config: () => this.config, daemonUid: this.uid });
      await this.schedules.start();
      this.assertNotStopping();
      this.housekeeping = new Housekeeping(this.store, config.retentionMaxAgeDays, config.retentionSchedule, log);
      this.housekeeping.start();
      this.audit = AuditLog.open(config.access.auditLogPath, { logger: log });
      this.tokens = await TokenAuthority.open(paths.tokenKey);
      this.server = new GrpcServer(config.listen, config.tls, config.access, this.audit, log);
      const gate = new AccessGate({
        connections: this.server.connections,
        tokens: this.tokens,
        users,
        audit: this.audit,
        context: () => ({ access: this.config.access, daemonUid: this.uid }),
      });
      const handlers = { gate, log };
      const current = () => this.config;
      this.server.addServices({
        jobs: createJobService(this.engine, current, handlers),
        queues: createQueueService(this.engine, current, this.uid, detection.mode, handlers),
        access: createAccessService({ config: current, daemonUid: this.uid, users, tokens: this.tokens, reconfigure: () => this.reconfigure() }, handlers),
        schedules: createScheduleService(this.schedules, this.engine, handlers),
      });
      this.server.setJobStoreWritable(this.store.health().mode === 'open');
      this.assertNotStopping();
      await this.server.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
    log.info({ stateDir: config.stateDir, pid: process.pid }, 'hpcqd started');
  }

  /**
   * Rereads and applies the configuration (SIGHUP, AccessService.Reconfigure); resolves with the
   * changed settings that need a restart. An invalid file (or a removed queue that still has jobs)
   * changes nothing and throws FailedOperation.ConfigInvalid / QueueInUse. One reload at a time.
   */
  reconfigure(): Promise<string[]> {
    const previous = this.reconfiguring ?? Promise.resolve([]);
    const next = previous.catch(() => []).then(() => this.reconfigureNow());
    this.reconfiguring = next;
    return next;
  }

  private async reconfigureNow(): Promise<string[]> {
    if (!this.engine || !this.server || this.stopping) throw new HpcqError('ResourceUnavailable.ShuttingDown', 'unavailable', 'hpcqd is not running');
    let next: DaemonConfig;
    try {
      next = this.reloadConfig();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.log.error({ source: err.source, problems: err.problems }, 'configuration reload refused: the file has errors; the running configuration is unchanged');
      throw new HpcqError('FailedOperation.ConfigInvalid', 'precondition', `the configuration has errors, nothing changed: ${err.problems.join('; ')}`);
    }
    this.engine.reconfigure(next);
    const restartRequired = RESTART_ONLY_SETTINGS.filter(([, same]) => !same(this.config, next)).map(([name]) => name);
    this.config = next;
    this.server.connections.setLimits(next.access);
    this.server.reloadTls(next.tls);
    await this.tokens?.reload();
    if (restartRequired.length > 0) this.log.warn({ settings: restartRequired }, 'these changed settings take effect only after a restart');
    this.log.info('configuration reloaded');
    return restartRequired;
  }

  private assertNotStopping(): void {
    if (this.stopping) throw new Error('hpcqd was asked to stop while starting');
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.server?.setNotServing();
      this.engine?.endWatches();
      this.schedules?.watches.endAll();
      await this.server?.stop(RPC_DRAIN_DEADLINE_MS);
      await this.schedules?.stop();
      await this.housekeeping?.stop();
      await this.engine?.stop();
      this.storeHealth?.stop();
      await this.store?.close();
      await this.audit?.close();
      this.unlockStateDir?.();
      this.log.info('hpcqd stopped');
    })();
    return this.stopping;
  }
}
