/**
 * The audit log of relayed calls: one JSON line per request (time, tenant, target, method, path
 * without query values, status, bytes, duration, connector id), in its own size-rotated file so it
 * survives journald's retention and can go into support bundles. The connector writes it for every
 * call it relays (audit.file); the cloud, when asked (relay.accessLog), for every call to its relay
 * API, with who called and from where.
 */
import { createRotatingFile } from './rotating-file.js';
import { redactString, secrets } from './redact.js';

export interface AuditEntry {
  tenant: string;
  target: string;
  method: string;
  path: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  /** The connector that relayed the call (the cloud's line has none when no connector was reached). */
  connectorId?: string;
  error?: string;
  /** The cloud's id for the request (x-uemlink-request-id in the client's answer). */
  requestId?: string;
  /** Cloud only: who called, `admin` or `key:<API key id>` (absent: not authenticated). */
  principal?: string;
  /** Cloud only: the client's address as the cloud's socket sees it. */
  client?: string;
}

const LINE_SEPARATORS = /[\u0085\u2028\u2029]/g;

/** A string as JSON.stringify writes it, with U+0085, U+2028 and U+2029 escaped too (see auditLine). */
function jsonString(v: string): string {
  const j = JSON.stringify(v);
  return j.search(LINE_SEPARATORS) < 0 ? j : j.replace(LINE_SEPARATORS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A finite number as JSON writes it; anything else as JSON's null. */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/**
 * One audit line: the same bytes as JSON.stringify({level, message, ...entry, path, time}) with the
 * entry's fields in AuditEntry's order, built by hand because stringifying a fresh spread object
 * was 3-4 % of the connector's CPU per small relayed call (docs/performance.md). Strings still go
 * through JSON.stringify, so escaping is JSON's own, plus U+0085, U+2028 and U+2029: valid in JSON, but line
 * splitters that follow JavaScript's or Unicode's idea of a line break (log shippers, editors) cut
 * an audit line in two at them.
 */
export function auditLine(e: AuditEntry, time: string): string {
  const s = jsonString;
  return (
    `{"level":"info","message":"relay","tenant":${s(e.tenant)},"target":${s(e.target)},"method":${s(e.method)},"path":${s(auditPath(e.path))}` +
    `,"status":${num(e.status)},"bytesIn":${num(e.bytesIn)},"bytesOut":${num(e.bytesOut)},"durationMs":${num(e.durationMs)}${e.connectorId !== undefined ? `,"connectorId":${s(e.connectorId)}` : ''}` +
    `${e.error !== undefined ? `,"error":${s(e.error)}` : ''}${e.requestId !== undefined ? `,"requestId":${s(e.requestId)}` : ''}` +
    `${e.principal !== undefined ? `,"principal":${s(e.principal)}` : ''}${e.client !== undefined ? `,"client":${s(e.client)}` : ''},"time":${s(time)}}\n`
  );
}

/**
 * The current time as toISOString() writes it. Formatting a Date per relayed call showed as ~3 % of
 * the connector's CPU in a profile of the relay; the part up to the second is formatted once a
 * second and the milliseconds appended.
 */
let isoSecond = -1;
let isoPrefix = '';
export function isoNow(now = Date.now()): string {
  const sec = Math.floor(now / 1000);
  if (sec !== isoSecond) {
    isoSecond = sec;
    isoPrefix = new Date(sec * 1000).toISOString().slice(0, -4); // "YYYY-MM-DDTHH:MM:SS."
  }
  return `${isoPrefix}${String(now - sec * 1000).padStart(3, '0')}Z`;
}

export interface AuditLog {
  record(e: AuditEntry): void;
  close(): Promise<void>;
}

/** What a query parameter's name looks like; anything else in a name's place may be a value. */
const QUERY_NAME = /^[\w.\-[\]]{1,40}$/;

/**
 * Query values may carry secrets (tokens, keys): keep the parameter names only. A bare item
 * (`?<token>`) is a value as often as a flag, and a "name" may be a token too: only items written
 * `name=value` with a name that looks like one keep it. The path and each name kept are scrubbed
 * of registered secrets and secret patterns.
 */
export function auditPath(path: string): string {
  const q = path.indexOf('?');
  if (q < 0) return redactedPath(path);
  const items = path
    .slice(q + 1)
    .split('&')
    .filter(Boolean)
    .map((kv) => {
      const eq = kv.indexOf('=');
      if (eq < 0) return '…';
      const name = kv.slice(0, eq);
      return `${QUERY_NAME.test(name) ? redactedPath(name) : '…'}=…`;
    });
  return `${redactedPath(path.slice(0, q))}?${items.join('&')}`;
}

/**
 * Redacted paths seen lately. A UEM integration calls a few dozen paths over and over, and running
 * every redaction pattern on each was 2 % of the connector's CPU per small call. Emptied when the
 * set of registered secrets changes (a path cached before a secret was known would keep it) and
 * when full.
 */
const redactedPaths = new Map<string, string>();
let redactedFor = -1;
function redactedPath(p: string): string {
  if (redactedFor !== secrets.generation) {
    redactedPaths.clear();
    redactedFor = secrets.generation;
  }
  let r = redactedPaths.get(p);
  if (r === undefined) {
    r = redactString(p);
    if (redactedPaths.size >= 512) redactedPaths.clear();
    redactedPaths.set(p, r);
  }
  return r;
}

/**
 * One JSON line per call, appended to a size-rotated file (common/rotating-file.ts: lines gathered
 * for up to 50 ms and written together; a file removed or moved away is written again; failures
 * said once per episode). It replaced a winston logger here because its per-line format pipeline
 * cost ~10 % of the connector's CPU on small relayed calls (docs/performance.md); the line format
 * is unchanged.
 */
export function createAuditLog(opts: { file: string; maxBytes: number; maxFiles: number; onError?(err: Error): void; onRecovered?(): void }): AuditLog & { reopen(): void } {
  const file = createRotatingFile(opts);
  return {
    record: (e) => file.write(auditLine(e, isoNow())),
    reopen: () => file.reopen(),
    close: () => file.close(),
  };
}
