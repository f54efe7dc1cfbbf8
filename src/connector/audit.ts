/**
 * The audit log of relayed calls: one JSON line per request (time, tenant, target, method, path
 * without query values, status, bytes, duration, connector id), in its own size-rotated file so it
 * survives journald's retention and can go into support bundles.
 */
import winston from 'winston';
import { redactString } from '../common/redact.js';

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

export interface AuditLog {
  record(e: AuditEntry): void;
  close(): Promise<void>;
}

/** Query values may carry secrets (tokens, keys): keep the parameter names only. */
export function auditPath(path: string): string {
  const q = path.indexOf('?');
  if (q < 0) return redactString(path);
  const names = path
    .slice(q + 1)
    .split('&')
    .filter(Boolean)
    .map((kv) => kv.split('=')[0])
    .map((k) => `${k}=…`);
  return `${redactString(path.slice(0, q))}?${names.join('&')}`;
}

export function createAuditLog(opts: { file: string; maxBytes: number; maxFiles: number }): AuditLog {
  const logger = winston.createLogger({
    level: 'info',
    format: winston.format.combine(winston.format.timestamp({ alias: 'time' }), winston.format.json()),
    transports: [new winston.transports.File({ filename: opts.file, maxsize: opts.maxBytes, maxFiles: opts.maxFiles, tailable: true, options: { mode: 0o600 } })],
  });
  return {
    record(e) {
      logger.info('relay', { ...e, path: auditPath(e.path) });
    },
    close() {
      return new Promise((resolve) => {
        logger.on('finish', () => resolve());
        logger.end();
        setTimeout(resolve, 1000).unref();
      });
    },
  };
}

export const nullAudit: AuditLog = { record() {}, close: async () => {} };
