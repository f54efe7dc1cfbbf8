/**
 * The Workspace ONE UEM (AirWatch) adapter: the vendor's REST API (uem-api-reference.md, mirrored by
 * src/uem/simulator/workspace-one.ts) turned into the normalized model of ../adapter.ts.
 *
 * Calls (paths relative to the API root "/API"):
 *  - ping: GET /system/info
 *  - groups: GET /system/groups/search (v2, paged) for the organization groups, then
 *    GET /system/groups/{top}/children (the whole tree in one answer) for their parents;
 *    GET /mdm/smartgroups/search (paged) for the smart groups
 *  - devices of an organization group: GET /mdm/devices/search?lgid=…&orderby=deviceid (v2, paged).
 *    `lgid` includes the groups below, so devices of child groups are dropped here (by
 *    LocationGroupId); each page is checked against Page/PageSize/Total (a short page throws).
 *  - devices of a smart group: GET /mdm/smartgroups/{id}/devices gives the member ids only (no
 *    paging, few fields), then POST /mdm/devices/id (BulkValues, pageSize ids per call) gives their
 *    full records; an answer lacking any id asked for throws (truncated, or removed meanwhile).
 *  - apps: POST /mdm/devices/id for the uuids, then GET /mdm/devices/{uuid}/apps/search per device
 *    (paged), a few at a time
 *  - tags: GET /mdm/tags/search (name matches partially: compared exactly here), POST /mdm/tags/addtag
 *    at the customer organization group, GET /mdm/tags/{id}/devices, POST /mdm/tags/{id}/adddevices
 *    and /removedevices (BulkValues; every fault other than "already (un)tagged" throws).
 *
 * Like every adapter it neither retries nor sleeps: failures are UemErrors with a kind.
 */
import { answerText, errorForResponse, UemError, type DevicePage, type UemAdapter, type UemApp, type UemDevice, type UemFetch, type UemGroup } from '../adapter.js';
import { chunks, intOf, isObj, pool, singleFlight, str, transportError, type Json } from './common.js';

/**
 * Smart groups get ids of their own kind: Workspace ONE numbers organization groups and smart
 * groups independently, so organization group 570 and smart group 570 can both exist, and a bare
 * id made the sync read (and delete against) the wrong group's devices.
 */
const SMART_PREFIX = 'sg:';

function smartGroupIdOf(id: string): string {
  return id.startsWith(SMART_PREFIX) ? id.slice(SMART_PREFIX.length) : id;
}

/** The largest page Workspace ONE serves to third-party clients. */
export const WS1_MAX_PAGE_SIZE = 500;
/** Device ids per tag add/remove call. */
const TAG_BULK_SIZE = 500;

export interface WorkspaceOneAdapterOptions {
  /** Devices (and apps, tags, groups) per page: 1..500, default 500. */
  pageSize?: number;
  /**
   * Put in front of every tag name given to the tag functions (ensureTagGroup("Risk_High") with
   * prefix "UEMLINK_" finds or creates "UEMLINK_Risk_High"). Default "": names are used as given.
   */
  tagPrefix?: string;
  /** App inventory calls in flight at once. Default 16. */
  appConcurrency?: number;
}

/** An id as Workspace ONE writes one: 5614, "5614" or {"Value":5614}. */
function idOf(v: unknown): string | undefined {
  if (isObj(v)) return idOf(v.Value);
  const n = intOf(v, { signed: true });
  return n === undefined || n < 0 ? undefined : String(n);
}

/** Workspace ONE's platform names (DeviceTypeEnum) in the normalized vocabulary. */
export function normalizePlatform(platform: string | null): string {
  const p = (platform ?? '').trim().toLowerCase().replace(/[\s_-]/g, '');
  if (p === 'apple' || p === 'appleios' || p === 'ios' || p === 'ipados') return 'ios';
  if (p === 'appleosx' || p === 'macos' || p === 'osx') return 'macos';
  if (p.startsWith('android')) return 'android';
  if (p.startsWith('win')) return 'windows';
  return 'other';
}

/**
 * A Workspace ONE timestamp as ISO-8601 UTC. Zone-less values ("2021-06-28T04:35:20.150") are UTC;
 * the .NET minimum date ("0001-01-01T00:00:00.000") and anything unreadable mean never: null.
 */
export function normalizeTime(v: unknown): string | null {
  const s = str(v)?.trim();
  if (!s || s.startsWith('0001-01-01')) return null;
  const zoned = /(Z|[+-]\d{2}:?\d{2})$/i.test(s);
  const ms = Date.parse(zoned || !/^\d{4}-\d{2}-\d{2}T/.test(s) ? s : `${s}Z`);
  if (Number.isNaN(ms)) return null;
  const iso = new Date(ms).toISOString();
  return iso.startsWith('0001-') ? null : iso;
}

function normalizeCompliance(v: unknown): string | null {
  const c = (str(v) ?? '').toLowerCase().replace(/[\s_-]/g, '');
  if (c === 'compliant') return 'compliant';
  if (c === 'noncompliant') return 'noncompliant';
  return null;
}

/** One device record of /mdm/devices/search or /mdm/devices/id in the normalized model. */
export function normalizeDevice(raw: unknown, what: string): UemDevice {
  if (!isObj(raw)) throw new UemError('protocol', `${what}: a device entry is not an object`);
  const id = idOf(raw.Id);
  if (id === undefined) throw new UemError('protocol', `${what}: a device has no Id.Value`);
  const platformId = isObj(raw.PlatformId) ? raw.PlatformId.Name : undefined;
  const enrollment = str(raw.EnrollmentStatus);
  return {
    id,
    udid: str(raw.Udid),
    serial: str(raw.SerialNumber),
    name: str(raw.DeviceFriendlyName),
    phone: str(raw.PhoneNumber),
    ownerEmail: str(raw.UserEmailAddress),
    ownerName: str(raw.UserName) ?? (isObj(raw.UserId) ? str(raw.UserId.Name) : null),
    platform: normalizePlatform(str(raw.Platform) ?? str(platformId)),
    os: str(raw.OperatingSystem),
    model: str(raw.Model),
    enrollment: enrollment === null ? null : enrollment.toLowerCase(),
    compliance: normalizeCompliance(raw.ComplianceStatus),
    lastSeen: normalizeTime(raw.LastSeen),
  };
}

function locationGroupOf(raw: unknown): string | undefined {
  if (!isObj(raw)) return undefined;
  const lg = raw.LocationGroupId;
  return isObj(lg) && 'Id' in lg ? idOf(lg.Id) : idOf(lg);
}

function arrayField(body: unknown, field: string, what: string): unknown[] {
  if (!isObj(body) || !Array.isArray(body[field])) throw new UemError('protocol', `${what}: the answer has no "${field}" list`);
  return body[field] as unknown[];
}

function intField(body: Json, field: string, what: string): number {
  const n = intOf(body[field], { signed: true });
  if (n === undefined || n < 0) throw new UemError('protocol', `${what}: the answer has no valid "${field}"`);
  return n;
}

/**
 * The rule of every page/pagesize listing: a page must hold min(pageSize, total - page*pageSize)
 * items (never fewer: a short page is a truncated answer, not the end of the list).
 */
function checkPage(got: number, page: number, pageSize: number, total: number, what: string): void {
  const expected = Math.max(0, Math.min(pageSize, total - page * pageSize));
  if (got < expected) throw new UemError('protocol', `${what}: ${got} items where Total ${total} and PageSize ${pageSize} promise ${expected} (truncated page)`);
  if (got > pageSize) throw new UemError('protocol', `${what}: ${got} items on a page of ${pageSize}`);
}

function pathId(id: string, what: string): string {
  if (!/^\d{1,18}$/.test(id)) throw new UemError('not_found', `${what}: "${id}" is not a Workspace ONE id`);
  return id;
}

interface OrgGroupInfo {
  id: string;
  name: string;
  level: number;
  type: string;
}

export function createWorkspaceOneAdapter(fetch: UemFetch, opts: WorkspaceOneAdapterOptions = {}): UemAdapter {
  const pageSize = opts.pageSize ?? WS1_MAX_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > WS1_MAX_PAGE_SIZE) throw new RangeError(`pageSize must be 1..${WS1_MAX_PAGE_SIZE}, not ${pageSize}`);
  const tagPrefix = opts.tagPrefix ?? '';
  const appConcurrency = opts.appConcurrency ?? 16;
  if (!Number.isInteger(appConcurrency) || appConcurrency < 1) throw new RangeError(`appConcurrency must be a whole number from 1, not ${appConcurrency}`);

  /**
   * One call. Resolves with the parsed JSON, or undefined for 204 (Workspace ONE's "nothing").
   * Non-2xx answers throw errorForResponse's UemError; a 2xx that is not JSON throws 'protocol'.
   */
  async function call(what: string, path: string, init: { method?: string; version?: number; body?: unknown; idempotent?: boolean } = {}): Promise<unknown> {
    const headers: Record<string, string> = { accept: `application/json;version=${init.version ?? 1}` };
    let body: string | undefined;
    if (init.body !== undefined) {
      body = JSON.stringify(init.body);
      headers['content-type'] = 'application/json';
    }
    let res: Response;
    try {
      res = await fetch(path, { method: init.method ?? 'GET', headers, ...(body === undefined ? {} : { body }), ...(init.idempotent ? { idempotent: true } : {}) });
    } catch (e) {
      throw transportError(what, e);
    }
    if (res.status === 204) {
      await res.body?.cancel().catch(() => undefined);
      return undefined;
    }
    if (!res.ok) throw await errorForResponse(res, what);
    let text: string;
    try {
      text = await answerText(res, what);
    } catch (e) {
      if (e instanceof UemError) throw e;
      throw transportError(`${what} (reading the answer)`, e);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new UemError('protocol', `${what}: HTTP ${res.status} with a body that is not JSON`, { status: res.status });
    }
  }

  // ---- organization groups -------------------------------------------------------------------

  async function orgGroups(): Promise<OrgGroupInfo[]> {
    const out: OrgGroupInfo[] = [];
    for (let page = 0; ; page++) {
      const what = `organization groups (page ${page})`;
      const body = await call(what, `/system/groups/search?page=${page}&pagesize=${pageSize}`, { version: 2 });
      if (body === undefined) break;
      const items = arrayField(body, 'OrganizationGroups', what);
      const total = intField(body as Json, 'TotalResults', what);
      checkPage(items.length, page, pageSize, total, what);
      for (const g of items) {
        const id = isObj(g) ? idOf(g.Id) : undefined;
        if (!isObj(g) || id === undefined) throw new UemError('protocol', `${what}: a group has no Id`);
        out.push({ id, name: str(g.Name) ?? id, level: intOf(g.LgLevel, { signed: true }) ?? Number.MAX_SAFE_INTEGER, type: str(g.LocationGroupType) ?? '' });
      }
      if ((page + 1) * pageSize >= total) break;
    }
    return out;
  }

  /** The customer (top) organization group: where tags are defined. Found once per adapter. */
  let customer: Promise<string> | undefined;
  function customerGroup(): Promise<string> {
    customer ??= orgGroups().then((groups) => {
      const top = [...groups].sort((a, b) => Number(b.type.toLowerCase() === 'customer') - Number(a.type.toLowerCase() === 'customer') || a.level - b.level)[0];
      if (!top) throw new UemError('protocol', 'organization groups: the API account sees no organization group');
      return top.id;
    });
    customer.catch(() => {
      customer = undefined; // try again next time
    });
    return customer;
  }

  // ---- devices ---------------------------------------------------------------------------------

  async function* orgGroupDevices(group: UemGroup): AsyncGenerator<DevicePage> {
    const gid = pathId(group.id, `devices of organization group ${group.id}`);
    const seen = new Set<string>();
    // The list must not change while it is paged: a device removed after page N shifts the later
    // ones up a place, one of them is never seen, and a complete-looking sync would delete it.
    let firstTotal: number | undefined;
    for (let page = 0; ; page++) {
      const what = `devices of organization group ${gid} (page ${page})`;
      const body = await call(what, `/mdm/devices/search?lgid=${gid}&orderby=deviceid&sortorder=ASC&page=${page}&pagesize=${pageSize}`, { version: 2 });
      if (body === undefined) {
        // 204: no (more) devices; after page 0, only if the list shrank meanwhile.
        if (firstTotal !== undefined) throw new UemError('protocol', `${what}: no content before the ${firstTotal} devices of page 0's Total: the list changed while paging; devices may have been skipped`);
        return;
      }
      const devices = arrayField(body, 'Devices', what);
      const b = body as Json;
      const total = intField(b, 'Total', what);
      if (firstTotal === undefined) firstTotal = total;
      else if (total !== firstTotal) throw new UemError('protocol', `${what}: the list changed while paging (Total ${firstTotal}, now ${total}); devices may have been skipped`);
      const size = intField(b, 'PageSize', what);
      const gotPage = intField(b, 'Page', what);
      if (size < 1) throw new UemError('protocol', `${what}: PageSize ${size}`);
      if (gotPage !== page) throw new UemError('protocol', `${what}: the answer is page ${gotPage}`);
      checkPage(devices.length, page, size, total, what);
      const out: UemDevice[] = [];
      for (const raw of devices) {
        const lg = locationGroupOf(raw);
        if (lg === undefined) throw new UemError('protocol', `${what}: a device has no LocationGroupId`);
        if (lg !== gid) continue; // lgid includes the groups below: only direct members here
        const d = normalizeDevice(raw, what);
        if (seen.has(d.id)) continue; // the list moved between pages
        seen.add(d.id);
        out.push(d);
      }
      if (out.length > 0) yield { devices: out };
      // The server's page size (it clamps) decides what a page number means.
      if ((page + 1) * size >= total) return;
    }
  }

  /**
   * Full records for device ids, in that order; any id missing from the answer throws, unless
   * `missingOk` (ids of devices the UEM may have removed since: they are left out).
   */
  async function devicesById(ids: readonly string[], what: string, missingOk = false): Promise<Array<{ device: UemDevice; uuid: string | null }>> {
    // A lookup, though POSTed (the ids go in the body): one 5xx failed a whole smart-group or app sync.
    const body = await call(what, '/mdm/devices/id', { method: 'POST', body: { BulkValues: { Value: ids } }, idempotent: true });
    const byId = new Map<string, { device: UemDevice; uuid: string | null }>();
    if (body !== undefined) {
      for (const raw of arrayField(body, 'Devices', what)) {
        const device = normalizeDevice(raw, what);
        byId.set(device.id, { device, uuid: str((raw as Json).Uuid) });
      }
    }
    if (missingOk) return ids.flatMap((id) => byId.get(id) ?? []);
    const missing = ids.filter((id) => !byId.has(id));
    if (missing.length > 0) {
      throw new UemError('protocol', `${what}: asked for ${ids.length} devices, the answer lacks ${missing.length} (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}): truncated, or removed meanwhile`);
    }
    return ids.map((id) => byId.get(id)!);
  }

  async function* smartGroupDevices(group: UemGroup): AsyncGenerator<DevicePage> {
    const sid = pathId(smartGroupIdOf(group.id), `devices of smart group ${group.id}`);
    const what = `members of smart group ${sid}`;
    const body = await call(what, `/mdm/smartgroups/${sid}/devices`);
    if (body === undefined) return;
    const ids: string[] = [];
    const seen = new Set<string>();
    for (const m of arrayField(body, 'Devices', what)) {
      const id = isObj(m) ? (idOf(m.Id) ?? idOf(m.DeviceId)) : undefined;
      if (id === undefined) throw new UemError('protocol', `${what}: a member has no Id`);
      if (seen.has(id)) continue;
      seen.add(id);
      ids.push(id);
    }
    const parts = chunks(ids, pageSize);
    for (let i = 0; i < parts.length; i++) {
      const found = await devicesById(parts[i]!, `devices of smart group ${sid} (part ${i + 1} of ${parts.length})`);
      yield { devices: found.map((f) => f.device) };
    }
  }

  // ---- apps ------------------------------------------------------------------------------------

  async function appsOf(uuid: string, deviceId: string): Promise<UemApp[]> {
    const out: UemApp[] = [];
    for (let page = 0; ; page++) {
      const what = `apps of device ${deviceId} (page ${page})`;
      const body = await call(what, `/mdm/devices/${encodeURIComponent(uuid)}/apps/search?page=${page}&pagesize=${pageSize}`);
      if (body === undefined) break; // 204: no inventory
      const items = arrayField(body, 'app_items', what);
      const total = intField(body as Json, 'TotalResults', what);
      checkPage(items.length, page, pageSize, total, what);
      for (const a of items) {
        if (!isObj(a)) throw new UemError('protocol', `${what}: an app entry is not an object`);
        const name = str(a.name) ?? str(a.bundle_id);
        if (name === null) throw new UemError('protocol', `${what}: an app has neither name nor bundle_id`);
        // Only what is on the device: "Pending Install" and other states are not installed apps.
        const status = str(a.installed_status);
        if (status !== null && status.toLowerCase() !== 'installed') continue;
        out.push({ id: str(a.bundle_id) ?? name, name, version: str(a.installed_version) });
      }
      if ((page + 1) * pageSize >= total) break;
    }
    return out;
  }

  // ---- tags ------------------------------------------------------------------------------------

  function tagName(name: string): string {
    const full = `${tagPrefix}${name}`;
    if (full.trim() === '' || full.length > 255) throw new RangeError(`a tag name must have 1..255 characters: "${full}"`);
    return full;
  }

  /** The id of the tag named exactly `name` visible at `og` (the name filter matches partially). */
  async function findTag(name: string, og: string): Promise<string | undefined> {
    const matches: Array<{ id: string; at: string | undefined }> = [];
    for (let page = 0; ; page++) {
      const what = `tags named "${name}" (page ${page})`;
      const body = await call(what, `/mdm/tags/search?organizationgroupid=${og}&name=${encodeURIComponent(name)}&page=${page}&pagesize=${pageSize}`);
      if (body === undefined) break;
      const items = arrayField(body, 'Tags', what);
      const total = intField(body as Json, 'Total', what);
      checkPage(items.length, page, pageSize, total, what);
      for (const t of items) {
        if (!isObj(t) || t.TagName !== name) continue;
        const id = idOf(t.Id);
        if (id === undefined) throw new UemError('protocol', `${what}: tag "${name}" has no Id`);
        matches.push({ id, at: idOf(t.LocationGroupId) });
      }
      if ((page + 1) * pageSize >= total) break;
    }
    // Defined at the customer group first (an ancestor's tag of the same name is a second choice).
    return (matches.find((m) => m.at === og) ?? matches[0])?.id;
  }

  const ensuring = singleFlight<string>();

  async function ensureTag(full: string): Promise<string> {
    const og = await customerGroup();
    const found = await findTag(full, og);
    if (found !== undefined) return found;
    const what = `creating tag "${full}" at organization group ${og}`;
    let body: unknown;
    try {
      body = await call(what, '/mdm/tags/addtag', { method: 'POST', body: { TagName: full, TagType: 'Device', LocationGroupId: Number(og) } });
    } catch (e) {
      if (e instanceof UemError && e.status === 400) {
        // Created by someone else meanwhile, or a name that clashes (e.g. in another case).
        const again = await findTag(full, og);
        if (again !== undefined) return again;
        throw new UemError('protocol', `${e.message} (and no tag named exactly "${full}" exists)`, { status: 400, cause: e });
      }
      throw e;
    }
    const id = isObj(body) ? idOf(body.Value) : undefined;
    if (id === undefined) throw new UemError('protocol', `${what}: the answer has no Value (tag id)`);
    return id;
  }

  async function bulkTag(op: 'add' | 'remove', tagId: string, name: string, deviceIds: string[]): Promise<void> {
    const tid = pathId(tagId, `tag "${name}"`);
    const ids = [...new Set(deviceIds)];
    for (const part of chunks(ids, TAG_BULK_SIZE)) {
      const what = `${op === 'add' ? 'tagging' : 'untagging'} ${part.length} devices ${op === 'add' ? 'with' : 'from'} tag "${name}" (${tid})`;
      const body = await call(what, `/mdm/tags/${tid}/${op}devices`, { method: 'POST', body: { BulkValues: { Value: part } } });
      if (!isObj(body)) throw new UemError('protocol', `${what}: no bulk result`);
      const total = intField(body, 'TotalItems', what);
      const accepted = intField(body, 'AcceptedItems', what);
      const failed = intField(body, 'FailedItems', what);
      const faults = isObj(body.Faults) && Array.isArray(body.Faults.Fault) ? (body.Faults.Fault as unknown[]) : [];
      if (total !== part.length || accepted + failed !== total) {
        throw new UemError('protocol', `${what}: the result counts ${total} items (${accepted} accepted, ${failed} failed) for ${part.length} sent`);
      }
      if (failed === 0) continue;
      if (faults.length < failed) throw new UemError('protocol', `${what}: ${failed} devices failed, ${faults.length} faults given`);
      // A device deleted in the console since the last device sync cannot carry the tag: for a
      // removal that is the end state; for an addition the next device sync deletes it here too.
      // Failing the pass for it held back every other device's tag until then.
      const benign = op === 'add' ? /already|not found|does not exist/i : /already|not (currently )?tagged|not associated|does not have|not found|does not exist/i;
      const gone = (f: Record<string, unknown>): boolean => f.ErrorCode === 404 || f.ErrorCode === '404';
      const bad = faults.filter((f) => !(isObj(f) && ((typeof f.Message === 'string' && benign.test(f.Message)) || gone(f))));
      if (bad.length > 0) {
        const sample = bad
          .slice(0, 3)
          .map((f) => (isObj(f) ? `${String(f.ItemValue)}: ${String(f.Message)} (${String(f.ErrorCode)})` : String(f)))
          .join('; ');
        throw new UemError('protocol', `${what}: ${bad.length} of ${part.length} devices failed: ${sample}${bad.length > 3 ? '; …' : ''}`);
      }
    }
  }

  return {
    vendor: 'workspace-one',

    async ping() {
      const body = await call('system info', '/system/info');
      if (!isObj(body)) throw new UemError('protocol', 'system info: the answer is not a JSON object');
    },

    async groups() {
      const ogs = await orgGroups();
      const known = new Set(ogs.map((g) => g.id));
      const parents = new Map<string, string | null>();
      // One children call on the top group gives the whole tree; more only when the account sees
      // separate subtrees (groups the first answer did not cover).
      for (const g of [...ogs].sort((a, b) => a.level - b.level)) {
        if (parents.has(g.id)) continue;
        const what = `organization groups below ${g.id}`;
        const tree = await call(what, `/system/groups/${pathId(g.id, what)}/children`);
        if (tree !== undefined && !Array.isArray(tree)) throw new UemError('protocol', `${what}: the answer is not a list`);
        for (const item of (tree ?? []) as unknown[]) {
          const id = isObj(item) ? idOf(item.Id) : undefined;
          if (!isObj(item) || id === undefined) throw new UemError('protocol', `${what}: a group has no Id.Value`);
          const p = isObj(item.ParentLocationGroup) ? idOf(item.ParentLocationGroup.Id) : undefined;
          if (!parents.has(id)) parents.set(id, p !== undefined && known.has(p) && p !== id ? p : null);
        }
        if (!parents.has(g.id)) parents.set(g.id, null);
      }
      const out: UemGroup[] = ogs.map((g) => ({ id: g.id, name: g.name, kind: 'organization', parentId: parents.get(g.id) ?? null }));
      const seen = new Set<string>();
      for (let page = 0; ; page++) {
        const what = `smart groups (page ${page})`;
        const body = await call(what, `/mdm/smartgroups/search?page=${page}&pagesize=${pageSize}`);
        if (body === undefined) break;
        const items = arrayField(body, 'SmartGroups', what);
        const total = intField(body as Json, 'Total', what);
        checkPage(items.length, page, pageSize, total, what);
        for (const s of items) {
          const id = isObj(s) ? idOf(s.SmartGroupID) : undefined;
          if (!isObj(s) || id === undefined) throw new UemError('protocol', `${what}: a smart group has no SmartGroupID`);
          if (seen.has(id)) continue;
          seen.add(id);
          out.push({ id: `${SMART_PREFIX}${id}`, name: str(s.Name) ?? id, kind: 'smart', parentId: null });
        }
        if ((page + 1) * pageSize >= total) break;
      }
      return out;
    },

    devicesInGroup(group: UemGroup): AsyncIterable<DevicePage> {
      if (group.kind === 'organization') return orgGroupDevices(group);
      if (group.kind === 'smart') return smartGroupDevices(group);
      return (async function* () {
        throw new UemError('not_found', `Workspace ONE has no ${group.kind} groups (group ${group.id})`);
      })();
    },

    async apps(devices: UemDevice[]) {
      const result = new Map<string, UemApp[]>();
      const ids = [...new Set(devices.map((d) => d.id))];
      if (ids.length === 0) return result;
      // The inventory is addressed by device uuid, which the normalized model does not carry.
      const uuids = new Map<string, string>();
      const parts = chunks(ids, pageSize);
      for (let i = 0; i < parts.length; i++) {
        // The stored devices include some the UEM removed since (pending deletion): left out, as
        // EPMM and Hexnode do, so that the others' apps are still read (their old lists stay).
        for (const f of await devicesById(parts[i]!, `device uuids for app inventories (part ${i + 1} of ${parts.length})`, true)) {
          if (f.uuid === null) throw new UemError('protocol', `device ${f.device.id} has no Uuid`);
          uuids.set(f.device.id, f.uuid);
        }
      }
      const found = ids.filter((id) => uuids.has(id));
      const lists: (UemApp[] | undefined)[] = new Array<UemApp[] | undefined>(found.length);
      await pool(found, appConcurrency, async (id, i) => {
        try {
          lists[i] = await appsOf(uuids.get(id)!, id);
        } catch (e) {
          if (!(e instanceof UemError && e.kind === 'not_found')) throw e; // removed meanwhile: left out
        }
      });
      found.forEach((id, i) => {
        const l = lists[i];
        if (l) result.set(id, l);
      });
      return result;
    },

    async ensureTagGroup(name: string) {
      const full = tagName(name);
      return ensuring(full, () => ensureTag(full));
    },

    async tagGroupMembers(tagId: string, name: string) {
      const tid = pathId(tagId, `tag "${name}"`);
      const what = `devices with tag "${name}" (${tid})`;
      const body = await call(what, `/mdm/tags/${tid}/devices`);
      if (body === undefined) return [];
      const out = new Set<string>();
      for (const row of arrayField(body, 'Device', what)) {
        const id = isObj(row) ? idOf(row.DeviceId) : undefined;
        if (id === undefined) throw new UemError('protocol', `${what}: an entry has no DeviceId`);
        out.add(id);
      }
      return [...out];
    },

    addToTagGroup(tagId: string, name: string, deviceIds: string[]) {
      return bulkTag('add', tagId, name, deviceIds);
    },

    removeFromTagGroup(tagId: string, name: string, deviceIds: string[]) {
      return bulkTag('remove', tagId, name, deviceIds);
    },
  };
}
