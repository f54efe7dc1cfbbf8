/**
 * Files that hold secrets or state: private keys, generated passwords, state documents. They are
 * created 0600 inside 0700 directories and replaced atomically: a temp file in the same directory is
 * written, fsynced and renamed over the old one, then the directory is fsynced. A kill -9 at any
 * instant leaves the old or the new file, never a torn one; a failed write (disk full) leaves the
 * old file as it was.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { chmod, chown, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { UemlinkError, fileProblem } from './errors.js';

/**
 * When root writes into a directory that belongs to a service user (an admin running
 * `uemlink connector pair` as root, say), the new file must belong to that user too, or the service
 * could no longer read its own state.
 */
async function adoptOwner(path: string, dir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const d = await stat(dir);
  if (d.uid !== 0) await chown(path, d.uid, d.gid);
}

/** Creates `dir` (and parents) and makes sure only the owner can enter it. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    const created = await mkdir(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) await adoptOwner(dir, dirname(dir));
    const s = await stat(dir);
    if ((s.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
  } catch (e) {
    throw new UemlinkError('STATE_WRITE_FAILED', `cannot create private directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Atomically writes `content` to `file` with mode 0600. `what` names the file in errors. A list of
 * buffers is written as one file without first being copied into one buffer.
 */
export async function writePrivateFile(file: string, content: string | Buffer | readonly Buffer[], what = 'file'): Promise<void> {
  const dir = dirname(file);
  const tmp = `${dir}/.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  let fh;
  try {
    fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    if (typeof content === 'string' || Buffer.isBuffer(content)) await fh.writeFile(content);
    else await writeAll(fh, content);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await adoptOwner(tmp, dir);
    await rename(tmp, file);
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw new UemlinkError('STATE_WRITE_FAILED', `cannot write ${what} ${file}: ${fileProblem(e)}; the previous version was kept`, { cause: e });
  }
  // Make the rename itself durable.
  try {
    const d = await open(dir, 'r');
    await d.sync().catch(() => {});
    await d.close();
  } catch {
    /* some filesystems cannot open directories; the rename is still atomic */
  }
}

/** The temp names writePrivateFile makes: `.<name>.<pid>.<8 hex>.tmp`. */
const TEMP_NAME = /^\..+\.\d+\.[0-9a-f]{8}\.tmp$/;

/**
 * Removes the temp files of writes that never finished (a kill -9, a power cut between open and
 * rename) from `dir`: each holds a whole copy of a state document or key, and a daemon restarted
 * by its supervisor after every crash would pile them up. A write lasts milliseconds, so a temp
 * file older than `minAgeMs` is nobody's (pids are no guide: a container's daemon is pid 1 every
 * time). Best effort: what cannot be listed or removed is left, and the count removed returned.
 */
export async function sweepOrphanTemps(dir: string, now = Date.now(), minAgeMs = 10 * 60_000): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!TEMP_NAME.test(name)) continue;
    const path = `${dir}/${name}`;
    try {
      const s = await stat(path);
      if (!s.isFile() || now - s.mtimeMs < minAgeMs) continue;
      await unlink(path);
      removed++;
    } catch {
      /* gone meanwhile, or not ours to remove */
    }
  }
  return removed;
}

/** writev until everything is written (a write may be short; libuv splits at IOV_MAX itself). */
async function writeAll(fh: FileHandle, parts: readonly Buffer[]): Promise<void> {
  let rest = parts.filter((b) => b.length > 0);
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest);
    if (bytesWritten === 0) throw Object.assign(new Error('no progress writing the file'), { code: 'EIO' });
    let n = bytesWritten;
    let i = 0;
    while (i < rest.length && n >= rest[i]!.length) n -= rest[i++]!.length;
    rest = rest.slice(i);
    if (n > 0) rest[0] = rest[0]!.subarray(n);
  }
}
