/**
 * The composition root: builds every component from the compiled config, passes dependencies in,
 * and owns the start/stop order.
 *
 * Lifecycle:
 * - created: nothing opened.
 * - starting: state dir checked and locked (hpcqd.pid: a second daemon on the same state dir
 *   fails here, before it touches anything; LevelDB's LOCK backs this up) -> database opened ->
 *   enforcement detected -> engine started
 *   (active jobs loaded, running jobs re-attached) -> housekeeping -> gRPC serving.
 * - running. While the store refuses writes, health says so (store-health.ts).
 * - stopping (stop()): health NOT_SERVING -> open WatchJob streams ended (UNAVAILABLE: they last
 *   as long as their job and would only hold up the drain) -> in-flight RPCs drained (deadline) ->
 *   dispatching stopped, launches in progress finished, running jobs left to their supervisors ->
 *   state flushed -> database closed last. Idempotent; a second call returns the same promise.
 *   A stop() during start() makes start() fail once the step in progress is done.
 */
import { GrpcServer } from '../api/grpc-server.js';
import { createJobService } from '../api/job-service.js';
import { createQueueService } from '../api/queue-service.js';
import type { DaemonConfig } from '../config/daemon-config.js';
import { JobEngine } from '../engine/job-engine.js';
import { SupervisedExecutor } from '../exec/supervised-executor.js';
import type { Logger } from '../logger.js';
import { LevelJobStore } from '../store/level-job-store.js';
import { GetentUserDirectory } from '../system/getent-user-directory.js';
import { selectEnforcement, type EnforcementSelection } from './enforcement.js';
import { Housekeeping } from './housekeeping.js';
import { StoreHealthWatch } from './store-health.js';
import { lockStateDir, prepareStateDir } from './state-dir.js';

/** How long in-flight RPCs get to finish on shutdown before they are cut. */
const RPC_DRAIN_DEADLINE_MS = 5000;

export class Daemon {
  private store: LevelJobStore | undefined;
  private engine: JobEngine | undefined;
  private server: GrpcServer | undefined;
  private housekeeping: Housekeeping | undefined;
  private storeHealth: StoreHealthWatch | undefined;
  private stopping: Promise<void> | undefined;
  private unlockStateDir: (() => void) | undefined;
  enforcement: EnforcementSelection | undefined;

  constructor(
    readonly config: DaemonConfig,
    private readonly log: Logger,
    private readonly uid = process.getuid?.() ?? 0,
  ) {}

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
      this.engine = new JobEngine({ config, store: this.store, executor, users: new GetentUserDirectory(), log, daemonUid: this.uid });
      await this.engine.start();
      this.assertNotStopping();
      this.housekeeping = new Housekeeping(this.store, config.retentionMaxAgeDays, config.retentionSchedule, log);
      this.housekeeping.start();
      this.server = new GrpcServer(
        config.listen,
        { jobs: createJobService(this.engine, config, log), queues: createQueueService(this.engine, config, detection.mode, log) },
        log,
      );
      this.server.setJobStoreWritable(this.store.health().mode === 'open');
      this.assertNotStopping();
      await this.server.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
    log.info({ stateDir: config.stateDir, pid: process.pid }, 'hpcqd started');
  }

  private assertNotStopping(): void {
    if (this.stopping) throw new Error('hpcqd was asked to stop while starting');
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.server?.setNotServing();
      this.engine?.endWatches();
      await this.server?.stop(RPC_DRAIN_DEADLINE_MS);
      await this.housekeeping?.stop();
      await this.engine?.stop();
      this.storeHealth?.stop();
      await this.store?.close();
      this.unlockStateDir?.();
      this.log.info('hpcqd stopped');
    })();
    return this.stopping;
  }
}
