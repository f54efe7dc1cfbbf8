/** What every CLI command shares: error reporting, exit codes, signal handling. */
import { UemlinkError, messageOf } from '../common/errors.js';
import { redactString } from '../common/redact.js';
import { missingNodeFlags } from '../common/v8-tuning.js';

/** Exit codes (docs/runbook.md). 78 = EX_CONFIG: systemd units do not restart on it. */
export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, CONFIG: 78 } as const;

export function fail(e: unknown): never {
  const msg = redactString(messageOf(e));
  process.stderr.write(`uemlink: ${msg}\n`);
  const code = e instanceof UemlinkError && (e.code === 'CONFIG_INVALID' || e.code === 'CONFIG_UNREADABLE') ? EXIT.CONFIG : e instanceof UemlinkError && e.code === 'USAGE' ? EXIT.USAGE : EXIT.FAILURE;
  process.exit(code);
}

/** A whole-number option's value, or USAGE naming the flag (commander passes strings through). */
export function wholeNumber(flag: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UemlinkError('USAGE', `${flag}: must be a whole number from ${min} to ${max}, not "${v}"`);
  return Number(v);
}

/** Wraps an async command action: any error becomes a message on stderr and a non-zero exit. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      fail(e);
    }
  };
}

let daemon = false;
/**
 * Marks this process as a long-running daemon (`connector run`, `cloud run`, `simulate-uem`, `demo`):
 * called first thing in their actions, so that a stdout lost while they start does not end them.
 */
export function becomeDaemon(): void {
  daemon = true;
}
export function isDaemon(): boolean {
  return daemon;
}

/**
 * Runs `shutdown` on the first SIGTERM/SIGINT, then exits 0. A second signal exits at once (an admin
 * who presses Ctrl-C twice means it).
 */
export function onTerminate(shutdown: () => Promise<void>, log: (msg: string) => void): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals): void => {
    if (stopping) {
      log(`${sig} again: exiting now`);
      process.exit(EXIT.FAILURE);
    }
    stopping = true;
    log(`${sig}: draining`);
    shutdown().then(
      () => process.exit(EXIT.OK),
      (e: unknown) => {
        process.stderr.write(`uemlink: shutdown failed: ${redactString(messageOf(e))}\n`);
        process.exit(EXIT.FAILURE);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/**
 * Runs `work` with Ctrl-C (SIGINT) and SIGTERM held: `why` is said at the first, and the work goes
 * on; a second one exits at once (130/143, as a shell reports a signal). For steps whose
 * interruption costs more than waiting: a pairing stopped between the cloud's answer and the saved
 * identity used up the token and left the cloud a connector that never connects.
 */
export async function uninterrupted<T>(why: string, work: () => Promise<T>): Promise<T> {
  let asked = false;
  const handler = (sig: NodeJS.Signals): void => {
    if (asked) process.exit(sig === 'SIGINT' ? 130 : 143);
    asked = true;
    process.stderr.write(`uemlink: ${sig}: ${why}; ${sig === 'SIGINT' ? 'Ctrl-C' : sig} again to stop anyway\n`);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  try {
    return await work();
  } finally {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  }
}

/**
 * SIGHUP (a logrotate postrotate script, `systemctl kill -s HUP`) reopens the log files. Unhandled,
 * it killed the daemon with no drain, and systemd counts that as a clean exit: no restart.
 */
export function onHangup(reopen: () => void, log: (msg: string) => void): void {
  process.on('SIGHUP', () => {
    reopen();
    log('SIGHUP: log files reopened');
  });
}

/**
 * A daemon started by plain `node main.js` (not bin/uemlink, the unit or the image) runs without the
 * node flags V8 reads only at start (common/v8-tuning.ts): worth one line for whoever reads the log.
 */
export function logMissingNodeFlags(log: (msg: string, meta: Record<string, unknown>) => void): void {
  const missing = missingNodeFlags();
  if (missing.length > 0) {
    log('node was started without the node flags uemlink runs with; transfers cost more CPU (docs/performance.md)', { missing: missing.join(' ') });
  }
}
