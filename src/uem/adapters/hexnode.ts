/**
 * The Hexnode UEM adapter: the vendor's REST API (uem-api-reference.md, mirrored by
 * src/uem/simulator/hexnode.ts, docs/simulators/hexnode.md) turned into the normalized model of
 * ../adapter.ts. Hexnode runs Django REST Framework: `{count,next,previous,results}` pages with
 * absolute `next` links, `{"detail": "..."}` errors, and a low quota (30 calls a minute).
 *
 * Calls (paths relative to the API root "/api/v1", always with the trailing slash):
 *  - ping: GET /devicegroups/?per_page=1
 *  - groups: GET /devicegroups/ (paged) -> every group, custom and dynamic, kind 'device-group'
 *  - devices of a group: GET /devices/?devicegroup={id} (paged). The filter is the one unconfirmed
 *    call the sync depends on (docs/simulators/hexnode.md); 400 on it means the group is gone.
 *  - apps: GET /devices/{id}/applications/ (paged) per device, `appConcurrency` at a time; a JSON
 *    404 (the device was deleted meanwhile) leaves that device out of the map
 *  - tags = custom device groups: GET /devicegroups/ (exact name), POST /devicegroups/ to create,
 *    GET /devicegroups/{id}/ for members, POST /devicegroups/{id}/ {add_devices, remove_devices}
 *
 * Paging is checked, never trusted: every page before the last must be full (per_page items), the
 * last must hold exactly what `count` says is left, `count` must not change between pages, a device
 * must not appear twice, and `next` must point at the same listing on the same host under the API
 * root (it is turned into a root-relative path; anything else throws 'protocol'). The host is the
 * `origin` option when given, else the first absolute link the API returned (pinned for the life of
 * the adapter).
 *
 * Like every adapter it neither retries nor sleeps: failures are UemErrors with a kind. A 429 is
 * 'rate_limited' with retryAfterMs from Retry-After, or else from the vendor's "Expected available
 * in N seconds" message.
 */
import { API_ROOT, answerText, errorForResponse, readText, UemError, type DevicePage, type UemAdapter, type UemApp, type UemDevice, type UemFetch, type UemGroup } from '../adapter.js';
import { chunks, intOf, isObj, pool, str, transportError } from './common.js';

/** The largest `per_page` the adapter asks for (the simulator's maximum; open-source clients use it). */
export const HEXNODE_PAGE_SIZE = 100;
/** Device ids per add/remove call. */
const MEMBERS_PER_CALL = 500;
const ROOT = API_ROOT.hexnode;

export interface HexnodeAdapterOptions {
  /**
   * The portal's origin ("https://acme.hexnodemdm.com"), when the caller knows it: `next` links
   * must stay on its host. Without it, the first absolute link the API returns pins the host.
   */
  origin?: string;
  /** `per_page` for every listing: 1..100, default 100. */
  pageSize?: number;
  /** App inventory calls in flight at once. Default 4 (the vendor allows 30 calls a minute). */
  appConcurrency?: number;
  /** Description of the device groups ensureTagGroup creates. */
  tagGroupDescription?: string;
}

/** Hexnode's `os_name` ("Android", "iOS", "iPadOS", "Windows", "macOS", "tvOS", …) normalized. */
export function normalizePlatform(osName: string | null): string {
  const p = (osName ?? '').trim().toLowerCase().replace(/[\s_-]/g, '');
  if (p === 'ios' || p === 'ipados' || p === 'iphoneos' || p === 'iphone' || p === 'ipad') return 'ios';
  if (p === 'macos' || p === 'osx' || p === 'macosx' || p === 'mac') return 'macos';
  if (p.startsWith('android')) return 'android';
  if (p.startsWith('windows') || p === 'win') return 'windows';
  return 'other';
}

/** A Hexnode timestamp ("2022-04-04T07:09:25.362338Z") as ISO-8601 UTC; null when absent or unreadable. */
export function normalizeTime(v: unknown): string | null {
  const s = str(v)?.trim();
  if (!s) return null;
  // Zone-less values are UTC (Django with USE_TZ writes "Z"; be lenient).
  const ms = Date.parse(/(Z|[+-]\d{2}:?\d{2})$/i.test(s) || !/^\d{4}-\d{2}-\d{2}T/.test(s) ? s : `${s}Z`);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/** One record of GET /devices/ in the normalized model. */
export function normalizeDevice(raw: unknown, what: string): UemDevice {
  if (!isObj(raw)) throw new UemError('protocol', `${what}: a device entry is not an object`);
  const id = intOf(raw.id, { signed: false });
  if (id === undefined) throw new UemError('protocol', `${what}: a device has no numeric id`);
  const user = isObj(raw.user) ? raw.user : {};
  const enrollment = str(raw.enrollment_status);
  return {
    id: String(id),
    udid: str(raw.udid),
    serial: str(raw.serial_number),
    name: str(raw.device_name),
    phone: str(raw.phone_number),
    ownerEmail: str(user.email),
    ownerName: str(user.name),
    platform: normalizePlatform(str(raw.os_name)),
    os: str(raw.os_version),
    model: str(raw.model_name),
    enrollment: enrollment === null ? null : enrollment.trim().toLowerCase(),
    compliance: raw.compliant === true ? 'compliant' : raw.compliant === false ? 'noncompliant' : null,
    lastSeen: normalizeTime(raw.last_reported),
  };
}

function normalizeApp(raw: unknown, what: string): UemApp {
  if (!isObj(raw)) throw new UemError('protocol', `${what}: an app entry is not an object`);
  const name = str(raw.name) ?? str(raw.app_name);
  const identifier = str(raw.identifier) ?? str(raw.bundle_id) ?? str(raw.package_name);
  if (name === null && identifier === null) throw new UemError('protocol', `${what}: an app has neither a name nor an identifier`);
  const version = typeof raw.version === 'number' ? String(raw.version) : str(raw.version);
  return { id: (identifier ?? name)!, name: (name ?? identifier)!, version };
}

/** Hexnode ids are positive integers; anything else cannot exist there. */
function pathId(id: string, what: string): number {
  if (!/^\d{1,15}$/.test(id)) throw new UemError('not_found', `${what}: "${id}" is not a Hexnode id`);
  return Number(id);
}

/** "Request was throttled. Expected available in 57.0 seconds." -> 57000 (capped at an hour). */
export function throttleWaitMs(text: string): number | undefined {
  const m = /expected available in\s+(\d+(?:\.\d+)?)\s*second/i.exec(text);
  return m ? Math.min(Math.ceil(Number(m[1]) * 1000), 3_600_000) : undefined;
}

/** What a DRF error body says: `detail`, or the first message under a field ("groupname: ..."). */
function drfMessage(body: unknown): { text: string; field?: string } | undefined {
  if (!isObj(body)) return undefined;
  if (typeof body.detail === 'string') return { text: body.detail };
  for (const [field, v] of Object.entries(body)) {
    const first = Array.isArray(v) ? v[0] : v;
    if (typeof first === 'string') return { text: `${field}: ${first}`, field };
  }
  return undefined;
}

/**
 * errorForResponse plus what Hexnode's answers say: the DRF message, the wait in the throttling
 * text, 400 on `devicegroup`/`*_devices` pks that do not exist = 'not_found', other 400s and
 * redirects = 'protocol' (the adapter sent something the API does not take), and an HTML 404 (the
 * URL is not an API route: wrong server address) = 'protocol'.
 */
async function hexnodeError(res: Response, what: string): Promise<UemError> {
  const text = await readText(res.clone(), 4096)
    .then((r) => r.text)
    .catch(() => '');
  const base = await errorForResponse(res, what);
  if (res.headers.get('x-uemlink-error')) return base;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const drf = drfMessage(body);
  const message = drf && !base.message.includes(drf.text) ? `${base.message}: ${drf.text}` : base.message;
  const s = res.status;
  let kind = base.kind;
  if (s === 400) kind = drf?.field === 'devicegroup' || /does not exist/i.test(drf?.text ?? '') ? 'not_found' : 'protocol';
  else if (s >= 300 && s < 400) kind = 'protocol';
  else if (s === 404 && body === undefined) kind = 'protocol';
  const retry = base.retryAfterMs ?? (s === 429 ? throttleWaitMs(drf?.text ?? text) : undefined);
  const where = s >= 300 && s < 400 && res.headers.get('location') ? ` (redirected to ${res.headers.get('location')})` : '';
  return new UemError(kind, `${message}${where}`, { status: s, ...(retry === undefined ? {} : { retryAfterMs: retry }) });
}

/** The device ids DRF names in "Invalid pk \"99\" - object does not exist." messages. */
function invalidPks(message: string): string[] {
  return [...message.matchAll(/Invalid pk \\?"(\d{1,18})\\?"/g)].map((m) => m[1]!);
}

/** The host part `next` links must keep: hostname and port, the scheme's default port as "". */
function hostKey(u: URL): string {
  return `${u.hostname.toLowerCase()}:${u.port}`;
}

export function createHexnodeAdapter(fetch: UemFetch, opts: HexnodeAdapterOptions = {}): UemAdapter {
  const pageSize = opts.pageSize ?? HEXNODE_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > HEXNODE_PAGE_SIZE) throw new RangeError(`pageSize must be 1..${HEXNODE_PAGE_SIZE}, not ${pageSize}`);
  const appConcurrency = opts.appConcurrency ?? 4;
  if (!Number.isInteger(appConcurrency) || appConcurrency < 1) throw new RangeError(`appConcurrency must be a whole number from 1, not ${appConcurrency}`);
  const description = opts.tagGroupDescription ?? 'Maintained by uemlink (device tagging); do not edit by hand.';
  let pinnedHost: string | undefined;
  if (opts.origin !== undefined) {
    let u: URL;
    try {
      u = new URL(opts.origin);
    } catch {
      throw new RangeError(`origin must be a URL such as https://acme.hexnodemdm.com, not "${opts.origin}"`);
    }
    pinnedHost = hostKey(u);
  }

  /** One call: the parsed JSON (undefined for 204). Non-2xx answers throw hexnodeError's UemError. */
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
    if (!res.ok) throw await hexnodeError(res, what);
    if (res.status === 204) {
      await res.body?.cancel().catch(() => undefined);
      return undefined;
    }
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
   * A `next` link as a path relative to the API root, if it continues `resource` on the same host;
   * anything else throws 'protocol'.
   */
  function followable(next: string, resource: string, what: string): string {
    const refuse = (why: string): UemError => new UemError('protocol', `${what}: refusing the next link ${JSON.stringify(next.slice(0, 200))}: ${why}`);
    let u: URL;
    if (/^[a-z][a-z0-9+.-]*:/i.test(next)) {
      try {
        u = new URL(next);
      } catch {
        throw refuse('not a URL');
      }
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw refuse('not an http(s) URL');
      if (u.username || u.password) throw refuse('it carries credentials');
      const host = hostKey(u);
      pinnedHost ??= host;
      if (host !== pinnedHost) throw refuse('it points at another host');
    } else {
      if (!next.startsWith('/') || next.startsWith('//') || next.includes('\\')) throw refuse('not an absolute URL or a path');
      u = new URL(next, 'https://relative.invalid');
    }
    if (!u.pathname.startsWith(`${ROOT}/`)) throw refuse(`it leaves the API root ${ROOT}`);
    const rel = u.pathname.slice(ROOT.length);
    if (rel !== resource) throw refuse(`it leaves the listing ${ROOT}${resource}`);
    return `${rel}${u.search}`;
  }

  /**
   * Every page of a DRF listing, checked (see the top of the file); yields each page's `results`
   * only once it is known to be complete.
   */
  async function* listing(what: string, resource: string, query: string): AsyncGenerator<unknown[]> {
    let path: string | null = `${resource}?${query}${query ? '&' : ''}page=1&per_page=${pageSize}`;
    const visited = new Set<string>();
    let count: number | undefined;
    let seen = 0;
    for (let n = 1; path !== null; n++) {
      const w = `${what} (page ${n})`;
      visited.add(path);
      const body = await call(w, path);
      if (!isObj(body) || !Array.isArray(body.results)) throw new UemError('protocol', `${w}: the answer has no "results" list`);
      const c = intOf(body.count, { signed: false });
      if (c === undefined) throw new UemError('protocol', `${w}: the answer has no valid "count"`);
      if (count === undefined) count = c;
      else if (c !== count) throw new UemError('protocol', `${w}: the list changed while paging (count ${count}, now ${c}); items may have been skipped`);
      if (body.next !== null && typeof body.next !== 'string') throw new UemError('protocol', `${w}: "next" is neither a link nor null`);
      const results = body.results as unknown[];
      const left = count - seen;
      if (body.next === null) {
        if (results.length !== left) throw new UemError('protocol', `${w}: the last page holds ${results.length} items where count ${count} leaves ${left} (truncated page)`);
      } else {
        const size = intOf(new URLSearchParams(path.slice(path.indexOf('?') + 1)).get('per_page'), { signed: false }) ?? pageSize;
        if (results.length !== size || results.length >= left) {
          throw new UemError('protocol', `${w}: ${results.length} items on a page of ${size} with ${left} of ${count} left and a next link (truncated page)`);
        }
      }
      seen += results.length;
      path = body.next === null ? null : followable(body.next, resource, w);
      if (path !== null && visited.has(path)) throw new UemError('protocol', `${w}: the next link goes back to a page already read`);
      yield results;
    }
  }

  async function all(what: string, resource: string, query = ''): Promise<unknown[]> {
    const out: unknown[] = [];
    for await (const page of listing(what, resource, query)) out.push(...page);
    return out;
  }

  interface GroupItem {
    id: number;
    name: string;
    type: string;
  }

  async function deviceGroups(): Promise<GroupItem[]> {
    const seen = new Set<number>();
    return (await all('device groups', '/devicegroups/')).map((g) => {
      const id = isObj(g) ? intOf(g.id, { signed: false }) : undefined;
      if (!isObj(g) || id === undefined || typeof g.groupname !== 'string') throw new UemError('protocol', 'device groups: an entry has no numeric id or no groupname');
      if (seen.has(id)) throw new UemError('protocol', `device groups: group ${id} is listed twice`);
      seen.add(id);
      return { id, name: g.groupname, type: typeof g.grouptype === 'string' ? g.grouptype.toLowerCase() : '' };
    });
  }

  /** GET /devicegroups/{id}/: the group's name and member ids. */
  async function groupDetail(id: number, what: string): Promise<{ name: string; members: string[] }> {
    const body = await call(what, `/devicegroups/${id}/`);
    if (!isObj(body) || !Array.isArray(body.devices) || typeof body.groupname !== 'string') throw new UemError('protocol', `${what}: the answer has no groupname or no devices list`);
    const members = body.devices.map((d) => {
      const did = isObj(d) ? intOf(d.id, { signed: false }) : undefined;
      if (did === undefined) throw new UemError('protocol', `${what}: a member has no numeric id`);
      return String(did);
    });
    return { name: body.groupname, members };
  }

  async function changeMembers(tagId: string, name: string, deviceIds: string[], op: 'add' | 'remove'): Promise<void> {
    const what = `${op === 'add' ? 'adding devices to' : 'removing devices from'} device group ${tagId} ("${name}")`;
    const gid = pathId(tagId, what);
    const ids = [...new Set(deviceIds.map((d) => pathId(d, what)))];
    for (const whole of chunks(ids, MEMBERS_PER_CALL)) {
      let part = whole;
      let body: unknown;
      // One device deleted in the portal since the last device sync fails the whole call ("Invalid
      // pk"), and with it every other device's change, on every pass until that sync: the ids it
      // names are left out (gone, they can carry no group) and the rest sent again. Bounded: each
      // round leaves out at least one id.
      for (;;) {
        try {
          body = await call(what, `/devicegroups/${gid}/`, { method: 'POST', body: { add_devices: op === 'add' ? part : [], remove_devices: op === 'remove' ? part : [] } });
          break;
        } catch (e) {
          const gone = e instanceof UemError && e.status === 400 ? invalidPks(e.message).map(Number).filter((id) => part.includes(id)) : [];
          if (gone.length === 0) throw e;
          part = part.filter((id) => !gone.includes(id));
          if (part.length === 0) break;
        }
      }
      if (part.length === 0) continue;
      if (!isObj(body) || !Array.isArray(body.devices)) throw new UemError('protocol', `${what}: the answer has no devices list`);
      const members = new Set(body.devices.map((d) => (isObj(d) ? intOf(d.id, { signed: false }) : undefined)));
      const wrong = part.filter((id) => members.has(id) !== (op === 'add'));
      if (wrong.length > 0) throw new UemError('protocol', `${what}: the answer still ${op === 'add' ? 'lacks' : 'lists'} device(s) ${wrong.slice(0, 10).join(', ')}`);
    }
  }

  return {
    vendor: 'hexnode',

    async ping(): Promise<void> {
      const body = await call('ping (device groups)', '/devicegroups/?page=1&per_page=1');
      if (!isObj(body) || intOf(body.count, { signed: false }) === undefined || !Array.isArray(body.results)) throw new UemError('protocol', 'ping (device groups): the answer is not a Hexnode page');
    },

    async groups(): Promise<UemGroup[]> {
      return (await deviceGroups()).map((g) => ({ id: String(g.id), name: g.name, kind: 'device-group' as const, parentId: null }));
    },

    async *devicesInGroup(group: UemGroup): AsyncIterable<DevicePage> {
      const what = `devices of device group ${group.id}`;
      const gid = pathId(group.id, what);
      const seen = new Set<string>();
      for await (const page of listing(what, '/devices/', `devicegroup=${gid}`)) {
        const devices = page.map((raw) => normalizeDevice(raw, what));
        for (const d of devices) {
          if (seen.has(d.id)) throw new UemError('protocol', `${what}: device ${d.id} is listed twice (the list moved while paging)`);
          seen.add(d.id);
        }
        yield { devices };
      }
    },

    async apps(devices: UemDevice[]): Promise<Map<string, UemApp[]>> {
      const out = new Map<string, UemApp[]>();
      const ids = [...new Set(devices.map((d) => d.id))];
      await pool(ids, appConcurrency, async (id) => {
        const what = `apps of device ${id}`;
        const did = pathId(id, what);
        try {
          out.set(id, (await all(what, `/devices/${did}/applications/`)).map((a) => normalizeApp(a, what)));
        } catch (e) {
          // Deleted since it was listed: DRF's JSON 404 (an unknown URL would be HTML: 'protocol').
          if (e instanceof UemError && e.kind === 'not_found') return;
          throw e;
        }
      });
      // Map order = the order the devices were given in.
      return new Map(ids.filter((id) => out.has(id)).map((id) => [id, out.get(id)!]));
    },

    async ensureTagGroup(name: string): Promise<string> {
      if (name.trim() === '' || name !== name.trim()) throw new UemError('protocol', `tag group "${name}": names must be non-empty without leading or trailing spaces (Hexnode trims them)`);
      const find = async (): Promise<string | undefined> => {
        const same = (await deviceGroups()).filter((g) => g.name === name);
        const custom = same.filter((g) => g.type === 'custom').sort((a, b) => a.id - b.id)[0];
        if (custom) return String(custom.id);
        if (same.length > 0) throw new UemError('protocol', `tag group "${name}": a ${same[0]!.type || 'non-custom'} device group has this name; devices can only be added to custom groups`);
        return undefined;
      };
      const found = await find();
      if (found !== undefined) return found;
      try {
        const body = await call(`creating device group "${name}"`, '/devicegroups/', { method: 'POST', body: { groupname: name, description, devices: [] } });
        const id = isObj(body) ? intOf(body.id, { signed: false }) : undefined;
        if (id === undefined) throw new UemError('protocol', `creating device group "${name}": the answer has no numeric id`);
        return String(id);
      } catch (e) {
        // Created by someone else meanwhile (the name is unique): use theirs.
        if (e instanceof UemError && e.status === 400 && /groupname/.test(e.message)) {
          const again = await find();
          if (again !== undefined) return again;
        }
        throw e;
      }
    },

    async tagGroupMembers(tagId: string, name: string): Promise<string[]> {
      const what = `members of device group ${tagId} ("${name}")`;
      const g = await groupDetail(pathId(tagId, what), what);
      if (g.name !== name) throw new UemError('not_found', `${what}: the group is now named "${g.name}"`);
      return g.members;
    },

    async addToTagGroup(tagId: string, name: string, deviceIds: string[]): Promise<void> {
      await changeMembers(tagId, name, deviceIds, 'add');
    },

    async removeFromTagGroup(tagId: string, name: string, deviceIds: string[]): Promise<void> {
      await changeMembers(tagId, name, deviceIds, 'remove');
    },
  };
}
