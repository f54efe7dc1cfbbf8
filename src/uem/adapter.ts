/**
 * The contract between the cloud's integration engine and a UEM vendor. An adapter turns one vendor's
 * REST API (docs in ../../../shared/uem-api-reference.md, mirrored by src/uem/simulator) into this
 * normalized model; the engine never sees vendor JSON. Adapters do not retry or sleep: they throw
 * UemError with a kind, and the engine decides (backoff, Retry-After, "never delete after a failure").
 */

export type Vendor = 'workspace-one' | 'ivanti-epmm' | 'hexnode';
export const VENDORS: readonly Vendor[] = ['workspace-one', 'ivanti-epmm', 'hexnode'];

/** Each vendor's API root under the server address (see UemFetch). */
export const API_ROOT: Record<Vendor, string> = { 'workspace-one': '/API', 'ivanti-epmm': '/api/v2', hexnode: '/api/v1' };

/** `idempotent`: a read sent as POST (Workspace ONE's bulk lookup by ids), retried like a GET. */
export type UemRequestInit = RequestInit & { idempotent?: boolean };
/**
 * How an adapter reaches the UEM: `path` is relative to the vendor's API root — Workspace ONE
 * "https://host/API", Ivanti EPMM "https://host/api/v2", Hexnode "https://portal/api/v1" — so an
 * adapter asks for "/mdm/devices/search?page=0" or "/devices/?page=1". Standard fetch semantics; the
 * engine supplies either the relay through a connector (credentials injected on premises) or a direct
 * HTTPS client (src/uem/target-fetch.ts). Relay and transport failures come back as responses with an
 * `x-uemlink-error` header (see errorForResponse), network failures as thrown errors.
 */
export type UemFetch = (path: string, init?: UemRequestInit) => Promise<Response>;

export type GroupKind = 'organization' | 'smart' | 'label' | 'device-group';

export interface UemGroup {
  /** Stable id as the vendor knows it, as a string ("571" for a Workspace ONE OG). */
  id: string;
  name: string;
  kind: GroupKind;
  /** Parent group id (organization groups), or null. */
  parentId: string | null;
}

/** A device in the normalized model; fields the vendor does not provide are null. */
export interface UemDevice {
  /** The vendor's device id, as a string (Workspace ONE Id.Value, EPMM common.uuid, Hexnode id). */
  id: string;
  udid: string | null;
  serial: string | null;
  /** Device (friendly) name: PII. */
  name: string | null;
  /** Phone number: PII. */
  phone: string | null;
  /** Owner: PII. */
  ownerEmail: string | null;
  ownerName: string | null;
  /** Normalized: "ios" | "android" | "windows" | "macos" | "other". */
  platform: string;
  /** OS version as the vendor reports it. */
  os: string | null;
  model: string | null;
  /** e.g. "enrolled", "unenrolled", vendor word lower-cased. */
  enrollment: string | null;
  /** "compliant" | "noncompliant" | null when unknown. */
  compliance: string | null;
  /** ISO-8601 UTC, or null when never seen. */
  lastSeen: string | null;
}

export interface UemApp {
  /** Bundle id / package name when the vendor gives one, else the name. */
  id: string;
  name: string;
  version: string | null;
}

/** One page of devices (an adapter throws rather than yield a page shorter than the vendor's totals). */
export interface DevicePage {
  devices: UemDevice[];
}

export type UemErrorKind =
  /** 401/403 or a token failure: credentials or permissions. */
  | 'auth'
  /** 429: slow down; retryAfterMs when the vendor said. */
  | 'rate_limited'
  /** 5xx or relay errors (no_connector, connector_lost, upstream_*). */
  | 'unavailable'
  | 'timeout'
  /** The answer did not parse or contradicts itself (a truncated page, a missing field). */
  | 'protocol'
  /** 404 on something that should exist (a group removed meanwhile). */
  | 'not_found';

export class UemError extends Error {
  readonly kind: UemErrorKind;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(kind: UemErrorKind, message: string, opts: { status?: number; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UemError';
    this.kind = kind;
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

export interface UemAdapter {
  readonly vendor: Vendor;
  /** A cheap authenticated call: reachability and credentials. */
  ping(): Promise<void>;
  /** Every group the API account can see (organization + smart groups, labels, device groups). */
  groups(): Promise<UemGroup[]>;
  /**
   * The devices directly in one group — NOT those of its child groups — page by page, in the
   * vendor's own paging (page/pagesize, offset/limit, next links). Throws UemError on any failure,
   * including a page that is shorter than the vendor's own totals say (truncated).
   */
  devicesInGroup(group: UemGroup): AsyncIterable<DevicePage>;
  /**
   * Installed apps of the given devices (vendors that batch, like EPMM, use one call per batch).
   * A device the UEM no longer has is left out of the map (its stored list is kept until the device
   * sync deletes it); any other failure throws.
   */
  apps(devices: UemDevice[]): Promise<Map<string, UemApp[]>>;
  /**
   * Device groups the cloud writes to (tags in Workspace ONE, labels in EPMM, device groups in
   * Hexnode): find or create one by exact name, and return its id.
   */
  ensureTagGroup(name: string): Promise<string>;
  /** Current members (device ids) of such a group. */
  tagGroupMembers(tagId: string, name: string): Promise<string[]>;
  addToTagGroup(tagId: string, name: string, deviceIds: string[]): Promise<void>;
  removeFromTagGroup(tagId: string, name: string, deviceIds: string[]): Promise<void>;
}

/** Parses Retry-After (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const s = Number(header);
  if (Number.isFinite(s) && s >= 0) return Math.min(s, 3600) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.min(at - now, 3_600_000));
}

/** x-ratelimit-reset (the epoch second the quota window ends) as a wait in milliseconds. */
export function rateLimitResetMs(header: string | null, now = Date.now()): number | undefined {
  if (!header || !/^\d{1,12}$/.test(header.trim())) return undefined;
  return Math.max(0, Math.min(Number(header) * 1000 - now, 3_600_000));
}

/** Largest answer an adapter reads (a page of devices is a few MiB at most). */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/**
 * Reads at most `max` bytes of a body as UTF-8 and cancels the rest: `res.text()` read whatever a
 * broken or hostile UEM sent, an endless error page included, into the shared cloud's memory.
 */
export async function readText(res: Response, max: number): Promise<{ text: string; over: boolean }> {
  if (!res.body) return { text: '', over: false };
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  let over = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (n + value.length > max) {
        parts.push(value.subarray(0, max - n));
        over = true;
        break;
      }
      parts.push(value);
      n += value.length;
    }
  } finally {
    if (over) await reader.cancel().catch(() => undefined);
    else reader.releaseLock();
  }
  return { text: Buffer.concat(parts).toString('utf8'), over };
}

/** A successful answer's text, refused (`protocol`) beyond MAX_ANSWER_BYTES. */
export async function answerText(res: Response, what: string): Promise<string> {
  const { text, over } = await readText(res, MAX_ANSWER_BYTES);
  if (over) throw new UemError('protocol', `${what}: the answer is larger than ${MAX_ANSWER_BYTES / 1024 / 1024} MiB`);
  return text;
}

/** The UemError for a non-OK answer (status, Retry-After, the relay's own error codes). */
export async function errorForResponse(res: Response, what: string): Promise<UemError> {
  const relayCode = res.headers.get('x-uemlink-error');
  let detail = '';
  let text = '';
  try {
    text = (await readText(res, 4096)).text.slice(0, 500);
    const j = JSON.parse(text) as { message?: unknown; errorCode?: unknown };
    if (typeof j.message === 'string') detail = `: ${j.message}`;
  } catch {
    /* not JSON */
  }
  const s = res.status;
  const msg = `${what}: HTTP ${s}${relayCode ? ` ${relayCode}` : ''}${detail}`;
  if (relayCode === 'upstream_auth') return new UemError('auth', msg, { status: s });
  if (relayCode === 'upstream_timeout' || s === 504) return new UemError('timeout', msg, { status: s });
  if (s === 401 || s === 403) return new UemError('auth', msg, { status: s });
  if (s === 429) {
    // Workspace ONE states the end of its quota window in x-ratelimit-reset (epoch seconds) and
    // may send no Retry-After: retries ~1-4 s apart gave up while the quota was still used up.
    const ra = retryAfterMs(res.headers.get('retry-after')) ?? rateLimitResetMs(res.headers.get('x-ratelimit-reset'));
    return new UemError('rate_limited', msg, { status: s, ...(ra === undefined ? {} : { retryAfterMs: ra }) });
  }
  // An HTML 404 is a web server's page, not the API's answer about a resource (a wrong baseUrl,
  // a path the version does not have, a proxy's error page): read as not_found it made callers
  // that skip vanished resources (a removed device's apps) report a complete, empty answer.
  if (s === 404 && !relayCode && /^\s*</.test(text)) return new UemError('protocol', `${what}: HTTP 404 with an HTML page, not an API answer (check baseUrl and the API version)`, { status: s });
  if (s === 404 && !relayCode) return new UemError('not_found', msg, { status: s });
  return new UemError('unavailable', msg, { status: s });
}
