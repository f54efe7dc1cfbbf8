/**
 * The relay's access log (relay.accessLog): a finished call as an audit line (common/audit.ts),
 * with what a caller without credentials can make it write bounded. Such callers are not rate
 * limited (only wrong credentials are), and a line each let one client fill the data directory's
 * disk and rotate every authorized call's line away within minutes.
 */
import { auditPath, createAuditLog, type AuditEntry } from '../../common/audit.js';
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/log.js';
import { TENANT_RE } from '../../common/names.js';
import { TARGET_ID_RE } from '../../connector/targets/schema.js';
import type { RelayFinished } from './http.js';

/** Lines per client address and minute for calls that were not authenticated; the rest are counted. */
export const ANONYMOUS_LINES_PER_MINUTE = 60;
/** Addresses tracked per minute; beyond, the calls of new ones are counted together. */
const MAX_ADDRESSES = 10_000;
/** What is kept of an unauthenticated call's path. */
const ANONYMOUS_PATH_CHARS = 256;

/** A name from the URL as logged: one that has the shape of a name (scrubbed of secrets), else "…". */
function nameOf(v: string | undefined, re: RegExp): string {
  if (v === undefined) return '';
  return re.test(v) ? auditPath(v) : '…';
}

/** A finished call as its line: the audit line's fields, the URL's tenant and target even when refused. */
export function accessLogEntry(e: RelayFinished): AuditEntry {
  const path = e.path ?? '';
  return {
    // A misplaced credential (an API key where the tenant goes) is not written in clear.
    tenant: nameOf(e.requestedTenant, TENANT_RE),
    target: nameOf(e.target, TARGET_ID_RE),
    method: e.method,
    // Scrubbed before it is cut, so no partial secret escapes the patterns.
    path: e.principal === undefined ? auditPath(path).slice(0, ANONYMOUS_PATH_CHARS) : path,
    status: e.status,
    bytesIn: e.bytesIn,
    bytesOut: e.bytesOut,
    durationMs: Math.round(e.durationMs),
    ...(e.connectorId !== undefined ? { connectorId: e.connectorId } : {}),
    ...(e.errorCode !== undefined ? { error: e.errorCode } : {}),
    ...(e.requestId !== undefined ? { requestId: e.requestId } : {}),
    ...(e.principal !== undefined ? { principal: e.principal } : {}),
    ...(e.client !== undefined ? { client: e.client } : {}),
  };
}

export interface RelayAccessLog {
  record(e: RelayFinished): void;
  reopen(): void;
  close(): Promise<void>;
}

export function createRelayAccessLog(opts: { file: string; maxBytes: number; maxFiles: number; clock: Clock; logger: Logger }): RelayAccessLog {
  const { file, logger, clock } = opts;
  const log = createAuditLog({
    ...opts,
    onError: (err) => logger.error('cannot write the relay access log: calls are not recorded until it can be written again', { file, err }),
    onRecovered: () => logger.info('the relay access log can be written again', { file }),
  });
  // Fixed one-minute windows: lines written and calls left out, per address.
  let windowStart = clock.now();
  let written = new Map<string, number>();
  let skipped = new Map<string, number>();
  const endWindow = (): void => {
    for (const [client, calls] of skipped) {
      logger.warn('relay access log: calls without credentials left out', { client, calls, perMinute: ANONYMOUS_LINES_PER_MINUTE, file });
    }
    written = new Map();
    skipped = new Map();
  };
  return {
    record(e) {
      if (e.principal === undefined) {
        const now = clock.now();
        if (now - windowStart >= 60_000) {
          endWindow();
          windowStart = now;
        }
        const tracked = written.size < MAX_ADDRESSES || written.has(e.client ?? '');
        const client = tracked ? (e.client ?? '') : 'other addresses';
        const n = written.get(client) ?? 0;
        if (!tracked || n >= ANONYMOUS_LINES_PER_MINUTE) {
          skipped.set(client, (skipped.get(client) ?? 0) + 1);
          return;
        }
        written.set(client, n + 1);
      }
      log.record(accessLogEntry(e));
    },
    reopen: () => log.reopen(),
    close: () => {
      endWindow();
      return log.close();
    },
  };
}
