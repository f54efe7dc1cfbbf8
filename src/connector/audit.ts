/**
 * The audit log of relayed calls: one JSON line per request (time, tenant, target, method, path
 * without query values, status, bytes, duration, connector id), in its own size-rotated file so it
 * survives journald's retention and can go into support bundles.
 */
import { createWriteStream, existsSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { redactString, secrets } from '../common/redact.js';

export interface AuditEntry {
  tenant: string;
  target: string;
  method: string;
  path: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  connectorId: string;
  error?: string;
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
    `,"status":${num(e.status)},"bytesIn":${num(e.bytesIn)},"bytesOut":${num(e.bytesOut)},"durationMs":${num(e.durationMs)},"connectorId":${s(e.connectorId)}` +
    `${e.error !== undefined ? `,"error":${s(e.error)}` : ''},"time":${s(time)}}\n`
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

/** Lines wait at most this long to be written together (a crash loses at most this much audit). */
const FLUSH_MS = 50;
/** ... or until this many bytes wait. */
const FLUSH_BYTES = 64 * 1024;

/**
 * One JSON line per call, appended through a single WriteStream, rotated by size like logrotate's
 * "copytruncate"-free scheme: file -> file.1 -> file.2 ...
 * It replaced a winston logger here because its per-line format pipeline cost ~10 % of the
 * connector's CPU on small relayed calls (docs/performance.md); the line format is unchanged.
 * Lines are gathered for up to FLUSH_MS and written as one: a write per line cost a thread-pool
 * round trip per relayed call (5 % of the connector's CPU at one request at a time).
 */
export function createAuditLog(opts: { file: string; maxBytes: number; maxFiles: number; onError?(err: Error): void }): AuditLog {
  let out: WriteStream | undefined;
  let size = 0;
  let failed = false;
  // Said once per episode (the daemon logs it): lost audit lines must not pass unnoticed, and a
  // full disk must not turn every relayed call into an error line.
  let failing = false;
  const failure = (err: unknown): void => {
    if (failing) return;
    failing = true;
    opts.onError?.(err instanceof Error ? err : new Error(String(err)));
  };
  let pending: string[] = [];
  let pendingBytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const open = (): { w: WriteStream; size: number } => {
    mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
    // Opened synchronously: the file must exist the moment lines are queued, or a rotation in the
    // same burst would find nothing to rename and two streams would append to one file.
    const fd = openSync(opts.file, 'a', 0o600);
    const at = fstatSync(fd).size;
    const w = createWriteStream('', { fd });
    // An audit file that cannot be written (disk full, removed directory) must not take the relay
    // down: the error is remembered and the next line tries a fresh stream.
    w.on('error', (err) => {
      failed = true;
      failure(err);
    });
    return { w, size: at };
  };
  /** Writes what waits to the current file (lines queued before a rotation stay in the old file). */
  const flush = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    pendingBytes = 0;
    if (failed) {
      failed = false;
      out?.destroy();
      out = undefined;
    }
    try {
      out ??= open().w;
    } catch (err) {
      failure(err);
      return; // cannot open (disk full, permissions): these lines are lost, the next ones try again
    }
    out.write(text, (err) => {
      if (!err) failing = false;
    });
  };
  const rotate = (): void => {
    flush();
    out?.end();
    out = undefined;
    try {
      for (let i = opts.maxFiles - 1; i >= 1; i--) {
        const from = i === 1 ? opts.file : `${opts.file}.${i - 1}`;
        if (existsSync(from)) renameSync(from, `${opts.file}.${i}`);
      }
      if (opts.maxFiles <= 1) rmSync(opts.file, { force: true });
    } catch {
      /* best effort: keep appending to the current file */
    }
    size = 0;
  };
  return {
    record(e) {
      const line = auditLine(e, isoNow());
      if (out === undefined && pending.length === 0) {
        // The size of the file as it is now, so rotation counts what is already there.
        try {
          const o = open();
          out = o.w;
          size = o.size;
        } catch {
          /* retried at the next flush */
        }
      }
      const bytes = Buffer.byteLength(line);
      if (size > 0 && size + bytes > opts.maxBytes) rotate();
      pending.push(line);
      pendingBytes += bytes;
      size += bytes;
      if (pendingBytes >= FLUSH_BYTES) flush();
      else timer ??= setTimeout(flush, FLUSH_MS).unref();
    },
    close() {
      flush();
      const w = out;
      out = undefined;
      if (!w) return Promise.resolve();
      return new Promise((resolve) => {
        w.end(() => resolve());
        setTimeout(resolve, 1000).unref();
      });
    },
  };
}

export const nullAudit: AuditLog = { record() {}, close: async () => {} };
