/**
 * An append-only text file rotated by size (file -> file.1 -> file.2 ...), written through one
 * stream, for the audit log and the daemons' log file. What it promises the daemon:
 * - a write never blocks nor fails the caller: lines are gathered for up to 50 ms (or 64 KiB) and
 *   written together; a file that cannot be written (disk full, a removed directory) loses those
 *   lines, is said once per episode (`onError`), and the next batch tries a fresh file;
 * - a file removed or moved away while open (an admin freeing space, logrotate without
 *   copytruncate) is noticed at the next batch and written again under its name: lines went into
 *   the unlinked file until the next size rotation; `reopen()` (SIGHUP) does the same at once.
 * winston's File transport did neither: on a full disk its stream stopped draining and winston
 * stopped feeding every transport, stdout included.
 */
import { createWriteStream, existsSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

/** Lines wait at most this long to be written together (a crash loses at most this much). */
const FLUSH_MS = 50;
/** ... or until this many bytes wait. */
const FLUSH_BYTES = 64 * 1024;

export interface RotatingFileOptions {
  file: string;
  maxBytes: number;
  /** Files kept, the current one included. */
  maxFiles: number;
  /** Once per episode of failed writes. */
  onError?(err: Error): void;
  /** When a write succeeds again after an episode. */
  onRecovered?(): void;
}

export interface RotatingFile {
  write(text: string): void;
  /** Closes the current file; the next batch opens the file under its name (SIGHUP). */
  reopen(): void;
  close(): Promise<void>;
}

export function createRotatingFile(opts: RotatingFileOptions): RotatingFile {
  let out: { w: WriteStream; ino: number } | undefined;
  let size = 0;
  let failed = false;
  let failing = false;
  const failure = (err: unknown): void => {
    if (failing) return;
    failing = true;
    opts.onError?.(err instanceof Error ? err : new Error(String(err)));
  };
  const succeeded = (): void => {
    if (!failing) return;
    failing = false;
    opts.onRecovered?.();
  };
  let pending: string[] = [];
  let pendingBytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const open = (): { w: WriteStream; ino: number; size: number } => {
    mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
    // Opened synchronously: the file must exist the moment lines are queued, or a rotation in the
    // same burst would find nothing to rename and two streams would append to one file.
    const fd = openSync(opts.file, 'a', 0o600);
    const st = fstatSync(fd);
    const w = createWriteStream('', { fd });
    w.on('error', (err) => {
      failed = true;
      failure(err);
    });
    return { w, ino: st.ino, size: st.size };
  };
  const drop = (): void => {
    out?.w.end();
    out = undefined;
  };
  /**
   * The open file is no longer the one under the name (removed, moved away by logrotate). One
   * truncated under us (logrotate's copytruncate) is counted from its new size: rotating it at
   * the old count cut a near-empty file and shifted logrotate's own numbered files.
   */
  const replaced = (): boolean => {
    if (!out) return false;
    try {
      const st = statSync(opts.file);
      if (st.ino !== out.ino) return true;
      if (st.size < size - pendingBytes) size = st.size + pendingBytes;
      return false;
    } catch {
      return true;
    }
  };
  const flush = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const moved = replaced();
    const text = pending.join('');
    pending = [];
    pendingBytes = 0;
    if (failed || moved) {
      // A failed stream is dropped; one whose file was moved away is ended, so that what it still
      // queues lands in the moved file rather than nowhere.
      if (failed) out?.w.destroy();
      else out?.w.end();
      failed = false;
      out = undefined;
    }
    try {
      if (!out) {
        const o = open();
        out = { w: o.w, ino: o.ino };
        size = o.size + Buffer.byteLength(text);
      }
    } catch (err) {
      failure(err);
      return; // cannot open (disk full, permissions): these lines are lost, the next ones try again
    }
    out.w.write(text, (err) => {
      if (!err) succeeded();
    });
  };
  const rotate = (): void => {
    flush();
    drop();
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
    write(text) {
      if (out === undefined && pending.length === 0) {
        // The size of the file as it is now, so rotation counts what is already there.
        try {
          const o = open();
          out = { w: o.w, ino: o.ino };
          size = o.size;
        } catch {
          /* retried at the next flush */
        }
      }
      const bytes = Buffer.byteLength(text);
      if (size > 0 && size + bytes > opts.maxBytes) rotate();
      pending.push(text);
      pendingBytes += bytes;
      size += bytes;
      if (pendingBytes >= FLUSH_BYTES) flush();
      else timer ??= setTimeout(flush, FLUSH_MS).unref();
    },
    reopen() {
      flush();
      drop();
    },
    close() {
      flush();
      const w = out?.w;
      out = undefined;
      if (!w) return Promise.resolve();
      return new Promise((resolve) => {
        w.end(() => resolve());
        setTimeout(resolve, 1000).unref();
      });
    },
  };
}
