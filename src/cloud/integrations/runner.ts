/**
 * One integration's schedule: device syncs and app syncs at their intervals (first runs jittered so
 * thousands of integrations do not fire together), Sync Now (coalesced with a running sync), Pause
 * and Resume, and a clean stop that aborts a running sync. Jobs of one integration run one at a
 * time; integrations never wait for each other.
 */
import { setMaxListeners } from 'node:events';
import type { Clock, TimerHandle } from '../../common/clock.js';
import type { Logger } from '../../common/log.js';
import type { UemAdapter } from '../../uem/adapter.js';
import type { InventoryDb } from '../inventory/db.js';
import { InventoryStorageError } from '../inventory/errors.js';
import type { IntegrationRecord } from '../state.js';
import { UemError } from '../../uem/adapter.js';
import { appSync, describeError, deviceSync, isTagName, placeholderEmail, policyGroups, tagging, type AppPolicy, type ComponentStatus, type Indicator } from './engine.js';

export type StatusKey = 'uemServer' | 'deviceSync' | 'appSync' | 'tagging' | 'policyGroups';
export type StatusPatch = Partial<Record<StatusKey, ComponentStatus>>;

export interface RunnerDeps {
  clock: Clock;
  logger: Logger;
  db: InventoryDb;
  load(id: string): Promise<IntegrationRecord | undefined>;
  adapterFor(rec: IntegrationRecord, signal: AbortSignal): Promise<UemAdapter>;
  policies(tenant: string): Promise<AppPolicy[]>;
  saveStatus(id: string, patch: StatusPatch): Promise<void>;
}

type Job = 'device' | 'app' | 'tags';

const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

function status(prev: ComponentStatus, indicator: Indicator, message: string, now: string, ok: boolean, counts?: Record<string, number>): ComponentStatus {
  return { indicator, message, lastRun: now, lastSuccess: ok ? now : prev.lastSuccess, counts: counts ?? prev.counts };
}

export class IntegrationRunner {
  private deviceTimer: TimerHandle | undefined;
  private appTimer: TimerHandle | undefined;
  /** When the pending timers fire (clock time). */
  private deviceDueAt = 0;
  private appDueAt = 0;
  private chain: Promise<void> = Promise.resolve();
  private current: Promise<void> | undefined;
  private queued = new Set<Job>();
  /** The job running now (it has left `queued`). */
  private running: Job | undefined;
  private ac = new AbortController();
  private stopped = false;
  private paused = false;

  constructor(
    readonly id: string,
    private readonly d: RunnerDeps,
  ) {
    // One signal is shared by every call of a sync: each call in flight (the adapters run several
    // at once) holds up to two abort listeners until it ends. Past 10, Node warned of a leak that is
    // not one; a real leak (listeners left by finished calls) still shows past this bound.
    setMaxListeners(64, this.ac.signal);
  }

  /** Starts the schedule; the first runs come within `firstWithinMs` (jittered). */
  start(rec: IntegrationRecord, firstWithinMs = 30_000): void {
    this.paused = rec.paused;
    if (this.paused) return;
    const first = Math.min(firstWithinMs, rec.sync.deviceSyncIntervalMinutes * 60_000);
    this.scheduleDevice(Math.floor(Math.random() * first));
  }

  private scheduleDevice(ms: number): void {
    if (this.stopped || this.paused) return;
    if (this.deviceTimer !== undefined) this.d.clock.clearTimeout(this.deviceTimer);
    this.deviceDueAt = this.d.clock.now() + ms;
    this.deviceTimer = this.d.clock.setTimeout(() => {
      this.deviceTimer = undefined;
      void this.enqueue('device');
    }, ms);
  }

  private scheduleApp(ms: number): void {
    if (this.stopped || this.paused) return;
    if (this.appTimer !== undefined) this.d.clock.clearTimeout(this.appTimer);
    this.appDueAt = this.d.clock.now() + ms;
    this.appTimer = this.d.clock.setTimeout(() => {
      this.appTimer = undefined;
      void this.enqueue('app');
    }, ms);
  }

  /** Runs `job` after what is running; a job already waiting is not queued twice (coalescing). */
  private enqueue(job: Job): Promise<void> {
    if (this.queued.has(job)) return this.chain;
    this.queued.add(job);
    this.chain = this.chain.then(async () => {
      this.queued.delete(job);
      if (this.stopped) return;
      this.running = job;
      this.current = this.run(job);
      await this.current.catch(() => {});
      this.current = undefined;
      this.running = undefined;
    });
    return this.chain;
  }

  /**
   * Sync Now: a device sync then an app sync, at once, joined to a sync already running or waiting
   * (two overlapping Sync Nows listed the UEM twice, which counts against a partner UEM's rate limit).
   */
  syncNow(): Promise<void> {
    if (this.running === 'device') return this.enqueue('app');
    const waiting = [...this.queued]; // a Set keeps insertion order: the order they will run in
    const device = waiting.indexOf('device');
    if (device >= 0 && waiting.indexOf('app') > device) return this.chain;
    // An app sync waiting ahead of the device sync (or none) would leave the apps older than the
    // devices when a "sync and wait" returns: one follows the device sync.
    return this.enqueue('device').then(() => this.enqueue('app'));
  }

  /**
   * The intervals were edited: a timer armed with a longer interval is brought forward to the new
   * one (shortened from a day to 10 minutes, the next sync came a day later); a longer interval
   * applies from the next run.
   */
  intervalsChanged(rec: IntegrationRecord): void {
    const now = this.d.clock.now();
    const jitter = (): number => 0.95 + Math.random() * 0.1;
    const device = rec.sync.deviceSyncIntervalMinutes * 60_000;
    const app = rec.sync.appSyncIntervalMinutes * 60_000;
    if (this.deviceTimer !== undefined && this.deviceDueAt - now > device) this.scheduleDevice(device * jitter());
    if (this.appTimer !== undefined && this.appDueAt - now > app) this.scheduleApp(app * jitter());
  }

  /** A device sync soon (its groups changed): the timer is brought forward; paused, nothing. */
  deviceSyncSoon(): void {
    this.scheduleDevice(0);
  }

  /** Tags again soon (a device's risk or status changed). */
  retag(): void {
    void this.enqueue('tags');
  }

  pause(): void {
    this.paused = true;
    for (const t of [this.deviceTimer, this.appTimer]) if (t !== undefined) this.d.clock.clearTimeout(t);
    this.deviceTimer = this.appTimer = undefined;
  }

  resume(rec: IntegrationRecord): void {
    this.paused = false;
    this.scheduleDevice(0);
    void rec;
  }

  /** Stops for good: no more runs; a running sync is aborted and awaited. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pause();
    this.ac.abort(new Error('the integration was removed'));
    await this.current?.catch(() => {});
  }

  private async run(job: Job): Promise<void> {
    const rec = await this.d.load(this.id);
    if (!rec || this.stopped) return;
    const now = (): string => new Date(this.d.clock.now()).toISOString();
    const signal = this.ac.signal;
    const s = rec.status;
    try {
      if (job === 'device') {
        await this.runDevice(rec, now, signal);
        this.scheduleDevice(rec.sync.deviceSyncIntervalMinutes * 60_000 * (0.95 + Math.random() * 0.1));
        // An app sync follows each device sync, unless one is already waiting (Sync Now queues
        // both): scheduling another here would run the app sync twice in a row.
        if (this.appTimer === undefined && !this.queued.has('app')) this.scheduleApp(0);
      } else if (job === 'app') {
        await this.runApp(rec, now, signal);
        this.scheduleApp(rec.sync.appSyncIntervalMinutes * 60_000 * (0.95 + Math.random() * 0.1));
      } else {
        await this.runTagging(rec, now, signal);
      }
    } catch (e) {
      if (signal.aborted) return;
      this.d.logger.error('integration job failed unexpectedly', { integration: this.id, job, err: e });
      // Reported on the component whose job failed (an app sync's or a tagging pass's failure
      // turned Device sync red while App sync stayed green).
      const part = job === 'device' ? 'deviceSync' : job === 'app' ? 'appSync' : 'tagging';
      await this.d.saveStatus(this.id, { [part]: status(s[part], 'red', describeError(e), now(), false) });
    }
  }

  private async runDevice(rec: IntegrationRecord, now: () => string, signal: AbortSignal): Promise<void> {
    const s = rec.status;
    const none = rec.sync.groups.length === 0;
    const noGroups = 'no groups selected: choose the UEM groups to sync';
    // No groups and nothing stored: nothing to do. No groups but devices stored (every group
    // deselected): the sync below removes them, under the deletion safeguards, as deselecting one
    // group of two does; skipping it kept them, and their PII, for good.
    if (none && this.d.db.countDevices(this.id) === 0) {
      await this.d.saveStatus(this.id, { deviceSync: status(s.deviceSync, 'gray', noGroups, now(), false) });
      return;
    }
    const started = now();
    try {
      const adapter = await this.d.adapterFor(rec, signal);
      const r = await deviceSync(rec, adapter, this.d.db, this.d.clock, signal);
      await this.erasePiiSwitchedOff(rec);
      const c = r.counts;
      const counts = { devices: c.devices, added: c.added, updated: c.updated, deleted: c.deleted, pendingDeletion: c.pendingDeletion };
      const groups = none ? 'no groups' : rec.sync.groups.map((g) => rec.groupsCache.find((x) => x.id === g)?.name ?? g).join(', ');
      const missing = c.pendingDeletion ? `, ${c.pendingDeletion} missing (deleted after ${rec.sync.deviceDeletionAfterSyncs} syncs)` : '';
      const patch: StatusPatch = {
        uemServer: status(s.uemServer, 'green', 'connected', started, true),
        deviceSync: r.blocked
          ? status(s.deviceSync, 'red', `synced ${c.devices} devices of ${groups}, but kept ${r.blocked.wouldDelete} devices (${r.blocked.percent}%) the UEM no longer lists: more than the deletion threshold of ${r.blocked.threshold}%`, started, false, counts)
          : none
            ? status(s.deviceSync, 'gray', `${noGroups} (${c.deleted} devices of the groups no longer selected deleted${missing})`, started, true, counts)
            : status(s.deviceSync, 'green', `synced ${c.devices} devices of ${groups}: ${c.added} added, ${c.updated} updated, ${c.deleted} deleted${missing}`, started, true, counts),
      };
      await this.d.saveStatus(this.id, patch);
      this.d.logger.info('device sync done', { integration: this.id, tenant: rec.tenant, ...counts, blocked: Boolean(r.blocked) });
      await this.runTagging(rec, now, signal, adapter);
    } catch (e) {
      if (signal.aborted) throw e;
      const msg = describeError(e);
      const patch: StatusPatch = { deviceSync: status(s.deviceSync, 'red', `sync failed, nothing was changed: ${msg}`, started, false) };
      if (e instanceof UemError && (e.kind === 'auth' || e.kind === 'unavailable' || e.kind === 'timeout')) patch.uemServer = status(s.uemServer, 'red', msg, started, false);
      await this.d.saveStatus(this.id, patch);
      this.d.logger.warn('device sync failed', { integration: this.id, tenant: rec.tenant, reason: logReason(e) });
    }
  }

  /** Whether any group this integration wrote, of those `which` selects, still holds devices. */
  private holdsMembers(rec: IntegrationRecord, which: (name: string) => boolean): boolean {
    return this.d.db.tagNames(rec.id).some((n) => which(n) && this.d.db.tagMembers(rec.id, n).size > 0);
  }

  /**
   * A PII switch turned off while this sync ran: the edit erased the stored values at once, and
   * then this sync (which read the settings before) wrote them back, to stay until the next sync.
   */
  private async erasePiiSwitchedOff(rec: IntegrationRecord): Promise<void> {
    const now = await this.d.load(this.id);
    if (!now) return;
    const was = rec.sync.pii;
    const is = now.sync.pii;
    const off = { name: was.deviceName && !is.deviceName, phone: was.deviceNumber && !is.deviceNumber, email: was.email && !is.email };
    if (off.name || off.phone || off.email) this.d.db.erasePii(this.id, off, (udid, devId) => placeholderEmail(rec.vendor, udid, devId));
  }

  private async runApp(rec: IntegrationRecord, now: () => string, signal: AbortSignal): Promise<void> {
    const s = rec.status;
    const started = now();
    let adapter: UemAdapter;
    try {
      adapter = await this.d.adapterFor(rec, signal);
      const r = await appSync(rec, adapter, this.d.db, signal);
      await this.d.saveStatus(this.id, { appSync: status(s.appSync, 'green', `read the apps of ${r.devices} devices (${r.changed} changed)`, started, true, { devices: r.devices, changed: r.changed, apps: r.apps }) });
      this.jobOutcome(rec, 'app sync');
    } catch (e) {
      if (signal.aborted) throw e;
      await this.d.saveStatus(this.id, { appSync: status(s.appSync, 'red', `app sync failed: ${describeError(e)}`, started, false) });
      this.jobOutcome(rec, 'app sync', e);
      return;
    }
    const policies = await this.d.policies(rec.tenant);
    const active = policies.filter((p) => p.active).length;
    // Nothing to write and nothing left to empty: gray without a pass.
    if (policies.length === 0 && !this.holdsMembers(rec, (n) => !isTagName(rec.tagging.prefix, n))) {
      await this.d.saveStatus(this.id, { policyGroups: status(s.policyGroups, 'gray', 'no app policies', started, false, {}) });
      return;
    }
    try {
      const r = await policyGroups(rec, policies, adapter, this.d.db, signal);
      await this.d.saveStatus(this.id, {
        // No active policy (the last one deleted or deactivated): gray once its groups are emptied, as the guides' "not enabled".
        policyGroups:
          active === 0
            ? status(s.policyGroups, 'gray', `no app policies${r.removed ? ` (${r.removed} devices taken out of the groups of policies no longer active)` : ''}`, started, true, { ...r })
            : status(s.policyGroups, 'green', `${count(active, 'policy group')} up to date (${r.added} devices added, ${r.removed} removed)`, started, true, { ...r }),
      });
      this.jobOutcome(rec, 'policy groups');
    } catch (e) {
      if (signal.aborted) throw e;
      await this.d.saveStatus(this.id, { policyGroups: status(s.policyGroups, 'red', `policy groups not updated: ${describeError(e)}`, started, false) });
      this.jobOutcome(rec, 'policy groups', e);
    }
  }

  private async runTagging(rec: IntegrationRecord, now: () => string, signal: AbortSignal, given?: UemAdapter): Promise<void> {
    const s = rec.status;
    const t = rec.tagging;
    const off = !t.deviceStatus && !t.deviceRisk && !t.threatFactors;
    // Off, and no tag left holding devices: gray without a pass. Off with tags still holding
    // devices: the pass empties them, and the indicator is gray still (it stayed green for ever).
    if (off && !this.holdsMembers(rec, (n) => isTagName(t.prefix, n))) {
      await this.d.saveStatus(this.id, { tagging: status(s.tagging, 'gray', 'tagging is off', now(), false, {}) });
      return;
    }
    const started = now();
    try {
      const adapter = given ?? (await this.d.adapterFor(rec, signal));
      const r = await tagging(rec, adapter, this.d.db, signal);
      const text = off ? `tagging is off (${r.removed} devices taken out of its tags)` : `${count(r.groups, 'tag')} up to date (${r.added} added, ${r.removed} removed, ${r.calls} UEM calls)`;
      await this.d.saveStatus(this.id, { tagging: status(s.tagging, off ? 'gray' : 'green', text, started, true, { ...r }) });
      this.jobOutcome(rec, 'tagging');
    } catch (e) {
      if (signal.aborted) throw e;
      await this.d.saveStatus(this.id, { tagging: status(s.tagging, 'red', `tagging failed: ${describeError(e)}`, started, false) });
      this.jobOutcome(rec, 'tagging', e);
    }
  }

  /** Jobs whose last run failed: said at the first failure of a streak, and when it ends. */
  private readonly failingJobs = new Set<string>();

  /**
   * The console showed a failed app sync, policy group pass or tagging pass; the log (what on-call
   * reads) said nothing. Once per streak, so a UEM refusing for a day is one line, not one per run.
   */
  private jobOutcome(rec: IntegrationRecord, job: string, failure?: unknown): void {
    const meta = { integration: this.id, tenant: rec.tenant, job };
    if (failure === undefined) {
      if (this.failingJobs.delete(job)) this.d.logger.info('integration job succeeded again', meta);
    } else if (!this.failingJobs.has(job)) {
      this.failingJobs.add(job);
      this.d.logger.warn('integration job failed', { ...meta, reason: logReason(failure) });
    }
  }
}

/** A failure as the operator's log tells it: the status text, but naming the inventory's file where the tenant's status does not. */
function logReason(e: unknown): string {
  return e instanceof InventoryStorageError ? e.message : describeError(e);
}
