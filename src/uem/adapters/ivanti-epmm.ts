/**
 * The Ivanti EPMM (MobileIron Core) API v2 adapter: the vendor's REST API (uem-api-reference.md,
 * mirrored by src/uem/simulator/ivanti-epmm.ts, choices in docs/simulators/ivanti-epmm.md) turned into
 * the normalized model of ../adapter.ts.
 *
 * Calls (paths relative to the API root "/api/v2"; every one but ping carries adminDeviceSpaceId):
 *  - ping: GET /ping (is it an EPMM with API v2?), then GET /labels/label_summary?limit=0 (do the
 *    credentials work? whether /ping checks them is not documented)
 *  - groups: GET /labels/label_summary, offset/limit paged; every label is a group of kind 'label'
 *    without a parent
 *  - devices of a label: GET /devices?labelId=…&query=&fields=…&sortField=common.id, offset/limit
 *    paged until hasMore is false. Each page is checked against its envelope: results must number
 *    resultCount, and a last page must reach totalCount (else 'protocol': a truncated answer).
 *  - apps: GET /devices/appinventory?deviceUuids=u1,…,u25 (25 devices per call, a few calls at once)
 *  - tag groups are static labels: found by exact name in label_summary; created by
 *    PUT /devices/labels/{name}/add with no devices (the simulator's choice: an add on an unknown
 *    name creates a static label); members by GET /devices?labelId=…; PUT /devices/labels/{name}/add
 *    and /remove with {"deviceUuids":[…]} answer {"successful":true} (adding a member or removing a
 *    non-member is not an error).
 *
 * Device ids are EPMM's `common.uuid`. Like every adapter it neither retries nor sleeps: failures are
 * UemErrors with a kind.
 */
import { answerText, errorForResponse, readText, UemError, type DevicePage, type UemAdapter, type UemApp, type UemDevice, type UemFetch, type UemGroup } from '../adapter.js';
import { chunks, intOf, isObj, pool, singleFlight, str, transportError } from './common.js';

/** The largest `limit` EPMM accepts (documented for labels; devices clients use it too). */
export const EPMM_MAX_PAGE_SIZE = 200;
/** Devices per app-inventory call (the vendor's documented maximum). */
export const EPMM_APP_BATCH = 25;
/** Devices per label add/remove call. */
const LABEL_BATCH = 200;

/** What the device listing asks for: everything the normalized model needs. */
export const EPMM_DEVICE_FIELDS = [
  'common.id',
  'common.uuid',
  'common.SerialNumber',
  'common.model',
  'common.platform',
  'common.platform_name',
  'common.os_version',
  'common.status',
  'common.compliant',
  'common.quarantined',
  'common.last_connected_at',
  'common.current_phone_number',
  'ios.DeviceName',
  'user.email_address',
  'user.display_name',
  'user.user_id',
] as const;

export interface IvantiEpmmAdapterOptions {
  /** The API account's device space (`adminDeviceSpaceId`). Default 1 (Global). */
  adminDeviceSpaceId?: number;
  /** Devices and labels per page: 1..200, default 200. */
  pageSize?: number;
  /**
   * Put in front of every label name given to the tag functions (ensureTagGroup("Risk_High") with
   * prefix "UEMLINK_" finds or creates "UEMLINK_Risk_High"). Default "": names are used as given.
   */
  labelPrefix?: string;
  /** Device listings' `query` (e.g. `common.status = "ACTIVE"`). Default "": every device of the label. */
  deviceQuery?: string;
  /** App inventory calls in flight at once. Default 4. */
  appConcurrency?: number;
}

function boolOf(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  return undefined;
}

/** EPMM's `common.platform` ("iOS", "Android", "Windows", "macOS", …) in the normalized vocabulary. */
export function normalizePlatform(platform: string | null): string {
  const p = (platform ?? '').trim().toLowerCase().replace(/[\s_-]/g, '');
  if (p.startsWith('ios') || p.startsWith('ipados') || p === 'iphone' || p === 'ipad') return 'ios';
  if (p.startsWith('macos') || p.startsWith('osx') || p === 'mac') return 'macos';
  if (p.startsWith('android')) return 'android';
  if (p.startsWith('win')) return 'windows';
  return 'other';
}

/** `common.last_connected_at` (ISO-8601, or epoch ms) as ISO-8601 UTC; null when absent or unreadable. */
export function normalizeTime(v: unknown): string | null {
  let ms: number;
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) ms = v;
  else {
    const s = str(v)?.trim();
    if (!s) return null;
    if (/^\d{11,14}$/.test(s)) ms = Number(s);
    else ms = Date.parse(/^\d{4}-\d{2}-\d{2}T[\d:.]+$/.test(s) ? `${s}Z` : s);
  }
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/** `common.status`: ACTIVE -> "enrolled", RETIRED -> "unenrolled", others lower-cased ("lost", "wiped", …). */
export function normalizeStatus(v: unknown): string | null {
  const s = str(v)?.trim().toUpperCase();
  if (!s) return null;
  if (s === 'ACTIVE') return 'enrolled';
  if (s === 'RETIRED') return 'unenrolled';
  return s.toLowerCase();
}

/** A quarantined device is out of compliance whatever `common.compliant` says. */
function normalizeCompliance(compliant: unknown, quarantined: unknown): string | null {
  const c = boolOf(compliant);
  if (boolOf(quarantined) === true) return 'noncompliant';
  if (c === undefined) return null;
  return c ? 'compliant' : 'noncompliant';
}

/** One flat dotted-key record of GET /devices in the normalized model. */
export function normalizeDevice(raw: unknown, what: string): UemDevice {
  if (!isObj(raw)) throw new UemError('protocol', `${what}: a device entry is not an object`);
  const uuid = str(raw['common.uuid']);
  if (uuid === null) throw new UemError('protocol', `${what}: a device has no common.uuid`);
  return {
    id: uuid,
    udid: null, // not among the v2 fields we have sources for
    serial: str(raw['common.SerialNumber']),
    name: str(raw['ios.DeviceName']),
    phone: str(raw['common.current_phone_number']),
    ownerEmail: str(raw['user.email_address']),
    ownerName: str(raw['user.display_name']) ?? str(raw['user.user_id']),
    platform: normalizePlatform(str(raw['common.platform']) ?? str(raw['common.platform_name'])),
    os: str(raw['common.os_version']),
    model: str(raw['common.model']),
    enrollment: normalizeStatus(raw['common.status']),
    compliance: normalizeCompliance(raw['common.compliant'], raw['common.quarantined']),
    lastSeen: normalizeTime(raw['common.last_connected_at']),
  };
}

interface Envelope {
  totalCount: number;
  resultCount: number;
  hasMore: boolean;
  results: unknown[];
}

/** `{totalCount, resultCount, hasMore, results}`, checked for self-consistency (a short `results` throws). */
function envelopeOf(body: unknown, what: string): Envelope {
  if (!isObj(body)) throw new UemError('protocol', `${what}: the answer is not a JSON object`);
  if (!Array.isArray(body.results)) throw new UemError('protocol', `${what}: the answer has no "results" list`);
  const totalCount = intOf(body.totalCount, { signed: true });
  const resultCount = intOf(body.resultCount, { signed: true });
  const hasMore = boolOf(body.hasMore);
  if (totalCount === undefined || totalCount < 0) throw new UemError('protocol', `${what}: the answer has no valid "totalCount"`);
  if (resultCount === undefined || resultCount < 0) throw new UemError('protocol', `${what}: the answer has no valid "resultCount"`);
  if (hasMore === undefined) throw new UemError('protocol', `${what}: the answer has no valid "hasMore"`);
  if (body.results.length !== resultCount) {
    throw new UemError('protocol', `${what}: ${body.results.length} results where resultCount says ${resultCount} (truncated answer)`);
  }
  return { totalCount, resultCount, hasMore, results: body.results };
}

/**
 * EPMM's error text, from `{"messages":[{"localizedMessage":…}]}` (the simulator's shape) or a
 * top-level `message`; undefined when the body has neither.
 */
function epmmMessage(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as unknown;
    if (!isObj(j)) return undefined;
    if (Array.isArray(j.messages)) {
      const m = j.messages.map((x) => (isObj(x) ? (str(x.localizedMessage) ?? str(x.message)) : null)).filter((x): x is string => x !== null);
      if (m.length > 0) return m.join('; ');
    }
    return str(j.message) ?? undefined;
  } catch {
    return undefined;
  }
}

/** errorForResponse, with EPMM's error text as the message it picks up. */
async function errorFor(res: Response, what: string): Promise<UemError> {
  let text = '';
  try {
    text = (await readText(res, 4096)).text;
  } catch {
    /* the body broke off: the status still says enough */
  }
  const detail = epmmMessage(text);
  const headers = new Headers(res.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  // A 304 cannot carry a body in a Response; every other non-2xx can.
  const body = res.status === 304 ? null : detail === undefined ? text : JSON.stringify({ message: detail });
  return errorForResponse(new Response(body, { status: res.status, statusText: res.statusText, headers }), what);
}

interface LabelInfo {
  id: string;
  name: string;
  isStatic: boolean;
}

export function createIvantiEpmmAdapter(fetch: UemFetch, opts: IvantiEpmmAdapterOptions = {}): UemAdapter {
  const space = opts.adminDeviceSpaceId ?? 1;
  if (!Number.isSafeInteger(space) || space < 0) throw new RangeError(`adminDeviceSpaceId must be a whole number, not ${space}`);
  const pageSize = opts.pageSize ?? EPMM_MAX_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > EPMM_MAX_PAGE_SIZE) throw new RangeError(`pageSize must be 1..${EPMM_MAX_PAGE_SIZE}, not ${pageSize}`);
  const appConcurrency = opts.appConcurrency ?? 4;
  if (!Number.isInteger(appConcurrency) || appConcurrency < 1) throw new RangeError(`appConcurrency must be a whole number from 1, not ${appConcurrency}`);
  const labelPrefix = opts.labelPrefix ?? '';
  const deviceQuery = opts.deviceQuery ?? '';

  const qs = (params: Record<string, string | number>): string => new URLSearchParams(Object.entries({ adminDeviceSpaceId: space, ...params }).map(([k, v]): [string, string] => [k, String(v)])).toString();

  /** One call: the parsed JSON of a 2xx answer; non-2xx throws errorFor's UemError, non-JSON 'protocol'. */
  async function call(what: string, path: string, init: { method?: string; body?: unknown } = {}): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    let body: string | undefined;
    if (init.body !== undefined) {
      body = JSON.stringify(init.body);
      headers['content-type'] = 'application/json';
    }
    let res: Response;
    try {
      res = await fetch(path, { method: init.method ?? 'GET', headers, ...(body === undefined ? {} : { body }) });
    } catch (e) {
      throw transportError(what, e);
    }
    if (!res.ok) throw await errorFor(res, what);
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

  /**
   * Every item of an offset/limit listing, page by page. A page must match its envelope; the last one
   * (hasMore false) must reach totalCount; hasMore with an empty page would never end.
   */
  async function* paged(what: string, pathFor: (offset: number, limit: number) => string): AsyncGenerator<unknown[]> {
    // totalCount must stay what the first page said: a member removed meanwhile shifts the later
    // ones up a place, one is never seen, and a complete-looking sync would delete it.
    let firstTotal: number | undefined;
    for (let offset = 0; ; ) {
      const w = `${what} (offset ${offset})`;
      const e = envelopeOf(await call(w, pathFor(offset, pageSize)), w);
      if (firstTotal === undefined) firstTotal = e.totalCount;
      else if (e.totalCount !== firstTotal) throw new UemError('protocol', `${w}: the list changed while paging (totalCount ${firstTotal}, now ${e.totalCount}); items may have been skipped`);
      const got = e.results.length;
      if (got > pageSize) throw new UemError('protocol', `${w}: ${got} results on a page of ${pageSize}`);
      if (e.hasMore && got === 0) throw new UemError('protocol', `${w}: hasMore with no results`);
      if (!e.hasMore && offset + got < e.totalCount) {
        throw new UemError('protocol', `${w}: the list ends at ${offset + got} of totalCount ${e.totalCount} (truncated answer)`);
      }
      // A server that keeps saying hasMore past its own total (or ignores offset) would be read
      // for ever: the duplicates it sends are skipped by the callers, so nothing else stops it.
      if (e.hasMore && offset + got >= e.totalCount) {
        throw new UemError('protocol', `${w}: hasMore after ${offset + got} of totalCount ${e.totalCount} results (the server does not page as it says)`);
      }
      yield e.results;
      if (!e.hasMore) return;
      offset += got;
    }
  }

  // ---- labels ------------------------------------------------------------------------------------

  async function labels(): Promise<LabelInfo[]> {
    const out: LabelInfo[] = [];
    const seen = new Set<string>();
    const what = 'labels';
    for await (const items of paged(what, (offset, limit) => `/labels/label_summary?${qs({ limit, offset, sortField: 'id', sortOrder: 'ASC' })}`)) {
      for (const l of items) {
        const id = isObj(l) ? intOf(l.id, { signed: true }) : undefined;
        if (!isObj(l) || id === undefined) throw new UemError('protocol', `${what}: a label has no id`);
        const name = str(l.name);
        if (name === null) throw new UemError('protocol', `${what}: label ${id} has no name`);
        const isStatic = boolOf(l.isStatic);
        if (isStatic === undefined) throw new UemError('protocol', `${what}: label ${id} has no isStatic`);
        if (seen.has(String(id))) continue; // the list moved between pages
        seen.add(String(id));
        out.push({ id: String(id), name, isStatic });
      }
    }
    return out;
  }

  function labelName(name: string): string {
    const full = `${labelPrefix}${name}`;
    if (full.trim() === '' || full.length > 255) throw new RangeError(`a label name must have 1..255 characters: "${full}"`);
    // The name travels as a path segment: EPMM (and the relay's path check) cannot carry these.
    if (/[\u0000-\u001f\u007f/\\]/.test(full)) throw new RangeError(`a label name must not contain control characters, "/" or "\\": "${full}"`);
    return full;
  }

  /** The label named exactly `name`, else the one named so in another case (EPMM's names ignore case). */
  async function findLabel(name: string): Promise<LabelInfo | undefined> {
    const all = await labels();
    return all.find((l) => l.name === name) ?? all.find((l) => l.name.toLowerCase() === name.toLowerCase());
  }

  function staticOnly(l: LabelInfo, name: string): string {
    if (!l.isStatic) throw new UemError('protocol', `label "${l.name}" (${l.id}) exists but is dynamic: devices cannot be added to it; choose another name than "${name}"`);
    return l.id;
  }

  const ensuring = singleFlight<string>();

  async function ensureLabel(full: string): Promise<string> {
    const found = await findLabel(full);
    if (found) return staticOnly(found, full);
    await labelOp('add', full, []);
    const created = await findLabel(full);
    if (!created) throw new UemError('protocol', `creating label "${full}": the server confirmed, but no such label is listed afterwards`);
    return staticOnly(created, full);
  }

  async function labelOp(op: 'add' | 'remove', full: string, uuids: readonly string[]): Promise<void> {
    const what = `${op === 'add' ? 'adding' : 'removing'} ${uuids.length} devices ${op === 'add' ? 'to' : 'from'} label "${full}"`;
    const body = await call(what, `/devices/labels/${encodeURIComponent(full)}/${op}?${qs({})}`, { method: 'PUT', body: { deviceUuids: uuids } });
    if (!isObj(body) || boolOf(body.successful) !== true) throw new UemError('protocol', `${what}: the answer does not say {"successful":true}`);
  }

  async function labelMembers(labelId: string, what: string): Promise<string[]> {
    const out = new Set<string>();
    for await (const items of paged(what, (offset, limit) => `/devices?${qs({ labelId, query: '', fields: 'common.uuid', limit, offset, sortField: 'common.id', sortOrder: 'ASC' })}`)) {
      for (const d of items) {
        const uuid = isObj(d) ? str(d['common.uuid']) : null;
        if (uuid === null) throw new UemError('protocol', `${what}: a device has no common.uuid`);
        out.add(uuid);
      }
    }
    return [...out];
  }

  function labelId(id: string, what: string): string {
    if (!/^-?\d{1,15}$/.test(id)) throw new UemError('not_found', `${what}: "${id}" is not an EPMM label id`);
    return id;
  }

  // ---- devices and apps -------------------------------------------------------------------------

  async function* labelDevices(group: UemGroup): AsyncGenerator<DevicePage> {
    const id = labelId(group.id, `devices of label ${group.id}`);
    const what = `devices of label ${id}`;
    const fields = EPMM_DEVICE_FIELDS.join(',');
    const seen = new Set<string>();
    for await (const items of paged(what, (offset, limit) => `/devices?${qs({ labelId: id, query: deviceQuery, fields, limit, offset, sortField: 'common.id', sortOrder: 'ASC' })}`)) {
      const out: UemDevice[] = [];
      for (const raw of items) {
        const d = normalizeDevice(raw, what);
        if (seen.has(d.id)) continue; // the list moved between pages
        seen.add(d.id);
        out.push(d);
      }
      if (out.length > 0) yield { devices: out };
    }
  }

  /** One app-inventory call for up to 25 devices; devices the answer leaves out get no entry. */
  async function appsOf(uuids: readonly string[], into: Map<string, UemApp[]>, byKey: Map<string, string>): Promise<void> {
    const what = `app inventory of ${uuids.length} devices`;
    const body = await call(what, `/devices/appinventory?${qs({ deviceUuids: uuids.join(',') })}`);
    if (!isObj(body) || !Array.isArray(body.results)) throw new UemError('protocol', `${what}: the answer has no "results" list`);
    const rows = body.results as unknown[];
    const positional = rows.every((r) => isObj(r) && str(r.deviceUuid) === null);
    if (positional && rows.length !== uuids.length) {
      throw new UemError('protocol', `${what}: ${rows.length} inventories without deviceUuid for ${uuids.length} devices asked for`);
    }
    rows.forEach((r, i) => {
      if (!isObj(r)) throw new UemError('protocol', `${what}: an entry is not an object`);
      const key = positional ? uuids[i]!.toLowerCase() : str(r.deviceUuid)?.toLowerCase();
      const id = key === undefined ? undefined : byKey.get(key);
      if (id === undefined) throw new UemError('protocol', `${what}: an inventory for a device not asked for (${String(r.deviceUuid)})`);
      if (!Array.isArray(r.appInventory)) throw new UemError('protocol', `${what}: device ${id} has no "appInventory" list`);
      const apps: UemApp[] = [];
      for (const a of r.appInventory as unknown[]) {
        if (!isObj(a)) throw new UemError('protocol', `${what}: an app of device ${id} is not an object`);
        const name = str(a.name) ?? str(a.identifier);
        if (name === null) throw new UemError('protocol', `${what}: an app of device ${id} has neither name nor identifier`);
        apps.push({ id: str(a.identifier) ?? str(a.bundleId) ?? name, name, version: str(a.version) });
      }
      into.set(id, apps);
    });
  }

  return {
    vendor: 'ivanti-epmm',

    async ping() {
      const body = await call('API status', '/ping');
      if (!isObj(body) || !isObj(body.results)) throw new UemError('protocol', 'API status: the answer has no "results" object');
      const v = intOf(body.results.apiVersion, { signed: true });
      if (v !== undefined && v < 2) throw new UemError('protocol', `API status: API version ${v}, not 2`);
      const what = 'labels (credentials check)';
      envelopeOf(await call(what, `/labels/label_summary?${qs({ limit: 0, offset: 0 })}`), what);
    },

    async groups() {
      return (await labels()).map((l): UemGroup => ({ id: l.id, name: l.name, kind: 'label', parentId: null }));
    },

    devicesInGroup(group: UemGroup): AsyncIterable<DevicePage> {
      if (group.kind === 'label') return labelDevices(group);
      return (async function* () {
        throw new UemError('not_found', `Ivanti EPMM has no ${group.kind} groups, only labels (group ${group.id})`);
      })();
    },

    async apps(devices: UemDevice[]) {
      const result = new Map<string, UemApp[]>();
      const byKey = new Map<string, string>();
      for (const d of devices) if (!byKey.has(d.id.toLowerCase())) byKey.set(d.id.toLowerCase(), d.id);
      const batches = chunks([...byKey.values()], EPMM_APP_BATCH);
      await pool(batches, appConcurrency, (b) => appsOf(b, result, byKey));
      return result;
    },

    async ensureTagGroup(name: string) {
      const full = labelName(name);
      return ensuring(full, () => ensureLabel(full));
    },

    async tagGroupMembers(tagId: string, name: string) {
      const id = labelId(tagId, `members of label "${name}"`);
      return labelMembers(id, `members of label "${labelPrefix}${name}" (${id})`);
    },

    async addToTagGroup(_tagId: string, name: string, deviceIds: string[]) {
      const full = labelName(name);
      for (const part of chunks([...new Set(deviceIds)], LABEL_BATCH)) await labelOp('add', full, part);
    },

    async removeFromTagGroup(_tagId: string, name: string, deviceIds: string[]) {
      const full = labelName(name);
      for (const part of chunks([...new Set(deviceIds)], LABEL_BATCH)) await labelOp('remove', full, part);
    },
  };
}
