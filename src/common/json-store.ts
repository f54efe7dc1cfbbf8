/**
 * A JSON document on disk (lowdb) that survives crashes and is shared safely between processes
 * (the running cloud and `uemlink cloud token create`, say).
 *
 * - Writes are atomic and 0600 (see fs-secure.ts): a kill -9 never leaves a torn file, a failed
 *   write (disk full) leaves the old file as it was.
 * - A corrupt or invalid file is reported with its path and never replaced by an empty one: silently
 *   resetting a connector to "unpaired" or a cloud to "no connectors" is worse than stopping.
 * - update() takes a cross-process lock (proper-lockfile), re-reads the file, applies the change,
 *   validates and writes: two processes never lose each other's changes.
 */
import { readFile, stat, utimes } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname } from 'node:path';
import { Low, type Adapter } from 'lowdb';
import lockfile from 'proper-lockfile';
import type { z } from 'zod';
import { formatPath } from './config.js';
import { UemlinkError } from './errors.js';
import { ensurePrivateDir, writePrivateFile } from './fs-secure.js';
import { JsonText, draftOf, isMap, isObject, isStored, storeRecord } from './large-map.js';

export interface StoreOptions<T> {
  file: string;
  schema: z.ZodType<T>;
  /** The document when no file exists yet (nothing is written until the first update). */
  empty: () => T;
  /** Human name for messages, e.g. "connector state". */
  what: string;
  /** Called if the cross-process lock was lost (process stalled past the stale period). */
  onLockCompromised?: (err: Error) => void;
  /**
   * Long-running processes with large maps: this many ms after each load, encode the records for
   * writing a batch per event-loop turn (JsonText.warmUp) instead of all at the first write.
   */
  warmAfterLoadMs?: number;
  /**
   * Top-level maps (id -> record) that grow with the fleet, each with the schema of one record.
   * Their records are stored frozen, and update() copies, validates and serializes only the records
   * a change reads or sets (large-map.ts); the rest of the document is handled whole.
   */
  largeMaps?: Partial<Record<keyof T & string, z.ZodType>>;
}

/** lowdb adapter: atomic, fsynced, 0600 writes; reads that explain what is wrong with a file. */
export class AtomicJsonFile<T> implements Adapter<T> {
  constructor(
    private readonly file: string,
    private readonly schema: z.ZodType<T>,
    private readonly what: string,
    private readonly text?: JsonText,
  ) {}

  async read(): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      throw new UemlinkError('STATE_UNREADABLE', `cannot read ${this.what} ${this.file}: ${code === 'EACCES' ? 'permission denied' : (e as Error).message}`, { cause: e });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new UemlinkError(
        'STATE_CORRUPT',
        `${this.what} ${this.file} is corrupt (${text.length === 0 ? 'empty file' : (e as Error).message}); it was left as it is. ` +
          `Restore it from a backup, or move it away to start over (a connector must then be paired again).`,
        { cause: e },
      );
    }
    const r = this.schema.safeParse(raw);
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw new UemlinkError('STATE_INVALID', `${this.what} ${this.file}: ${formatPath(i.path)}: ${i.message}; it was left as it is.`);
    }
    return r.data;
  }

  async write(data: T): Promise<void> {
    await writePrivateFile(this.file, this.text ? this.text.encode(data as object) : `${JSON.stringify(data, null, 2)}\n`, this.what);
  }
}

/**
 * How long read() trusts its last look at the file. Readers on hot paths (every tunnel handshake
 * reads the cloud's state) made one stat() each: ~12 % of the cloud's CPU while 10,000 connectors
 * connected. Changes by this process are seen at once; by another process within this long.
 */
const RECHECK_MS = 100;
/** A lock untouched this long belongs to a dead process (proper-lockfile's `stale`). */
const LOCK_STALE_MS = 5_000;

export class JsonStore<T> {
  private readonly db: Low<T>;
  private readonly adapter: AtomicJsonFile<T>;
  private stamp: string | undefined;
  private loaded = false;
  /** When read() last compared the file's stamp (performance.now()). */
  private checkedAt = -Infinity;
  /** The look at the file that concurrent read() calls share. */
  private checking: Promise<void> | undefined;
  /** Set while this process writes the file: its document is then the newest there is. */
  private writing = false;
  /** Counts documents this process committed, so a reload that started before one is dropped. */
  private commits = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly largeMaps: [string, z.ZodType][];
  /** Encodes large maps' records once each (undefined without large maps). */
  private readonly text: JsonText | undefined;
  /** Filling the encoding cache after a load (see JsonText.warmUp). */
  private warming: { done: Promise<void>; cancel(): void } | undefined;

  constructor(private readonly opts: StoreOptions<T>) {
    this.largeMaps = Object.entries(opts.largeMaps ?? {}) as [string, z.ZodType][];
    this.text = this.largeMaps.length ? new JsonText(new Set(this.largeMaps.map(([k]) => k))) : undefined;
    this.adapter = new AtomicJsonFile(opts.file, opts.schema, opts.what, this.text);
    this.db = new Low<T>(this.adapter, opts.empty());
  }

  get file(): string {
    return this.opts.file;
  }

  /**
   * The document as last read; reloads first if another process changed the file (looked at no
   * more than every RECHECK_MS; not while this process is writing it).
   */
  async read(): Promise<T> {
    if (this.loaded && (this.writing || performance.now() - this.checkedAt < RECHECK_MS)) return this.db.data;
    this.checking ??= (async () => {
      try {
        // Counted before the stat: a commit of ours after it makes what the stat saw stale.
        const commits = this.commits;
        const s = await this.fileStamp();
        if (!this.loaded || s !== this.stamp) await this.reload(s, commits);
        this.checkedAt = performance.now();
      } finally {
        this.checking = undefined;
      }
    })();
    await this.checking;
    return this.db.data;
  }

  /**
   * Applies `fn` to the freshest document under the cross-process lock and writes the result. If
   * `fn` throws, nothing is written. Calls in one process run one at a time.
   */
  update<R>(fn: (data: T) => R): Promise<R> {
    const run = this.queue.then(() => this.locked(fn));
    this.queue = run.catch(() => {});
    return run;
  }

  private async locked<R>(fn: (data: T) => R): Promise<R> {
    await ensurePrivateDir(dirname(this.opts.file));
    await this.unfreezeFutureLock();
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.opts.file, {
        realpath: false,
        // Updates hold the lock for milliseconds; a lock untouched for 5 s belongs to a dead
        // process (kill -9 mid-update) and is taken over.
        stale: LOCK_STALE_MS,
        update: 1_000,
        retries: { retries: 100, minTimeout: 10, maxTimeout: 200, factor: 1.5 },
        onCompromised: (err) => this.opts.onLockCompromised?.(err),
      });
    } catch (e) {
      throw new UemlinkError('STATE_LOCKED', `${this.opts.what} ${this.opts.file} is locked by another process: ${(e as Error).message}`, { cause: e });
    }
    try {
      // Our own last write needs no re-reading: another writer would have changed the stamp (it
      // replaces the file: new inode, and its own size and mtime). Only two writes by others within
      // one coarse timestamp tick of ours, the second reusing our freed inode at the same size,
      // could look like ours; writers of this file are this process and the CLI's single writes.
      const stamp = await this.fileStamp();
      if (!this.loaded || stamp !== this.stamp) await this.reload(stamp, this.commits);
      // Work on a copy: if fn throws halfway, the in-memory document stays as on disk.
      const base = this.db.data;
      const { draft, done, abandon } = this.draft(base);
      let result: R;
      try {
        result = fn(draft);
        // What an async change did after its first await would reach memory and never the file.
        if (isObject(result) && typeof result.then === 'function') throw new Error(`internal: an update of ${this.opts.what} must be synchronous`);
      } catch (e) {
        abandon();
        throw e;
      }
      const changed = done(result);
      // Validated, and made exactly what a load of the file will give (defaults in, unknown members
      // out), detached from the change's objects and frozen before anyone can read it: a reader
      // during the write sees the stored records, not objects a caller may still change.
      const next = this.checked(draft, changed);
      // Still ours? A holder stalled past the lock's stale period (GC, swap, a VM pause) has had it
      // taken over, and the other process may have written meanwhile: writing now would drop that.
      if ((await this.fileStamp()) !== stamp) {
        throw new UemlinkError('STATE_LOCKED', `${this.opts.what} ${this.opts.file} was changed by another process while this one held its lock (it stalled past the lock's 5 s): this update was not written; retry`);
      }
      this.db.data = next;
      this.commits++;
      this.writing = true;
      try {
        await this.db.write();
        this.stamp = await this.fileStamp();
      } catch (e) {
        this.db.data = base; // the file was left as it was (writePrivateFile), and so is memory
        throw e;
      } finally {
        this.writing = false;
      }
      return result;
    } finally {
      await release().catch(() => {});
    }
  }

  /**
   * A lock left by a dead process with an mtime in the future (the clock was set back since: NTP
   * correcting a machine that booted hours ahead) never looks stale to proper-lockfile, which
   * compares the mtime with now: every update would fail STATE_LOCKED until the clock caught up. A
   * live holder sets the mtime to its now every second, so one still ahead and unchanged after
   * 1.5 s belongs to nobody: it is set back into the past, and the lock is taken over like any
   * stale one.
   */
  private async unfreezeFutureLock(): Promise<void> {
    const lock = `${this.opts.file}.lock`;
    const first = await stat(lock).catch(() => undefined);
    if (!first || first.mtimeMs <= Date.now() + LOCK_STALE_MS) return;
    await sleep(1_500);
    const again = await stat(lock).catch(() => undefined);
    if (!again || again.mtimeMs !== first.mtimeMs || again.mtimeMs <= Date.now() + LOCK_STALE_MS) return;
    const past = new Date(Date.now() - 2 * LOCK_STALE_MS);
    await utimes(lock, past, past).catch(() => {});
  }

  /**
   * A copy of the document for one change. `done` puts plain maps back in place of the drafts and
   * says, per large map, which records may have changed (all of them if the change replaced the map).
   */
  private draft(base: T): { draft: T; done: (result: unknown) => Changed; abandon: () => void } {
    if (this.largeMaps.length === 0) return { draft: structuredClone(base), done: () => new Map(), abandon: () => {} };
    const draft: Record<string, unknown> = {};
    const maps: [string, ReturnType<typeof draftOf>][] = [];
    for (const [k, v] of Object.entries(base as object)) {
      if (this.opts.largeMaps?.[k as keyof T & string] && isMap(v)) {
        const d = draftOf(v);
        draft[k] = d.draft;
        maps.push([k, d]);
      } else draft[k] = structuredClone(v);
    }
    return {
      draft: draft as T,
      // The change failed: its drafts die with it (one it kept would go on taking writes, lost).
      abandon: () => {
        for (const [, d] of maps) d.revoke();
      },
      done: (result) => {
        const changed: Changed = new Map();
        for (const [k, d] of maps) {
          // A draft map dies with its change (revoked below); handing one out would fail later, after the write.
          if (result === d.draft) throw new Error(`internal: an update of ${this.opts.what} returned its draft of "${k}"`);
          const kept = draft[k] === d.draft;
          d.revoke();
          if (!kept) continue; // replaced whole: every record counts as changed
          draft[k] = d.copy;
          changed.set(k, d.touched);
        }
        return changed;
      },
    };
  }

  /** Records of large map `k` that may have changed: the touched keys, or all when unknown. */
  private static changedKeys(map: Record<string, unknown>, k: string, changed: Changed): Iterable<string> {
    return changed.get(k) ?? Object.keys(map);
  }

  /**
   * The document to store for a change, or an error naming the first invalid path: the small part
   * as the schema parses it, and in large maps each changed record as its schema parses it, frozen
   * (the schema's output shares no object with the change's). Records the store froze are valid
   * and unchanged and are kept as they are.
   */
  private checked(draft: T, changed: Changed): T {
    const fail = (path: PropertyKey[], message: string): never => {
      throw new Error(`internal: refusing to write invalid ${this.opts.what}: ${formatPath(path)}: ${message}`);
    };
    const small: Record<string, unknown> = { ...(draft as object) };
    for (const [k] of this.largeMaps) if (isMap(small[k])) small[k] = {};
    const checked = this.opts.schema.safeParse(small);
    if (!checked.success) fail(checked.error.issues[0]!.path, checked.error.issues[0]!.message);
    const out = { ...(checked.data as object) } as Record<string, unknown>;
    for (const [k, schema] of this.largeMaps) {
      const map = (draft as Record<string, unknown>)[k];
      if (!isMap(map)) continue;
      out[k] = map;
      for (const id of JsonStore.changedKeys(map, k, changed)) {
        if (!Object.hasOwn(map, id)) continue; // deleted
        // A JSON.parse of the file would make it an own key; the schema's record() drops it.
        if (id === '__proto__') fail([k, id], 'reserved key');
        const rec = map[id];
        if (isStored(rec)) continue;
        const r = schema.safeParse(rec);
        if (!r.success) fail([k, id, ...r.error.issues[0]!.path], r.error.issues[0]!.message);
        map[id] = storeRecord(r.data);
      }
    }
    return out as T;
  }

  /** Freezes the records of large maps of a loaded document (they come from the schema's parse). */
  private freezeLarge(doc: T): void {
    for (const [k] of this.largeMaps) {
      const map = (doc as Record<string, unknown>)[k];
      if (!isMap(map)) continue;
      for (const id of Object.keys(map)) storeRecord(map[id]);
    }
  }

  /** @param commits this process's commit count when `stampNow` was taken */
  private async reload(stampNow: string | undefined, commits: number): Promise<void> {
    // A missing file means "empty" (lowdb would keep its old data).
    const data = stampNow === undefined ? null : await this.adapter.read();
    // This process committed a document since the stamp was taken: that one is newer.
    if (commits !== this.commits) return;
    this.db.data = data ?? this.opts.empty();
    this.freezeLarge(this.db.data);
    this.stamp = stampNow;
    this.loaded = true;
    this.warming?.cancel();
    if (this.opts.warmAfterLoadMs !== undefined) this.warming = this.text?.warmUp(this.db.data as object, { delayMs: this.opts.warmAfterLoadMs });
  }

  /** Resolves once the records loaded last are all encoded (tests and benchmarks). */
  async warmedUp(): Promise<void> {
    await this.warming?.done;
  }

  /** Records encoded for writing so far (tests and benchmarks; 0 without large maps). */
  get encodedRecords(): number {
    return this.text?.encodedRecords ?? 0;
  }

  /**
   * The file's identity, or undefined when there is no file. Only ENOENT means that: any other
   * failure (EIO, EACCES…) read as "no file" made the next update write the change onto an empty
   * document, replacing every record on disk.
   */
  private async fileStamp(): Promise<string | undefined> {
    try {
      const s = await stat(this.opts.file);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new UemlinkError('STATE_UNREADABLE', `${this.opts.what} (${this.opts.file}) cannot be examined: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  }
}

/** Per large map, the keys whose records a change read or set. */
type Changed = Map<string, ReadonlySet<string>>;
