/**
 * One daemon per state directory. A second `connector run` on a config already in use dialled the
 * tunnel with the same identity, replaced the live session (TUNNEL_REPLACED, a ~30 s outage) and
 * only then failed on the page's port; a second cloud on one data dir ran every integration twice.
 *
 * The lock is a file `daemon.lock` holding the holder's pid, its start time (/proc) and host name.
 * A holder on this host is alive when that pid still runs with that start time, so a lock left by
 * a kill -9 is taken over at once (a unit restarting 2 s later must not wait for a timeout, nor
 * hit systemd's start limit). A holder on another host (a volume shared between containers) cannot
 * be looked up: it touches the file every few seconds, and one untouched for 15 s is dead.
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, lutimesSync, openSync, readFileSync, readlinkSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UemlinkError, fileProblem } from './errors.js';

const TOUCH_MS = 5_000;
const STALE_MS = 15_000;

interface Holder {
  pid: number;
  start: string;
  host: string;
  /** The PID namespace (/proc/self/ns/pid): containers sharing a host name have their own. */
  ns?: string;
}

/** This process's PID namespace ('' when /proc cannot tell). */
function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

export interface DaemonLock {
  readonly file: string;
  /**
   * Why the lock could not be taken, when the directory cannot be written (a full disk): the
   * daemon then runs without it, as it ran before there was a lock, and says so.
   */
  readonly unheld?: string;
  release(): void;
}

/** The start time of a process (clock ticks since boot, /proc/PID/stat field 22); '' when unknown. */
export function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/** Whether `file` is a regular file itself (not a symlink, FIFO or device: none of those is a lock of ours). */
function isRegularFile(file: string): boolean {
  try {
    return lstatSync(file).isFile();
  } catch {
    return false;
  }
}

function holderOf(file: string): Holder | undefined {
  let fd: number | undefined;
  try {
    // Never follows a link, never waits on a FIFO, reads no more than a lock can hold: a planted
    // FIFO hung the start for ever, a link to /dev/zero read until memory ran out.
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const h = JSON.parse(buf.subarray(0, n).toString('utf8')) as Partial<Holder>;
    return typeof h.pid === 'number' && typeof h.start === 'string' && typeof h.host === 'string' ? (h as Holder) : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function fresh(file: string, now: number): boolean {
  try {
    return now - statSync(file).mtimeMs < STALE_MS;
  } catch {
    return false;
  }
}

function alive(file: string, h: Holder | undefined, me: Holder, now: number): boolean {
  // Its pid means something here only on this host, in this PID namespace, with /proc to read.
  if (h && h.host === me.host && (h.ns ?? '') === (me.ns ?? '') && me.ns && me.start) {
    // This process holding it (an in-process restart) is no other daemon.
    if (h.pid === process.pid) return false;
    const start = processStart(h.pid);
    if (start !== '') return start === h.start;
    // No such process now: dead.
    try {
      process.kill(h.pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    }
    return fresh(file, now);
  }
  // Another host or container, no /proc, or a lock half-written: only its freshness tells.
  return fresh(file, now);
}

/**
 * Taking over a dead holder's lock is itself serialized by a second file created exclusively:
 * two daemons that both judged the holder dead would otherwise both delete and re-create the lock
 * (the second deleting the first one's new lock) and both run. One left by a starter that died in
 * the middle (milliseconds) is removed once a few seconds old.
 */
function takeoverGuard(file: string): (() => void) | undefined {
  const guard = `${file}.takeover`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      closeSync(openSync(guard, 'wx', 0o600));
      return () => {
        try {
          unlinkSync(guard);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return undefined;
      try {
        if (Date.now() - statSync(guard).mtimeMs < 5_000) return undefined;
        unlinkSync(guard);
      } catch {
        /* removed meanwhile */
      }
    }
  }
  return undefined;
}

/** A lock that could not be taken: a full or read-only disk must not stop a daemon that ran before. */
function unheld(file: string, e: unknown): DaemonLock {
  return { file, unheld: fileProblem(e), release() {} };
}

/**
 * Takes `dir`'s daemon lock or throws ALREADY_RUNNING naming the holder. `what` names the daemon in
 * the message ("connector", "cloud").
 */
export function takeDaemonLock(dir: string, what: string, hint: string): DaemonLock {
  const file = join(dir, 'daemon.lock');
  const me: Holder = { pid: process.pid, start: processStart(process.pid), host: hostname(), ns: pidNamespace() };
  let release: (() => void) | undefined;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        release?.();
        return unheld(file, e);
      }
      const h = holderOf(file);
      const refuse = (): never => {
        release?.();
        const who = h ? `pid ${h.pid} on ${h.host}` : 'another process';
        throw new UemlinkError('ALREADY_RUNNING', `another ${what} (${who}) is running with ${dir}: ${hint} (lock file ${file})`);
      };
      // Something that is no lock file (a symlink, a FIFO) holds nothing: it is replaced.
      if (attempt > 0 || (isRegularFile(file) && alive(file, h, me, Date.now()))) refuse();
      // Its holder is gone: take it over, one starter at a time; under the guard, look again
      // (another starter may have taken it over just before).
      release = takeoverGuard(file);
      if (!release) refuse();
      if (JSON.stringify(holderOf(file)) !== JSON.stringify(h)) refuse();
      try {
        unlinkSync(file);
      } catch {
        /* gone meanwhile */
      }
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(me));
    } catch (e) {
      closeSync(fd);
      try {
        unlinkSync(file);
      } catch {
        /* nothing to remove */
      }
      release?.();
      return unheld(file, e);
    }
    closeSync(fd);
    break;
  }
  release?.();
  const touch = setInterval(() => {
    try {
      const t = new Date();
      lutimesSync(file, t, t); // the lock itself, never what a link put in its place points to
    } catch {
      /* a removed dir: nothing to keep fresh */
    }
  }, TOUCH_MS);
  touch.unref();
  return {
    file,
    release() {
      clearInterval(touch);
      const h = holderOf(file);
      if (h && h.pid === me.pid && h.start === me.start && h.host === me.host && (h.ns ?? '') === (me.ns ?? '')) {
        try {
          unlinkSync(file);
        } catch {
          /* already gone */
        }
      }
    },
  };
}
