/**
 * Helpers for the large maps of a JSON document (the cloud's `connectors`: one record per paired
 * connector, ~2 KiB each with its certificate). At 10,000 connectors the whole document is ~21 MiB;
 * copying, validating and serializing all of it for every pairing blocked the cloud's event loop for
 * ~470 ms (docs/performance.md). These let an update touch only the records it reads:
 *
 * - `draftOf` gives update() a copy of a map whose records are deep-copied the first time the change
 *   reads them; records it never reads stay the stored objects.
 * - Stored records are deep-frozen by the store (`storeRecord`), which remembers what
 *   it froze (`isStored`): such a record is known valid and unchanged, so update() validates only
 *   the others, and `JsonText` reuses its serialized text. Only what the store froze counts: an
 *   object a change froze itself (Object.freeze is shallow) is validated and copied like any other.
 *   Freezing also turns an accidental in-place change of stored state (which would never reach the
 *   file) into an error at the line that does it.
 */

/**
 * Records the store deep-froze (`storeRecord`): validated, unchanged. Only records are marked, not
 * what is inside them (a WeakSet entry per object cost ~2.5 µs per record, more than the freeze).
 */
const stored = new WeakSet<object>();

/** Whether `v` is a record the store froze; see the module comment. */
export function isStored(v: unknown): v is object {
  return isObject(v) && stored.has(v);
}

/** Freezes a JSON value and everything in it; returns it. */
export function freezeDeep<T>(v: T): T {
  if (!isObject(v) || Object.isFrozen(v)) return v;
  Object.freeze(v);
  for (const k of Object.keys(v)) freezeDeep((v as Record<string, unknown>)[k]);
  return v;
}

/**
 * Freezes a record and marks it stored. `v` must be the store's own: a fresh parse (of the file,
 * or the schema's output for a change), which nobody else holds and which contains nothing frozen.
 */
export function storeRecord<T>(v: T): T {
  freezeDeep(v);
  if (isObject(v)) stored.add(v);
  return v;
}

/**
 * A deep copy of a JSON value: new objects and arrays, the same strings and numbers. For the plain
 * data of a JSON document this equals structuredClone, at a fraction of its cost (which serializes
 * and copies every string: at 10,000 connector records, two clones per record were ~20 % of a
 * presence update).
 */
export function copyJson<T>(v: T): T {
  if (!isObject(v)) return v;
  return (Array.isArray(v) ? v.map(copyJson) : copyOwn(v, copyJson)) as T;
}

function copyOwn(v: Record<string, unknown>, each: (x: unknown) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) setOwn(out, k, each(v[k]));
  return out;
}

/** `o[k] = value`, except that a "__proto__" key (JSON.parse makes it an own property) stays one. */
function setOwn(o: Record<string, unknown>, k: string, value: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value, writable: true, enumerable: true, configurable: true });
  else o[k] = value;
}

/**
 * A draft of `base` for one change: reading a record (get, Object.values/entries, spread) replaces
 * it in the draft by a deep copy first, so the change can never touch the stored record.
 * `copy` is the plain object behind the proxy, which becomes the new map once the change is done;
 * `touched` the keys the change read, set or deleted (only there can it differ from the stored map).
 */
export function draftOf<V>(base: Record<string, V>): { draft: Record<string, V>; copy: Record<string, V>; touched: ReadonlySet<string>; revoke: () => void } {
  const copy: Record<string, V> = { ...base };
  // Keys whose value already belongs to the draft: copied on read, or assigned by the change.
  const own = new Set<string>();
  const ensureOwn = (k: string | symbol): void => {
    if (typeof k !== 'string' || own.has(k) || !Object.hasOwn(copy, k)) return;
    own.add(k);
    const v = copy[k];
    if (isObject(v)) copy[k] = copyJson(v);
  };
  // Revocable: a draft kept past its change (returned by the recipe, say) must not go on copying
  // into `copy`, which by then is the stored map.
  const { proxy: draft, revoke } = Proxy.revocable(copy, {
    get(t, k, r) {
      // Only records: `map["constructor"]` is no record (and must not hand out Object to change).
      if (typeof k === 'string' && !Object.hasOwn(t, k)) return undefined;
      ensureOwn(k);
      return Reflect.get(t, k, r) as unknown;
    },
    // No copy here: Object.keys and for..in ask for every key's descriptor, and listing keys must
    // not copy (and mark as changed) every record. Values read through a descriptor are the stored,
    // frozen ones; everything that reads values (get, spread, Object.values/entries) copies.
    defineProperty(t, k, d) {
      if (typeof k === 'string') own.add(k);
      return Reflect.defineProperty(t, k, d);
    },
    set(t, k, v, r) {
      if (typeof k !== 'string') return Reflect.set(t, k, v, r);
      own.add(k);
      // `map["__proto__"] = rec` would set the map's prototype (the inherited setter); make it a
      // record like any other (which update() then refuses to store, see json-store.ts).
      if (k === '__proto__') return Reflect.defineProperty(t, k, { value: v, writable: true, enumerable: true, configurable: true });
      return Reflect.set(t, k, v, r);
    },
    deleteProperty(t, k) {
      if (typeof k === 'string') own.add(k);
      return Reflect.deleteProperty(t, k);
    },
  });
  return { draft, copy, touched: own, revoke };
}

/**
 * `JSON.stringify(doc, null, 2)` plus a newline, byte for byte, for a document some of whose
 * top-level keys are large maps, as a list of Buffers (written with one writev, never joined). The
 * encoded entry of each frozen record is remembered for as long as the record lives (frozen records
 * cannot change, so it stays true); a write then copies remembered bytes instead of serializing and
 * UTF-8 encoding ~21 MiB again.
 */
export class JsonText {
  private readonly entries = new WeakMap<object, { key: string; bytes: Buffer }>();
  /** Records encoded so far (not served from the cache), for tests and benchmarks. */
  encodedRecords = 0;

  constructor(private readonly largeMaps: ReadonlySet<string>) {}

  encode(doc: object): Buffer[] {
    const out: Buffer[] = [];
    let first = true;
    for (const [key, v] of Object.entries(doc)) {
      if (this.largeMaps.has(key) && isMap(v)) {
        out.push(Buffer.from(`${first ? '{\n' : ',\n'}  ${JSON.stringify(key)}: `));
        this.encodeMap(v, out);
        first = false;
        continue;
      }
      const text = indent(JSON.stringify(v, null, 2), '\n  ');
      if (text === undefined) continue;
      out.push(Buffer.from(`${first ? '{\n' : ',\n'}  ${JSON.stringify(key)}: ${text}`));
      first = false;
    }
    out.push(Buffer.from(first ? '{}\n' : '\n}\n'));
    return out;
  }

  private encodeMap(m: Record<string, unknown>, out: Buffer[]): void {
    let first = true;
    for (const [key, v] of Object.entries(m)) {
      const bytes = this.entry(key, v);
      if (bytes === undefined) continue;
      out.push(first ? OPEN : COMMA, bytes);
      first = false;
    }
    out.push(first ? EMPTY : CLOSE);
  }

  /** `    "key": value` of one record, from the cache when the record is stored and was seen before. */
  private entry(key: string, v: unknown): Buffer | undefined {
    const cacheable = isStored(v);
    if (cacheable) {
      const hit = this.entries.get(v);
      if (hit?.key === key) return hit.bytes;
    }
    const text = indent(JSON.stringify(v, null, 2), '\n    ');
    if (text === undefined) return undefined;
    const bytes = Buffer.from(`    ${JSON.stringify(key)}: ${text}`);
    this.encodedRecords++;
    if (cacheable) this.entries.set(v, { key, bytes });
    return bytes;
  }

  /**
   * Encodes the frozen records of `doc`'s large maps into the cache a batch per event-loop turn,
   * so that the first write after a load does not encode them all at once: ~290 ms of blocked
   * event loop at 10,000 connectors, after every start and every reload (docs/storage.md). The same
   * work, spread out; `cancel()` stops it (a newer document was loaded). Resolves `done` when all
   * are cached. `delayMs` lets a process starting up finish that first (the warm-up made a cloud
   * with 10,000 connectors listen ~150 ms later). The turns are not unref'd: libuv does not wake
   * for unref'd immediates alone, so an idle process would warm only when something else woke it.
   */
  warmUp(doc: object, opts: { delayMs?: number; batch?: number } = {}): { done: Promise<void>; cancel(): void } {
    const batch = opts.batch ?? 200;
    const work: Array<[string, object]> = [];
    for (const [k, m] of Object.entries(doc)) {
      if (!this.largeMaps.has(k) || !isMap(m)) continue;
      for (const [key, v] of Object.entries(m)) if (isStored(v) && this.entries.get(v)?.key !== key) work.push([key, v]);
    }
    let timer: NodeJS.Immediate | undefined;
    let delay: NodeJS.Timeout | undefined;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    let i = 0;
    const step = (): void => {
      timer = undefined;
      for (const end = Math.min(i + batch, work.length); i < end; i++) {
        const [key, v] = work[i]!;
        this.entry(key, v); // (a cache hit when a write got there first)
      }
      if (i >= work.length) finish();
      else timer = setImmediate(step);
    };
    if (work.length === 0) finish();
    else if (opts.delayMs) delay = setTimeout(() => (timer = setImmediate(step)), opts.delayMs);
    else timer = setImmediate(step);
    return {
      done,
      cancel: () => {
        if (delay) clearTimeout(delay);
        if (timer) clearImmediate(timer);
        timer = undefined;
        finish();
      },
    };
  }
}

const OPEN = Buffer.from('{\n');
const COMMA = Buffer.from(',\n');
const CLOSE = Buffer.from('\n  }');
const EMPTY = Buffer.from('{}');

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object';
}

/** An id -> record map: an object that is not an array (and serializes as itself). */
export function isMap(v: unknown): v is Record<string, unknown> {
  return isObject(v) && !Array.isArray(v) && typeof v.toJSON !== 'function';
}

/** Nested text one level deeper (JSON.stringify gives undefined for undefined and functions). */
function indent(text: string | undefined, nl: string): string | undefined {
  return text?.replaceAll('\n', nl);
}
