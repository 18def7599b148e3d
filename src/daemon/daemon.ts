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
 *   opened -> metrics served (metrics_listen) -> gRPC serving.
 * - running. While the store refuses writes, health says so (store-health.ts). reconfigure()
 *   (SIGHUP, AccessService.Reconfigure) applies a reread configuration: access policy, queue limits,
 *   new queues, the TLS certificate; a file with errors changes nothing.
 * - stopping (stop()): as below; the audit log is closed after the last RPC.
 * - stopping (stop()): health NOT_SERVING -> metrics server closed -> open WatchJob streams ended
 *   (UNAVAILABLE: they last as long as their job and would only hold up the drain) -> in-flight
 *   RPCs drained (deadline) -> dispatching stopped, launches in progress finished, running jobs
 *   left to their supervisors -> state flushed -> database closed last. Idempotent; a second call returns the same promise.
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
import { ConfigError } from '../config/config-error.js';
import { HpcqError } from '../core/errors.js';
import { JobEngine } from '../engine/job-engine.js';
import { ScheduleRunner } from '../engine/schedule-runner.js';
import { createClusterBackends } from '../backend/cluster-backends.js';
import { createScheduleService } from '../api/schedule-service.js';
import { SupervisedExecutor } from '../exec/supervised-executor.js';
import type { Logger } from '../logger.js';
import { LogLevelControl } from '../observability/log-level.js';
import { isLaunchFailure, transitionLogFields } from '../observability/log-lines.js';
import type { DaemonMetrics } from '../observability/metrics.js';
import { MetricsServer } from '../observability/metrics-server.js';
import { RequestLog } from '../observability/request-observer.js';
import { TimedExecutor, timeStoreWrites } from '../observability/timed-ports.js';
import type { Job, JobEvent, JobState } from '../core/job.js';
import type { ClusterBackend } from '../core/ports.js';
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
  ['metrics_listen', (a, b) => a.metricsListen === b.metricsListen],
  // TLS files are reread on reload; turning TLS on or off changes the listeners.
  ['tls (on or off)', (a, b) => (a.tls === undefined) === (b.tls === undefined)],
];

/** How long in-flight RPCs get to finish on shutdown before they are cut. */
const RPC_DRAIN_DEADLINE_MS = 5000;

export class Daemon {
  private store: LevelJobStore | undefined;
  private engine: JobEngine | undefined;
  /** The clusters another scheduler runs (Slurm), by cluster id. */
  private backends: ReadonlyMap<string, ClusterBackend> = new Map();
  private schedules: ScheduleRunner | undefined;
  private server: GrpcServer | undefined;
  private housekeeping: Housekeeping | undefined;
  private storeHealth: StoreHealthWatch | undefined;
  private stopping: Promise<void> | undefined;
  private unlockStateDir: (() => void) | undefined;
  private audit: AuditLog | undefined;
  private tokens: TokenAuthority | undefined;
  private reconfiguring: Promise<string[]> | undefined;
  private metrics: DaemonMetrics | undefined;
  private metricsServer: MetricsServer | undefined;
  enforcement: EnforcementSelection | undefined;

  constructor(
    private config: DaemonConfig,
    private readonly log: Logger,
    private readonly uid = process.getuid?.() ?? 0,
    /** Rereads the configuration from where it came (file, environment, flags); throws ConfigError. */
    private readonly reloadConfig: () => DaemonConfig | Promise<DaemonConfig> = () => config,
    /** The log level while running (SIGUSR2 and SetLogLevel change it). */
    readonly logLevel = new LogLevelControl(log),
  ) {}

  /** The configuration in force. */
  get currentConfig(): DaemonConfig {
    return this.config;
  }

  get addresses(): readonly string[] {
    return this.server?.boundAddresses ?? [];
  }

  /** host:port serving /metrics (a port 0 resolved), if metrics are on. */
  get metricsAddress(): string | undefined {
    return this.metricsServer?.address;
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
      const supervised = new SupervisedExecutor({
        runDir: paths.run,
        limiter: detection.limiter,
        killGraceSeconds: config.killGraceSeconds,
        jobUmask: config.jobUmask,
        log,
      });
      // With metrics off nothing is timed: the ports are the plain ones.
      const metrics = config.metricsListen === undefined ? undefined : await this.createMetrics();
      this.metrics = metrics;
      const executor = metrics ? new TimedExecutor(supervised, (ms) => metrics.launched(ms)) : supervised;
      const store = metrics ? timeStoreWrites(this.store, (op, ms) => metrics.storeWrite(op, ms)) : this.store;
      const users = new GetentUserDirectory();
      this.backends = createClusterBackends(config, users, log);
      this.engine = new JobEngine({
        config,
        store,
        executor,
        users,
        log,
        daemonUid: this.uid,
        onTransition: (job, previousState, event) => this.jobChanged(job, previousState, event),
        onDispatchPass: (ms, started) => this.dispatchPassed(ms, started),
        backends: this.backends,
      });
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
      for (const [clusterId, backend] of this.backends) {
        this.server.setClusterHealth(clusterId, backend.unavailable() === undefined);
        backend.onAvailability = (why) => this.server?.setClusterHealth(clusterId, why === undefined);
      }
      const gate = new AccessGate({
        connections: this.server.connections,
        tokens: this.tokens,
        users,
        audit: this.audit,
        context: () => ({ access: this.config.access, daemonUid: this.uid }),
      });
      const handlers = { gate, log, observer: new RequestLog(log, metrics) };
      const current = () => this.config;
      this.server.addServices({
        jobs: createJobService(this.engine, current, handlers),
        queues: createQueueService(this.engine, current, this.uid, detection.mode, handlers),
        access: createAccessService({ config: current, daemonUid: this.uid, users, tokens: this.tokens, reconfigure: () => this.reconfigure(), logLevel: this.logLevel }, handlers),
        schedules: createScheduleService(this.schedules, this.engine, handlers),
      });
      this.server.setJobStoreWritable(this.store.health().mode === 'open');
      if (metrics) {
        this.metricsServer = new MetricsServer(config.metricsListen!, metrics, log);
        await this.metricsServer.start();
      }
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

  /** The engine and server of a daemon that serves; ShuttingDown before it started and once it stops. */
  private serving(): { engine: JobEngine; server: GrpcServer } {
    if (!this.engine || !this.server || this.stopping) throw new HpcqError('ResourceUnavailable.ShuttingDown', 'unavailable', 'hpcqd is not running');
    return { engine: this.engine, server: this.server };
  }

  private async reconfigureNow(): Promise<string[]> {
    this.serving();
    let next: DaemonConfig;
    try {
      next = await this.reloadConfig();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.log.error({ source: err.source, problems: err.problems }, 'configuration reload refused: the file has errors; the running configuration is unchanged');
      throw new HpcqError('FailedOperation.ConfigInvalid', 'precondition', `the configuration has errors, nothing changed: ${err.problems.join('; ')}`);
    }
    // The reload took a while (a worker thread): the daemon may have begun to stop meanwhile.
    const { engine, server } = this.serving();
    engine.reconfigure(next);
    const restartRequired = RESTART_ONLY_SETTINGS.filter(([, same]) => !same(this.config, next)).map(([name]) => name);
    this.config = next;
    server.connections.setLimits(next.access);
    server.reloadTls(next.tls);
    await this.tokens?.reload();
    if (restartRequired.length > 0) this.log.warn({ settings: restartRequired }, 'these changed settings take effect only after a restart');
    this.log.info('configuration reloaded');
    return restartRequired;
  }

  /**
   * Metrics read from the running parts when scraped (zeros for a part not started yet). Imported
   * only with metrics on: prom-client and what it loads cost the idle daemon 5.6 MiB of RSS.
   */
  private async createMetrics(): Promise<DaemonMetrics> {
    const { DaemonMetrics } = await import('../observability/metrics.js');
    return new DaemonMetrics({
      queueIds: () => this.config.clusters.flatMap((c) => c.queues.map((q) => q.hpcqueueId)),
      queueCounts: (id) => this.engine?.queueCounts(id) ?? { pending: 0, running: 0 },
      node: () => ({ cores: this.config.nodeCores, memMb: this.config.nodeMemMb }),
      used: () => this.engine?.usedResources() ?? { cores: 0, memMb: 0 },
      storeStats: () => this.store!.stats(),
      // ConnectionRegistry keeps the count for its caps but has no getter for it yet.
      openConnections: () => this.server?.connections.openConnections ?? 0,
      schedulers: () => [...this.backends].map(([clusterId, b]) => ({ clusterId, up: b.unavailable() === undefined })),
    });
  }

  /** Every durable state change: one log line (a launch failure as a warning) and the outcome metrics. */
  private jobChanged(job: Job, previousState: JobState, event: JobEvent): void {
    this.metrics?.transition(job, previousState, event);
    const fields = transitionLogFields(job, previousState, event);
    if (isLaunchFailure(job, event)) this.log.warn(fields, 'job launch failed');
    else this.log.info(fields, 'job state changed');
  }

  /** Every dispatch pass: its time in the metrics; with debug on, a line (the jobs it started follow as state changes). */
  private dispatchPassed(ms: number, started: number): void {
    this.metrics?.dispatchPass(ms, started);
    if (!this.log.isLevelEnabled('debug') || !this.engine) return;
    let pending = 0;
    let running = 0;
    for (const c of this.config.clusters) {
      for (const q of c.queues) {
        const counts = this.engine.queueCounts(q.hpcqueueId);
        pending += counts.pending;
        running += counts.running;
      }
    }
    this.log.debug({ passMs: Math.round(ms * 1000) / 1000, started, pending, running }, 'dispatch pass');
  }

  private assertNotStopping(): void {
    if (this.stopping) throw new Error('hpcqd was asked to stop while starting');
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.server?.setNotServing();
      await this.metricsServer?.stop();
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
