/**
 * Pure rules for what may cross the relay: which paths stay under a target's base path, which
 * headers are hop-by-hop or forged, which methods and paths a target allows. The cloud applies them
 * when a request arrives and the connector applies them again before anything reaches the UEM
 * (defence in depth: the connector never trusts the cloud's checks).
 */
import type { HeaderList } from '../protocol/messages.js';

export type PathCheck = { ok: true; path: string; query: string } | { ok: false; reason: string };

const MAX_PATH = 8192;

/**
 * Decodes percent-escapes repeatedly (double encoding) until stable; undefined if malformed, or if
 * it is still not stable after 4 passes (no real client encodes five times; an upstream that
 * decodes that often would otherwise see what the checks never did).
 *
 * Only the first pass must be well-formed (every "%" starts an escape): that is the path as sent. What it decodes to may hold a
 * literal "%" (a label named "Games 100% blocked", sent as `100%25`): later passes decode the
 * escapes that are there and leave a stray "%" as it is, as a lenient server would, so the checks
 * still see what such a server would make of it.
 */
export function decodeFully(s: string): string | undefined {
  let cur = s;
  for (let i = 0; i < 5; i++) {
    let next: string;
    try {
      next = decodeURIComponent(cur);
    } catch {
      // As sent, a "%" must start an escape; an escape of a byte that is not UTF-8 (Latin-1
      // "M%FCller") is still well-formed (RFC 3986 §2.1) and decoded byte by byte.
      if (i === 0 && /%(?![0-9a-fA-F]{2})/.test(cur)) return undefined;
      // Overlong UTF-8 forms ("%c0%ae" for ".") are never text: old servers read them as the
      // ASCII they spell (the IIS traversal), so they stay refused.
      if (OVERLONG_UTF8.test(cur)) return undefined;
      next = decodeLeniently(cur);
    }
    if (next === cur) return cur;
    if (i === 4) return undefined;
    cur = next;
  }
  return cur;
}

/** Escapes that start an overlong UTF-8 sequence: C0/C1 leads, E0 followed by 80–9F, F0 followed by 80–8F. */
const OVERLONG_UTF8 = /%c[01]|%e0%[89][0-9a-f]|%f0%8[0-9a-f]/i;

/** Decodes each run of valid escapes (as UTF-8, or byte by byte where that is not UTF-8); a stray "%" stays. */
function decodeLeniently(s: string): string {
  return s.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return Buffer.from(run.replace(/%/g, ''), 'hex').toString('latin1');
    }
  });
}

/**
 * A segment that is only dots and spaces once Unicode compatibility forms are folded (a fullwidth
 * "．" is a "."): ".", "..", and what Windows (IIS, under Workspace ONE UEM and Ivanti) trims to
 * them or to nothing, since it drops trailing dots and spaces from path segments (".. ", "...").
 * A Tomcat-style path parameter (";jsessionid") does not hide one.
 */
function isDotSegment(decoded: string): boolean {
  const semi = decoded.indexOf(';');
  let core = semi < 0 ? decoded : decoded.slice(0, semi);
  if (/[^\u0000-\u007f]/.test(core)) core = core.normalize('NFKC');
  return /^[. ]+$/.test(core);
}

/**
 * Checks a request-relative path (with optional query) for anything that could leave the target's
 * base path or confuse the upstream's parser: dot segments (raw, %2e, double-encoded, `..;`), empty
 * segments (`//host`), backslashes, encoded slashes, NUL, CR/LF and other control characters,
 * fragments, and non-path forms (absolute URLs, `*`).
 */
export function checkRelativePath(raw: string): PathCheck {
  if (raw.length === 0 || raw[0] !== '/') return { ok: false, reason: 'the path must start with "/"' };
  if (raw.length > MAX_PATH) return { ok: false, reason: `the path is longer than ${MAX_PATH} characters` };
  // Control characters (incl. NUL, CR, LF, TAB, DEL), spaces, backslashes and fragments never belong in a path we forward.
  if (/[\u0000-\u0020\u007f\\#]/.test(raw)) return { ok: false, reason: 'the path contains a control character, space, backslash or "#"' };
  if (/[^\u0021-\u007e]/.test(raw)) return { ok: false, reason: 'the path contains characters that must be percent-encoded' };
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = q < 0 ? '' : raw.slice(q);
  // Without a "%" nothing decodes to anything else, and the characters checked after decoding were
  // refused above already: most API paths skip the decoding (it was 2 % of the relay's CPU per call).
  if (query.includes('%')) {
    const decodedQuery = decodeFully(query);
    if (decodedQuery === undefined) return { ok: false, reason: 'the query has a malformed percent-escape' };
    if (/[\u0000\r\n]/.test(decodedQuery)) return { ok: false, reason: 'the query encodes NUL, CR or LF' };
  }
  const segments = path.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === '' && i < segments.length - 1) return { ok: false, reason: 'the path has an empty segment ("//")' };
    let d = seg;
    if (seg.includes('%')) {
      const decoded = decodeFully(seg);
      if (decoded === undefined) return { ok: false, reason: 'the path has a malformed percent-escape' };
      if (/[/\\\u0000-\u001f\u007f]/.test(decoded)) return { ok: false, reason: 'the path encodes a slash, backslash or control character' };
      d = decoded;
    }
    // ".." and "." in any encoding or Unicode form, what Windows trims to them, and "..;jsessionid".
    // (Undecoded, a segment is printable ASCII without spaces: only one starting with "." can be.)
    if ((d !== seg || d[0] === '.') && isDotSegment(d)) return { ok: false, reason: 'the path has a "." or ".." segment (or one Windows reads as such)' };
  }
  return { ok: true, path, query };
}

/** Joins a base path ("/API", "/", "") and a checked relative path without doubling slashes. */
export function joinUnderBase(basePath: string, relPath: string): string {
  const base = basePath.endsWith('/') ? basePath.slice(0, -1) : basePath;
  return `${base}${relPath}`;
}

// ---- headers ----------------------------------------------------------------------------------

/** Hop-by-hop headers (RFC 9110 7.6.1) and proxy credentials: never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]);

/** Most header pairs a tunnel request head may carry (docs/protocol.md §5.1). */
export const MAX_FORWARDED_HEADERS = 500;

export type HeaderCheck = { ok: true; headers: HeaderList } | { ok: false; reason: string };

/**
 * Filters request headers for forwarding: drops hop-by-hop headers (and those named by Connection),
 * Host, the relay's own Authorization, cookies, and any header in `drop` (the credential headers
 * the connector injects). Refuses CR/LF/NUL in values and conflicting Content-Length values (the
 * classic request-smuggling shapes).
 */
export function forwardableRequestHeaders(headers: HeaderList, drop: ReadonlySet<string> = new Set()): HeaderCheck {
  const named = new Set<string>();
  let contentLength: string | undefined;
  for (const [name, value] of headers) {
    if (/[\r\n\u0000]/.test(value) || /[\r\n\u0000:\s]/.test(name)) return { ok: false, reason: `header "${name.slice(0, 40)}" contains CR, LF or NUL` };
    const n = name.toLowerCase();
    if (n === 'connection') for (const t of value.split(',')) named.add(t.trim().toLowerCase());
    if (n === 'content-length') {
      const v = value.trim();
      if (!/^\d{1,15}$/.test(v)) return { ok: false, reason: 'Content-Length is not a number' };
      if (contentLength !== undefined && contentLength !== v) return { ok: false, reason: 'conflicting Content-Length headers' };
      contentLength = v;
    }
  }
  const out: HeaderList = [];
  let sawLength = false;
  for (const [name, value] of headers) {
    const n = name.toLowerCase();
    if (HOP_BY_HOP.has(n) || named.has(n) || n === 'host' || n === 'authorization' || n === 'cookie' || drop.has(n)) continue;
    if (n === 'content-length') {
      if (sawLength) continue;
      sawLength = true;
    }
    out.push([n, value]);
  }
  // Fix (hostile-input corpus, issue 7): a request head carries at most 500 header pairs
  // (docs/protocol.md §5.1). More used to be sent anyway, so the connector reset the stream as a
  // protocol error and the client got a misleading 502 connector_error; refuse it here instead.
  if (out.length > MAX_FORWARDED_HEADERS) return { ok: false, reason: `more than ${MAX_FORWARDED_HEADERS} headers` };
  return { ok: true, headers: out };
}

/** Headers some servers (ASP.NET, IIS, Rails, Express's method-override) take as the real method. */
const METHOD_OVERRIDE = new Set(['x-http-method-override', 'x-http-method', 'x-method-override']);
/** Headers IIS URL Rewrite, ASP.NET and Symfony-style stacks take as the real path. */
const PATH_OVERRIDE = new Set(['x-original-url', 'x-rewrite-url']);

/**
 * Why a request whose headers name another method or path than its own is refused, or undefined.
 * The allow list is checked against the request's method and path: a GET-only rule must not let a
 * "GET" that says `X-HTTP-Method-Override: DELETE` through to a UEM that honours it, nor a rule
 * for /mdm one that says `X-Original-URL: /system/admins`. `headers`: forwarded ones (lower-case
 * names).
 */
export function overrideProblem(method: string, headers: HeaderList): string | undefined {
  for (const [n, v] of headers) {
    if (n.length < 12) continue;
    if (METHOD_OVERRIDE.has(n) && v.trim().toUpperCase() !== method.toUpperCase()) {
      return `the ${n} header names another method (${v.trim().slice(0, 20)}) than the request's (${method}): send the request with that method`;
    }
    if (PATH_OVERRIDE.has(n)) return `the ${n} header is not forwarded: some servers take it as the path, past the allow list; send the request to that path`;
  }
  return undefined;
}

/** A Transfer-Encoding with a coding other than chunked (its value), or undefined. */
export function unsupportedTransferCoding(headers: HeaderList): string | undefined {
  for (const [n, v] of headers) {
    if (n.length !== 17 || n.toLowerCase() !== 'transfer-encoding') continue;
    if (v.split(',').some((c) => c.trim() !== '' && c.trim().toLowerCase() !== 'chunked')) return v;
  }
  return undefined;
}

/** Response headers travel back without hop-by-hop ones. */
export function forwardableResponseHeaders(headers: HeaderList, from: 'relay' | 'uem' = 'relay'): HeaderList {
  // (Runs twice per relayed call: the Set only when a Connection header names others.)
  let named: Set<string> | undefined;
  for (const [name, value] of headers) {
    if (name.length === 10 && name.toLowerCase() === 'connection') for (const t of value.split(',')) (named ??= new Set()).add(t.trim().toLowerCase());
  }
  const out: HeaderList = [];
  for (const pair of headers) {
    const n = pair[0].toLowerCase();
    // The UEM's answer must not speak for uemlink: an x-uemlink-error of its own was counted as
    // the relay's error (a metric label per value), an x-uemlink-unsent had the cloud send the
    // request again through another connector.
    if (from === 'uem' && n.startsWith(OWN_HEADER_PREFIX)) continue;
    // The cloud writes these two itself: a connector's own were passed on ahead of them, so a
    // client reading the first value took a forged connector id or request id.
    if (from === 'relay' && (n === 'x-uemlink-connector' || n === 'x-uemlink-request-id')) continue;
    if (!HOP_BY_HOP.has(n) && !named?.has(n)) out.push(pair);
  }
  return out;
}

const OWN_HEADER_PREFIX = 'x-uemlink-';

/** Node's rawHeaders ([k, v, k, v, ...]) as pairs. */
export function pairsFromRaw(raw: string[]): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

// ---- allow rules ------------------------------------------------------------------------------

export interface AllowRule {
  /** Upper-case methods, or ["*"]. */
  methods: string[];
  /** Relative to the target's base path; matches whole segments ("/mdm" allows "/mdm/x", not "/mdmx"). */
  pathPrefix: string;
}

export const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  if (prefix.endsWith('/')) return path.startsWith(prefix);
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** Whether a method and request-relative path pass the allow list (an empty list allows everything). */
export function isAllowed(rules: readonly AllowRule[], method: string, relPath: string): boolean {
  if (rules.length === 0) return true;
  const m = method.toUpperCase();
  return rules.some((r) => (r.methods.includes('*') || r.methods.includes(m)) && prefixMatches(r.pathPrefix, relPath));
}
