/**
 * ScheduleRunner: the schedules (ScheduleService) and their ticks.
 *
 * Each schedule has one timer, armed for its next tick; node-cron reads the expression (core/cron.ts)
 * but the firing is ours, because a tick must be stored with its job: the tick's job and the
 * schedule's `lastTickMs` (with the tick's event) go into one synced batch (JobStore.createJob's
 * `attach`), a skipped, failed or missed tick is stored the same way without a job. So a crash at
 * any instant leaves each tick with exactly one job or none; one left without is "due" when the
 * daemon is back and core/schedule.ts planDueTicks decides: at most one catch-up run, the rest
 * recorded as missed. Operations on one schedule (ticks, triggers, updates, deletion) run one at a
 * time, so a tick never races an update of the same schedule.
 *
 * Lifecycle: start() after the job engine has started (a tick submits through it), stop() before
 * the engine stops; both wait for the operations in progress.
 */
import type { DaemonConfig } from '../config/daemon-config.js';
import { isAdmin, mayActOnJob, mayViewJob, type AccessContext, type Principal } from '../core/access-policy.js';
import { compileCron, type CronClock } from '../core/cron.js';
import { HpcqError } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { ScheduleStore, ScheduleWrite, UserAccount, UserDirectory } from '../core/ports.js';
import { quoteValue } from '../core/quote.js';
import {
  applyOverrides,
  planDueTicks,
  scheduleIdText,
  tickBase,
  type JobOverrides,
  type Schedule,
  type ScheduleEvent,
  type ScheduleOwner,
} from '../core/schedule.js';
import type { Logger } from '../logger.js';
import type { JobEngine } from './job-engine.js';
import { InFlight } from './in-flight.js';
import { ScheduleWatches } from './schedule-watches.js';

export interface ScheduleRunnerDeps {
  engine: JobEngine;
  store: ScheduleStore;
  users: UserDirectory;
  log: Logger;
  /** The configuration in force (reloads change the access policy). */
  config: () => DaemonConfig;
  daemonUid: number;
  now?: () => number;
}

interface Entry {
  schedule: Schedule;
  clock: CronClock;
  timer?: NodeJS.Timeout;
  /** The tail of this schedule's operations: each runs after the previous one. */
  tail: Promise<unknown>;
  /** Its jobs that are pending or running (array jobs, not their instances). */
  active: Set<number>;
  /** After a tick could not be stored: not tried again before this time. */
  retryAtMs: number;
}

/** Delay before a tick that could not be stored is tried again. */
const STORE_RETRY_MS = 1000;
/** setTimeout's longest delay; a later tick is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class ScheduleRunner {
  private readonly entries = new Map<number, Entry>();
  readonly watches = new ScheduleWatches();
  private lastId = 0;
  private state: 'created' | 'started' | 'stopped' = 'created';
  private readonly inFlight = new InFlight();
  /** Creations run one at a time (ids and client tokens). */
  private creating: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly deps: ScheduleRunnerDeps) {
    this.now = deps.now ?? Date.now;
  }

  async start(): Promise<void> {
    const { schedules, lastId } = await this.deps.store.loadSchedules();
    this.lastId = lastId;
    for (const schedule of schedules) {
      try {
        this.entries.set(schedule.id, { schedule, clock: compileCron(schedule.cron, schedule.timeZone), tail: Promise.resolve(), active: new Set(), retryAtMs: 0 });
      } catch (err) {
        this.deps.log.error({ scheduleId: scheduleIdText(schedule.id), err: (err as Error).message }, 'stored schedule cannot be read by this node-cron; it does not tick');
      }
    }
    for (const job of this.deps.engine.activeScheduledJobs()) this.entries.get(job.schedule!.scheduleId)?.active.add(job.id);
    this.deps.engine.onScheduledJobEnded = (job) => this.entries.get(job.schedule!.scheduleId)?.active.delete(job.id);
    this.state = 'started';
    // Ticks missed while the daemon was down are handled first (catch-up or recorded as missed).
    for (const entry of this.entries.values()) this.wake(entry);
    this.deps.log.info({ schedules: this.entries.size }, 'schedules started');
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    this.watches.endAll();
    await this.inFlight.drain();
  }

  // ---- ticks -----------------------------------------------------------------------------------

  /** Handles the due ticks of a schedule (after the operations queued before), then arms its timer. */
  private wake(entry: Entry): void {
    void this.exclusive(entry, () => this.handleDue(entry))
      .catch((err: unknown) => this.deps.log.error({ err, scheduleId: scheduleIdText(entry.schedule.id) }, 'schedule tick failed'))
      .finally(() => this.arm(entry));
  }

  private arm(entry: Entry): void {
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (this.state !== 'started' || entry.schedule.suspend || this.entries.get(entry.schedule.id) !== entry) return;
    const next = entry.clock.next(tickBase(entry.schedule));
    if (next === undefined) return;
    const delay = Math.min(Math.max(next, entry.retryAtMs) - this.now(), MAX_TIMER_MS);
    entry.timer = setTimeout(() => this.wake(entry), Math.max(0, delay));
    entry.timer.unref();
  }

  private async handleDue(entry: Entry): Promise<void> {
    const s = entry.schedule;
    if (this.state !== 'started' || s.suspend || this.entries.get(s.id) !== entry) return;
    const now = this.now();
    if (now < entry.retryAtMs) return;
    const plan = planDueTicks(entry.clock, tickBase(s), now, s.startingDeadlineSeconds);
    if (!plan) return;
    const events = new EventLog(s, now);
    if (plan.missed) {
      const { firstMs, lastMs, count } = plan.missed;
      const why = plan.fire === undefined && s.startingDeadlineSeconds > 0 ? `later than starting_deadline_seconds (${s.startingDeadlineSeconds})` : 'not fired in time (hpcqd down or busy)';
      events.add({ kind: 'missed', tickMs: firstMs, lastTickMs: lastMs, missedCount: count, reason: why });
    }
    const tick = plan.fire;
    if (tick === undefined) return this.record(entry, { ...s, lastTickMs: plan.latestMs }, events);
    const active = [...entry.active];
    if (active.length > 0 && s.policy === 'forbid') {
      events.add({ kind: 'skipped', tickMs: tick, reason: `JobForbidPolicy: job ${active.join(', ')} of the schedule still active` });
      return this.record(entry, { ...s, lastTickMs: tick }, events);
    }
    let note = '';
    if (active.length > 0 && s.policy === 'replace') {
      await this.cancelActive(entry, active);
      note = `REPLACE: cancelled job ${active.join(', ')}`;
    }
    try {
      const principal = await this.ownerPrincipal(s);
      const { job } = await this.deps.engine.submit(s.template, principal, {
        scheduleId: s.id,
        tickMs: tick,
        clientToken: '',
        fingerprint: '',
        attach: (made) => events.write({ ...s, lastTickMs: tick }, { kind: 'fired', tickMs: tick, jobId: made.id, reason: note }),
      });
      this.committed(entry, job, events);
    } catch (err) {
      if (!(err instanceof HpcqError) || err.kind === 'unavailable') return this.retryLater(entry, err);
      // The submit was refused (quota, policy, a template no longer valid): the tick is spent.
      events.add({ kind: 'failed', tickMs: tick, reason: `${err.code}: ${err.message}` });
      return this.record(entry, { ...s, lastTickMs: tick }, events);
    }
  }

  /** Stores a tick handled without a job (skipped, failed, missed). */
  private async record(entry: Entry, next: Schedule, events: EventLog): Promise<void> {
    const write = events.write(next);
    try {
      await this.track(this.deps.store.saveSchedule(write));
    } catch (err) {
      return this.retryLater(entry, err);
    }
    this.committed(entry, undefined, events);
  }

  /** The write is durable: memory follows, watchers hear of it. */
  private committed(entry: Entry, job: Job | undefined, events: EventLog): void {
    entry.schedule = events.written!.schedule;
    entry.retryAtMs = 0;
    if (job && this.deps.engine.isActive(job.id)) entry.active.add(job.id);
    for (const e of events.written!.events) this.deps.log.info({ scheduleId: scheduleIdText(e.scheduleId), event: e.kind, tick: new Date(e.tickMs).toISOString(), jobId: e.jobId, reason: e.reason || undefined }, 'schedule event');
    this.watches.publish(entry.schedule, events.written!.events);
  }

  /** Nothing was stored (the store is down or the daemon stopping): the tick stays due. */
  private retryLater(entry: Entry, err: unknown): void {
    entry.retryAtMs = this.now() + STORE_RETRY_MS;
    this.deps.log.warn({ scheduleId: scheduleIdText(entry.schedule.id), err: (err as Error).message }, 'could not store a schedule tick; trying again');
  }

  private async cancelActive(entry: Entry, jobIds: readonly number[]): Promise<void> {
    for (const id of jobIds) {
      try {
        await this.deps.engine.cancelFor(id, `schedule ${scheduleIdText(entry.schedule.id)} (REPLACE)`);
      } catch (err) {
        this.deps.log.warn({ jobId: id, err: (err as Error).message }, 'REPLACE could not cancel a job of the schedule');
      }
    }
  }

  /** The owner as a principal, as it is now (its account and groups looked up again). */
  private async ownerPrincipal(s: Schedule): Promise<Principal> {
    const peer = `schedule ${scheduleIdText(s.id)}`;
    if (s.owner.kind === 'certificate') return { name: s.owner.subject, via: 'certificate', peer };
    const account = await this.deps.users.lookupUid(s.owner.uid);
    if (!account) throw new HpcqError('OperationDenied.OwnerNotFound', 'permission', `the schedule's owner (uid ${s.owner.uid}) no longer exists`);
    return { name: `uid:${account.uid}`, via: 'unix', account, peer };
  }

  // ---- queries and changes (ScheduleService) ----------------------------------------------------

  /** Runs `fn` after every operation queued before on this schedule. */
  exclusive<T>(entry: Entry, fn: () => Promise<T>): Promise<T> {
    const run = entry.tail.then(fn, fn);
    entry.tail = run.catch(() => undefined);
    return this.track(run);
  }

  /** The entry of a schedule the principal may see; ResourceNotFound.Schedule otherwise. */
  async visible(idText: string, principal: Principal): Promise<Entry> {
    this.assertStarted();
    const id = /^sched-(\d{1,15})$/.exec(idText)?.[1];
    if (idText === '') throw new HpcqError('MissingParameter.ScheduleId', 'invalid', 'schedule_id is required', 'schedule_id');
    if (id === undefined) throw new HpcqError('InvalidParameter.ScheduleIdMalformed', 'invalid', 'schedule_id must be sched-<number>', 'schedule_id');
    const entry = this.entries.get(Number(id));
    if (!entry || !(await this.mayView(principal, entry.schedule))) throw scheduleNotFound(idText);
    return entry;
  }

  /** As visible(), and the principal may change it (owner, or may act on its run user's jobs). */
  async actable(idText: string, principal: Principal): Promise<Entry> {
    const entry = await this.visible(idText, principal);
    if (!ownedBy(entry.schedule, principal) && !mayActOnJob(principal, await this.runAccount(entry.schedule), this.accessContext())) {
      throw new HpcqError('OperationDenied.ScheduleNotOwned', 'permission', `${principal.name} may not change schedule ${idText}`, 'schedule_id');
    }
    return entry;
  }

  /** Every schedule the principal may see, by id, after `afterId`. */
  async list(principal: Principal, pageSize: number, afterId: number): Promise<{ entries: Entry[]; more: boolean }> {
    this.assertStarted();
    const ids = [...this.entries.keys()].filter((id) => id > afterId).sort((a, b) => a - b);
    const out: Entry[] = [];
    for (const id of ids) {
      const entry = this.entries.get(id)!;
      if (!(await this.mayView(principal, entry.schedule))) continue;
      if (out.length === pageSize) return { entries: out, more: true };
      out.push(entry);
    }
    return { entries: out, more: false };
  }

  /** The next tick of a schedule, if it ticks. */
  nextTick(entry: Entry): number | undefined {
    return entry.schedule.suspend ? undefined : entry.clock.next(tickBase(entry.schedule));
  }

  activeJobIds(entry: Entry): number[] {
    return [...entry.active].sort((a, b) => a - b);
  }

  /** Allocates the next schedule id and stores a new schedule (creations are serialized). */
  create(build: (id: number) => Promise<{ schedule: Schedule; fingerprint: string } | { existing: number }>): Promise<Entry> {
    this.assertStarted();
    const run = this.creating.then(async () => {
      const built = await build(this.lastId + 1);
      if ('existing' in built) {
        const entry = this.entries.get(built.existing);
        if (!entry) throw scheduleNotFound(scheduleIdText(built.existing));
        return entry;
      }
      const { schedule, fingerprint } = built;
      const clock = compileCron(schedule.cron, schedule.timeZone);
      await this.track(this.deps.store.saveSchedule({ schedule, events: [], created: { fingerprint } }));
      this.lastId = schedule.id;
      const entry: Entry = { schedule, clock, tail: Promise.resolve(), active: new Set(), retryAtMs: 0 };
      this.entries.set(schedule.id, entry);
      this.arm(entry);
      this.deps.log.info({ scheduleId: scheduleIdText(schedule.id), cron: schedule.cron, timeZone: schedule.timeZone, owner: ownerName(schedule.owner) }, 'schedule created');
      return entry;
    });
    this.creating = run.catch(() => undefined);
    return this.track(run);
  }

  /** The latest `count` events of a schedule, oldest first. */
  events(entry: Entry, count: number): Promise<ScheduleEvent[]> {
    return this.deps.store.getScheduleEvents(entry.schedule.id, count);
  }

  /** The schedule a creation token of `owner` names, with its request's fingerprint. */
  findCreateToken(owner: ScheduleOwner, clientToken: string): Promise<{ id: number; fingerprint: string } | undefined> {
    return this.deps.store.findScheduleToken({ owner }, clientToken);
  }

  /** How many schedules an owner has (for the per-owner cap). */
  countOwnedBy(owner: ScheduleOwner): number {
    let n = 0;
    for (const { schedule } of this.entries.values()) if (sameOwner(schedule.owner, owner)) n++;
    return n;
  }

  /** Stores a changed schedule (inside exclusive()) and re-arms it. */
  async update(entry: Entry, next: Schedule): Promise<void> {
    const clock = next.cron === entry.schedule.cron && next.timeZone === entry.schedule.timeZone ? entry.clock : compileCron(next.cron, next.timeZone);
    await this.track(this.deps.store.saveSchedule({ schedule: next, events: [] }));
    entry.schedule = next;
    entry.clock = clock;
    entry.retryAtMs = 0;
    this.arm(entry);
    this.watches.publish(next, []);
  }

  /** Deletes a schedule (inside exclusive()); its jobs are left alone. */
  async delete(entry: Entry): Promise<void> {
    await this.track(this.deps.store.deleteSchedule(entry.schedule));
    clearTimeout(entry.timer);
    this.entries.delete(entry.schedule.id);
    this.watches.deleted(entry.schedule.id);
    this.deps.log.info({ scheduleId: scheduleIdText(entry.schedule.id) }, 'schedule deleted');
  }

  /**
   * Runs the template now as `principal` (SAE ExecJob), inside exclusive(). The same event_id
   * returns the job the first trigger made; a suspended schedule answers JobSuspend, a FORBID
   * schedule with an active job JobForbidPolicy.
   */
  async trigger(entry: Entry, principal: Principal, eventId: string, overrides: JobOverrides | undefined): Promise<Job> {
    const s = entry.schedule;
    const token = eventId === '' ? '' : `schedule ${s.id} event ${eventId}`;
    if (token !== '') {
      const existing = await this.deps.store.findJobByClientToken(s.runUser, token);
      if (existing) return existing;
    }
    if (s.suspend) throw new HpcqError('JobSuspend', 'precondition', `schedule ${scheduleIdText(s.id)} is suspended; resume it first`, 'schedule_id');
    const active = [...entry.active];
    if (active.length > 0 && s.policy === 'forbid') {
      throw new HpcqError('JobForbidPolicy', 'precondition', `You cannot execute new jobs because ongoing jobs exist: job ${active.join(', ')} of schedule ${scheduleIdText(s.id)} (FORBID)`, 'schedule_id');
    }
    const now = this.now();
    const events = new EventLog(s, now);
    const request = applyOverrides(s.template, overrides);
    if (active.length > 0 && s.policy === 'replace') await this.cancelActive(entry, active);
    const { job, created } = await this.deps.engine.submit(request, principal, {
      scheduleId: s.id,
      tickMs: now,
      clientToken: token,
      fingerprint: 'trigger',
      attach: (made) => events.write(s, { kind: 'triggered', tickMs: now, jobId: made.id, reason: `by ${principal.name}`, ...(eventId ? { eventId } : {}) }),
    });
    if (created) this.committed(entry, job, events);
    return job;
  }

  // ---- access ----------------------------------------------------------------------------------

  private async mayView(principal: Principal, s: Schedule): Promise<boolean> {
    return ownedBy(s, principal) || mayViewJob(principal, await this.runAccount(s), this.accessContext());
  }

  /** The template's run account as NSS has it now, or with no groups if it is gone or changed. */
  private async runAccount(s: Schedule): Promise<UserAccount> {
    const account = await this.deps.users.lookup(s.runUser).catch(() => undefined);
    if (account && account.uid === s.runUid) return account;
    return { name: s.runUser, uid: s.runUid, gid: s.runUid, home: '', shell: '', groups: [] };
  }

  isAdmin(principal: Principal): boolean {
    return isAdmin(principal, this.accessContext());
  }

  private accessContext(): AccessContext {
    return { access: this.deps.config().access, daemonUid: this.deps.daemonUid };
  }

  private assertStarted(): void {
    if (this.state !== 'started') throw new HpcqError('ResourceUnavailable.ShuttingDown', 'unavailable', 'hpcqd is not accepting requests (starting or stopping)');
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    return this.inFlight.track(promise);
  }
}

/**
 * The events one operation adds, numbered after the schedule's last, and the write that stores
 * them with the schedule's next state (kept, so memory follows exactly what was stored).
 */
class EventLog {
  private readonly events: ScheduleEvent[] = [];
  private sequence: number;
  written: ScheduleWrite | undefined;

  constructor(
    private readonly schedule: Schedule,
    private readonly nowMs: number,
  ) {
    this.sequence = schedule.eventCount;
  }

  add(e: Omit<ScheduleEvent, 'scheduleId' | 'sequence' | 'timeMs'>): void {
    this.events.push({ scheduleId: this.schedule.id, sequence: ++this.sequence, timeMs: this.nowMs, ...e });
  }

  /**
   * The write of `next` with the events so far and `last`, if given. Does not keep `last`: a write
   * that failed leaves the log as it was, for the event that records the failure instead.
   */
  write(next: Schedule, last?: Omit<ScheduleEvent, 'scheduleId' | 'sequence' | 'timeMs'>): ScheduleWrite {
    const events = last ? [...this.events, { scheduleId: this.schedule.id, sequence: this.sequence + 1, timeMs: this.nowMs, ...last }] : [...this.events];
    this.written = { schedule: { ...next, eventCount: this.sequence + (last ? 1 : 0) }, events };
    return this.written;
  }
}

export type ScheduleEntry = Entry;

export function ownerOf(principal: Principal): ScheduleOwner {
  return principal.account && principal.via !== 'certificate'
    ? { kind: 'account', uid: principal.account.uid, name: principal.account.name }
    : { kind: 'certificate', subject: principal.name };
}

export function ownerName(owner: ScheduleOwner): string {
  return owner.kind === 'account' ? `uid:${owner.uid} (${owner.name})` : owner.subject;
}

function sameOwner(a: ScheduleOwner, b: ScheduleOwner): boolean {
  return a.kind === 'account' ? b.kind === 'account' && a.uid === b.uid : b.kind === 'certificate' && a.subject === b.subject;
}

function ownedBy(s: Schedule, principal: Principal): boolean {
  return sameOwner(s.owner, ownerOf(principal));
}

function scheduleNotFound(idText: string): HpcqError {
  return new HpcqError('ResourceNotFound.Schedule', 'not_found', `schedule ${quoteValue(idText)} does not exist`, 'schedule_id');
}
