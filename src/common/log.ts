/**
 * JSON-lines logging on stdout (journald and container runtimes collect it) through winston, with
 * redaction as the last format before output so no code path can skip it. A small ring keeps the
 * latest warnings and errors for the local status page and support bundles.
 */
import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import winston from 'winston';
import Transport from 'winston-transport';
import { redact, redactString } from './redact.js';
import { createRotatingFile, type RotatingFile } from './rotating-file.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type Logger = winston.Logger;

export interface RecentEntry {
  time: string;
  level: string;
  message: string;
  component?: string;
  code?: string;
}

/** Keeps the last `size` warnings and errors, already redacted. */
export class RecentProblems extends Transport {
  private readonly entries: RecentEntry[] = [];
  constructor(private readonly size = 50) {
    super({ level: 'warn' });
  }
  override log(info: Record<string, unknown>, next: () => void): void {
    const e: RecentEntry = {
      time: String(info.timestamp ?? new Date().toISOString()),
      level: String(info.level),
      message: String(info.message),
    };
    if (typeof info.component === 'string') e.component = info.component;
    if (typeof info.code === 'string') e.code = info.code;
    this.entries.push(e);
    if (this.entries.length > this.size) this.entries.shift();
    next();
  }
  list(): RecentEntry[] {
    return [...this.entries];
  }
}

const redactFormat = winston.format((info) => {
  const out = redact({ ...info }) as winston.Logform.TransformableInfo;
  // winston keeps level/message under symbols too; carry them over, redacted.
  for (const sym of Object.getOwnPropertySymbols(info)) {
    const v = (info as unknown as Record<symbol, unknown>)[sym];
    (out as unknown as Record<symbol, unknown>)[sym] = typeof v === 'string' ? redactString(v) : v;
  }
  if (typeof out.message !== 'string') out.message = String(out.message);
  return out;
});

/** UEMLINK_LOG_LEVEL wins over the config; an invalid value of either is ignored. */
export function resolveLevel(configured: string | undefined): LogLevel {
  const valid = (v: string | undefined): LogLevel | undefined => {
    const l = v?.toLowerCase();
    return l && (LOG_LEVELS as readonly string[]).includes(l) ? (l as LogLevel) : undefined;
  };
  return valid(process.env.UEMLINK_LOG_LEVEL) ?? valid(configured) ?? 'info';
}

export interface LoggerOptions {
  level?: string | undefined;
  component: string;
  /** Defaults to stdout. */
  stream?: Writable;
  recent?: RecentProblems;
  /** Also write to this file (JSON lines), rotated by size. */
  file?: { path: string; maxBytes?: number; maxFiles?: number };
}

/**
 * A stdout whose reader went away (a journald restart, `| head -1`) raised an unhandled 'error' at
 * the next line, which killed the daemon: the lines are dropped instead, the relay goes on.
 */
let stdoutGuarded = false;
function guardStdout(): void {
  if (stdoutGuarded) return;
  stdoutGuarded = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
  });
}

export function createLogger(opts: LoggerOptions): Logger {
  if (!opts.stream) guardStdout();
  const transports: winston.transport[] = [new winston.transports.Stream({ stream: opts.stream ?? process.stdout })];
  if (opts.recent) transports.push(opts.recent);
  let fileProblem: string | undefined;
  if (opts.file) {
    // A file that cannot be written (a read-only path under the unit's ProtectSystem=strict, a
    // missing directory) made winston drop every line without a word: said on stdout instead.
    try {
      // winston creates the directory itself: so does this check.
      mkdirSync(dirname(opts.file.path), { recursive: true, mode: 0o700 });
      closeSync(openSync(opts.file.path, 'a', 0o600));
    } catch (e) {
      fileProblem = (e as Error).message;
    }
  }
  if (opts.file && fileProblem === undefined) {
    // The mode applies to files it creates; one that exists is made 0600 here.
    try {
      chmodSync(opts.file.path, 0o600);
    } catch {
      // not there yet: created 0600 when written
    }
    const logFile = opts.file.path;
    const file = createRotatingFile({
      file: logFile,
      maxBytes: opts.file.maxBytes ?? 10 * 1024 * 1024,
      maxFiles: opts.file.maxFiles ?? 5,
      // Said on the other transports (stdout); after the current line has gone through.
      onError: (err) => setImmediate(() => logger.error('cannot write the log file: its lines are lost until it can be written again (stdout still has them)', { logFile, err })),
      onRecovered: () => setImmediate(() => logger.info('the log file can be written again', { logFile })),
    });
    transports.push(new RotatingFileTransport(file));
    openFiles.add(file);
  }
  const logger = winston.createLogger({
    level: resolveLevel(opts.level),
    defaultMeta: { component: opts.component },
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), redactFormat(), winston.format.json()),
    transports,
  });
  skipDisabledLevels(logger);
  if (opts.file && fileProblem !== undefined) logger.error('cannot write the log file: logging to stdout only', { logFile: opts.file.path, reason: fileProblem });
  return logger;
}

const MESSAGE = Symbol.for('message');

/**
 * The log file, through common/rotating-file.ts. winston's own File transport stopped draining on a
 * full disk or a removed directory, and winston then stopped feeding every transport: stdout
 * (journald) went silent with the file. This one hands the line over and returns at once.
 */
class RotatingFileTransport extends Transport {
  constructor(private readonly file: RotatingFile) {
    super();
  }
  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    this.file.write(`${String(info[MESSAGE])}\n`);
    next();
  }
  override close(): void {
    openFiles.delete(this.file);
    void this.file.close();
  }
}

/** The log files of this process's loggers, for SIGHUP. */
const openFiles = new Set<RotatingFile>();

/**
 * Closes the log files; the next lines open them again under their names. For SIGHUP, after a
 * logrotate rule moved them away (a moved file is also noticed at the next write).
 */
export function reopenLogFiles(): void {
  for (const f of openFiles) f.reopen();
}

/**
 * winston runs its whole format pipeline (timestamp, redaction, JSON) through its streams for every
 * call and leaves the level to each transport: a debug line at level "warn" cost as much as one that
 * is written (~2 s of the cloud's CPU while 10,000 connectors connected, docs/performance.md). Calls
 * at a level no transport takes now stop here; `isLevelEnabled` reads the level at the time of the
 * call, so a level changed at run time still applies.
 */
function skipDisabledLevels(logger: Logger): void {
  for (const level of LOG_LEVELS) {
    const write = logger[level] as (...args: unknown[]) => Logger;
    (logger as unknown as Record<string, unknown>)[level] = function (this: Logger | undefined, ...args: unknown[]): Logger {
      const self = this ?? logger;
      return self.isLevelEnabled(level) ? write.apply(self, args) : self;
    };
  }
}

/** A logger that drops everything (library use, tests that do not look at logs). */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
