/**
 * The sync engine: one device sync, app sync, tagging pass or policy-group pass of one integration,
 * with the seed guides' safeguards. Pure of scheduling: the runner (runner.ts) decides when.
 *
 * Safety rules, in the order they bite:
 *  - a device sync writes nothing unless every selected group was listed completely (a 5xx, a
 *    timeout, a truncated page or a 429 that outlasts its wait fail the whole sync);
 *  - devices missing from a complete sync are deleted only after `deviceDeletionAfterSyncs` such
 *    syncs, and not at all when more than `deviceDeletionThresholdPercent` would go at once;
 *  - tags and policy groups are written as differences from what was last written: an unchanged
 *    inventory makes no call.
 */
import type { RelayErrorCode } from '../../common/api-codes.js';
import type { Clock } from '../../common/clock.js';
import { IDEMPOTENT_METHODS } from '../../common/http-policy.js';
import { UemError, rateLimitResetMs, readText, retryAfterMs, type UemAdapter, type UemDevice, type UemFetch, type UemGroup, type Vendor } from '../../uem/adapter.js';
import type { InventoryDb, SyncCounts } from '../inventory/db.js';
import { UemlinkError } from '../../common/errors.js';
import type { SyncSettings, TaggingSettings } from './model.js';
import { redactString } from '../../common/redact.js';

export type Indicator = 'green' | 'red' | 'gray';

export interface ComponentStatus {
  indicator: Indicator;
  message: string;
  lastRun: string | null;
  lastSuccess: string | null;
  counts: Record<string, number>;
}

export interface AppPolicy {
  name: string;
  active: boolean;
  /** App identifiers (bundle ids / package names) or exact app names. */
  apps: string[];
}

// ---- resilient transport ---------------------------------------------------------------------------

export interface RetryOptions {
  signal: AbortSignal;
  clock: Clock;
  /** First backoff; doubled per attempt, with jitter. */
  baseMs: number;
  attempts: number;
  /** A Retry-After longer than this is not waited for: the sync fails and tries at its next run. */
  maxRetryAfterMs: number;
  /**
   * The wait a 429 without Retry-After states in its body, for vendors that say it there (Hexnode:
   * "Expected available in 57.0 seconds"); undefined when the body says nothing.
   */
  throttleWait?: (body: string) => number | undefined;
}

function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const t = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clock.clearTimeout(t);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const TRANSIENT_RELAY: ReadonlySet<string> = new Set<RelayErrorCode>(['no_connector', 'connector_lost', 'connector_error', 'upstream_unreachable', 'upstream_timeout']);

/**
 * Retries what is safe to retry: 429 (not processed, any method) after its Retry-After, and for
 * GETs 5xx, relay hiccups and network errors with exponential backoff. One integration's waits never
 * hold another's: each has its own fetch.
 */
export function resilientFetch(fetch: UemFetch, o: RetryOptions): UemFetch {
  return async (path, init = {}) => {
    const method = (init.method ?? 'GET').toUpperCase();
    const idempotent = init.idempotent === true || IDEMPOTENT_METHODS.has(method);
    for (let attempt = 1; ; attempt++) {
      const backoff = o.baseMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2);
      let res: Response;
      try {
        res = await fetch(path, { ...init, signal: o.signal });
      } catch (e) {
        if (o.signal.aborted || !idempotent || attempt >= o.attempts) throw e;
        await sleep(o.clock, backoff, o.signal);
        continue;
      }
      if (attempt >= o.attempts) return res;
      if (res.status === 429) {
        let stated = retryAfterMs(res.headers.get('retry-after')) ?? rateLimitResetMs(res.headers.get('x-ratelimit-reset'));
        if (stated === undefined && o.throttleWait) {
          const text = await readText(res, 4096)
            .then((r) => r.text)
            .catch(() => '');
          stated = o.throttleWait(text);
          // Read for its wait: a copy goes on if it is not retried.
          res = new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
        }
        const ra = stated ?? backoff;
        if (ra > o.maxRetryAfterMs) return res;
        await res.arrayBuffer().catch(() => undefined);
        await sleep(o.clock, ra, o.signal);
        continue;
      }
      const code = res.headers.get('x-uemlink-error');
      if (idempotent && (res.status >= 500 || (code !== null && TRANSIENT_RELAY.has(code)))) {
        await res.arrayBuffer().catch(() => undefined);
        await sleep(o.clock, backoff, o.signal);
        continue;
      }
      return res;
    }
  };
}

// ---- device sync ---------------------------------------------------------------------------------

export interface DeviceSyncResult {
  counts: SyncCounts & { devices: number };
  /** Set when the threshold kept devices that would have been deleted. */
  blocked?: { wouldDelete: number; percent: number; threshold: number };
}

/** The owner e-mail placeholder the guides use when PII import is off. */
export function placeholderEmail(vendor: Vendor, udid: string | null, id: string): string {
  return `UEMDevice${udid ?? id}@${vendor}.UEM`;
}

export function applyPii(d: UemDevice, pii: SyncSettings['pii'], vendor: Vendor): UemDevice {
  return {
    ...d,
    name: pii.deviceName ? d.name : null,
    phone: pii.deviceNumber ? d.phone : null,
    ownerEmail: pii.email ? d.ownerEmail : placeholderEmail(vendor, d.udid, d.id),
    ownerName: pii.email ? d.ownerName : null,
  };
}

export interface SyncTarget {
  id: string;
  tenant: string;
  vendor: Vendor;
  sync: SyncSettings;
  tagging: TaggingSettings;
}

export async function deviceSync(it: SyncTarget, adapter: UemAdapter, db: InventoryDb, clock: Clock, signal: AbortSignal): Promise<DeviceSyncResult> {
  const all = await adapter.groups();
  const byId = new Map(all.map((g) => [g.id, g]));
  const selected: UemGroup[] = [];
  for (const id of it.sync.groups) {
    const g = byId.get(id);
    if (!g) throw new UemError('not_found', `group ${id} no longer exists in the UEM (or the API account cannot see it); edit the integration's groups`);
    selected.push(g);
  }
  const seen = new Map<string, { device: UemDevice; groups: string[] }>();
  const list = async (groups: UemGroup[]): Promise<void> => {
    for (const g of groups) {
      for await (const page of adapter.devicesInGroup(g)) {
        if (signal.aborted) throw signal.reason as Error;
        for (const d of page.devices) {
          const cur = seen.get(d.id);
          if (!cur) seen.set(d.id, { device: applyPii(d, it.sync.pii, it.vendor), groups: [g.id] });
          else if (!cur.groups.includes(g.id)) cur.groups.push(g.id);
        }
      }
    }
  };
  await list(selected);
  // Complete: decide deletions, then write in one transaction.
  let plan = db.planDeletion(it.id, new Set(seen.keys()), it.sync.deviceDeletionAfterSyncs);
  // A second look before deleting: a device that moved during this sync from a group not yet
  // listed to one already listed was in neither listing, and deleting it lost its verdict (its
  // Risk tag then came off in the UEM). Groups listed before the last are listed again, only when
  // something would be deleted, so a sync without deletions costs no more.
  if (plan.wouldDelete > 0 && selected.length > 1) {
    await list(selected.slice(0, -1));
    plan = db.planDeletion(it.id, new Set(seen.keys()), it.sync.deviceDeletionAfterSyncs);
  }
  const percent = plan.total === 0 ? 0 : (plan.wouldDelete / plan.total) * 100;
  const blocked = it.sync.deviceDeletionThresholdPercent < 100 && plan.wouldDelete > 0 && percent > it.sync.deviceDeletionThresholdPercent;
  const counts = db.applyDeviceSync(it.id, it.tenant, {
    seen: [...seen.values()].map((s) => ({ device: s.device, groups: s.groups.sort() })),
    deleteAfter: it.sync.deviceDeletionAfterSyncs,
    allowDeletion: !blocked,
    now: new Date(clock.now()).toISOString(),
  });
  const result: DeviceSyncResult = { counts: { ...counts, devices: db.countDevices(it.id) } };
  if (blocked) result.blocked = { wouldDelete: plan.wouldDelete, percent: Math.round(percent * 10) / 10, threshold: it.sync.deviceDeletionThresholdPercent };
  return result;
}

// ---- app sync ------------------------------------------------------------------------------------

export async function appSync(it: SyncTarget, adapter: UemAdapter, db: InventoryDb, signal: AbortSignal): Promise<{ devices: number; changed: number; apps: number }> {
  let devices = 0;
  let changed = 0;
  let apps = 0;
  // One page of the inventory at a time; each page's inventories are fetched and stored before the
  // next page is read (devices added meanwhile sort anywhere and are picked up next time).
  for (const batch of db.devicePages(it.id, 100)) {
    if (signal.aborted) throw signal.reason as Error;
    devices += batch.length;
    const got = await adapter.apps(batch);
    for (const d of batch) {
      const list = got.get(d.id);
      if (!list) continue; // not returned: keep what we had rather than erase it
      apps += list.length;
      if (db.applyApps(it.id, d.id, list)) changed++;
    }
  }
  return { devices, changed, apps };
}

// ---- writing device groups back (tags, policy groups) ----------------------------------------------

export interface WriteBackResult {
  groups: number;
  added: number;
  removed: number;
  /** UEM calls made (0 when nothing changed). */
  calls: number;
}

const cap = (s: string): string => (s ? s[0]!.toUpperCase() + s.slice(1).toLowerCase() : s);

/** The tags each device should carry, per the switches (names as the guides' CHKP_* ones, with our prefix). */
export function desiredTags(it: SyncTarget, db: InventoryDb): Map<string, Set<string>> {
  const t = it.tagging;
  const want = new Map<string, Set<string>>();
  const add = (tag: string, id: string): void => {
    let s = want.get(tag);
    if (!s) want.set(tag, (s = new Set()));
    s.add(id);
  };
  if (!t.deviceStatus && !t.deviceRisk && !t.threatFactors) return want;
  for (const page of db.devicePages(it.id)) {
    for (const d of page) {
      if (t.deviceStatus) add(`${t.prefix}_Status_${cap(d.status)}`, d.id);
      if (t.deviceRisk && d.risk !== 'none') add(`${t.prefix}_Risk_${cap(d.risk)}`, d.id);
      if (t.threatFactors) for (const f of d.threatFactors) add(`${t.prefix}_TF_${f.replace(/[^A-Za-z0-9_-]/g, '_')}`, d.id);
    }
  }
  return want;
}

/**
 * Makes each named group hold exactly its desired members, by differences from what was last
 * written (and, the first time a group is used, from what the UEM says it holds). `managed` are all
 * the group names this pass owns: one not in `desired` is emptied.
 */
export async function writeBack(
  integrationId: string,
  desired: Map<string, Set<string>>,
  managed: string[],
  adapter: UemAdapter,
  db: InventoryDb,
  signal: AbortSignal,
  /** Groups created even while empty (an active policy's: admins attach compliance policies to it before any device violates). */
  mustExist: ReadonlySet<string> = new Set(),
): Promise<WriteBackResult> {
  const r: WriteBackResult = { groups: 0, added: 0, removed: 0, calls: 0 };
  const names = new Set([...desired.keys(), ...managed]);
  /** Finds or creates the group and records it with its baseline (what the UEM says it holds). */
  const establish = async (name: string): Promise<string> => {
    const id = await adapter.ensureTagGroup(name);
    r.calls++;
    const inUem = await adapter.tagGroupMembers(id, name);
    r.calls++;
    // The id is kept only with its baseline: kept alone (the members' read failing), the next pass
    // would take "no members" for what the UEM holds and never remove those it does.
    const known = new Set(db.deviceIds(integrationId));
    db.setTagId(integrationId, name, id);
    db.setTagMembers(integrationId, name, inUem.filter((d) => known.has(d)), []);
    return id;
  };
  /** Writes the differences between what the group should hold and what it was last written. */
  const apply = async (name: string, id: string, want: Set<string>): Promise<void> => {
    const have = db.tagMembers(integrationId, name);
    const add = [...want].filter((d) => !have.has(d));
    const remove = [...have].filter((d) => !want.has(d));
    // Recorded per call: a failure after some calls leaves what they wrote recorded as written.
    for (let i = 0; i < add.length; i += 500) {
      const part = add.slice(i, i + 500);
      await adapter.addToTagGroup(id, name, part);
      r.calls++;
      db.setTagMembers(integrationId, name, part, []);
      r.added += part.length;
    }
    for (let i = 0; i < remove.length; i += 500) {
      const part = remove.slice(i, i + 500);
      await adapter.removeFromTagGroup(id, name, part);
      r.calls++;
      db.setTagMembers(integrationId, name, [], part);
      r.removed += part.length;
    }
  };
  for (const name of [...names].sort()) {
    if (signal.aborted) throw signal.reason as Error;
    const want = desired.get(name) ?? new Set<string>();
    let id = db.tagId(integrationId, name);
    if (id === undefined) {
      if (want.size === 0 && !mustExist.has(name)) continue; // no empty tag groups
      id = await establish(name);
    }
    r.groups++;
    try {
      await apply(name, id, want);
    } catch (e) {
      // The group itself is gone (an admin deleted the tag in the UEM console): every later pass
      // would fail on the stored id. Forget it, and create it again now if anything belongs in it.
      if (!(e instanceof UemError && e.kind === 'not_found')) throw e;
      db.forgetTag(integrationId, name);
      if (want.size === 0 && !mustExist.has(name)) continue;
      id = await establish(name);
      await apply(name, id, want);
    }
  }
  return r;
}

/**
 * Whether a group name is one of tagging's (`<prefix>_Status_…`, `_Risk_…`, `_TF_…`); every other
 * group the integration writes is a policy group. One rule for both passes: a policy named
 * `<prefix>_blocked_apps` was taken for a tag by one and ignored by the other, and its group was
 * never emptied when the policy went.
 */
export function isTagName(prefix: string, name: string): boolean {
  return name.startsWith(`${prefix}_`) && /^(?:Status|Risk|TF)_/.test(name.slice(prefix.length + 1));
}

export async function tagging(it: SyncTarget, adapter: UemAdapter, db: InventoryDb, signal: AbortSignal): Promise<WriteBackResult> {
  const managed = db.tagNames(it.id).filter((n) => isTagName(it.tagging.prefix, n));
  return writeBack(it.id, desiredTags(it, db), managed, adapter, db, signal);
}

/** Policy groups (the MTP workflow): one UEM group named exactly after each active app policy. */
export async function policyGroups(it: SyncTarget, policies: AppPolicy[], adapter: UemAdapter, db: InventoryDb, signal: AbortSignal): Promise<WriteBackResult> {
  const desired = new Map<string, Set<string>>();
  for (const p of policies) desired.set(p.name, new Set(p.active ? db.devicesWithApps(it.id, p.apps) : []));
  const managed = db.tagNames(it.id).filter((n) => !isTagName(it.tagging.prefix, n));
  const active = new Set(policies.filter((p) => p.active).map((p) => p.name));
  return writeBack(it.id, desired, managed, adapter, db, signal, active);
}

// ---- status -------------------------------------------------------------------------------------

export function describeError(e: unknown): string {
  if (e instanceof UemError) {
    const hint: Record<string, string> = {
      auth: 'check the credentials and the API account\'s permissions',
      rate_limited: 'the UEM rate-limits this account; the next run retries',
      unavailable: 'the UEM or the connector did not answer; the next run retries',
      timeout: 'the UEM is too slow; the next run retries',
      protocol: 'the UEM answered something incomplete or unexpected; nothing was changed',
      not_found: '',
    };
    return redactString(`${e.message}${hint[e.kind] ? ` (${hint[e.kind]})` : ''}`);
  }
  // Redacted here, where UEM answers become status text: a UEM that echoes a credential in its
  // error would otherwise show it in the console, the API's status and Verify's details. A
  // UemlinkError is shown as a tenant may see it (an inventory failure without the cloud's paths).
  return redactString(e instanceof UemlinkError ? e.publicMessage : e instanceof Error ? e.message : String(e));
}

/**
 * A component as shown (API status, console): a paused integration's device and app syncs are gray
 * "paused" (both timers are stopped; App sync stayed green as if it still ran).
 */
export function shownComponent(s: ComponentStatus, key: string, paused: boolean): ComponentStatus {
  return paused && (key === 'deviceSync' || key === 'appSync') ? { ...s, indicator: 'gray', message: `paused (last: ${s.message})` } : s;
}

export function emptyStatus(message: string, indicator: Indicator = 'gray'): ComponentStatus {
  return { indicator, message, lastRun: null, lastSuccess: null, counts: {} };
}
