/**
 * A Map for short-lived values in a long-lived map: each value sits in a small box that is emptied
 * when its key is deleted. Same semantics as Map (insertion order, set() of an existing key keeps
 * its place).
 *
 * Why: V8 rebuilds a Map's hash table once deletions have used up its free entries, and the table
 * it leaves behind keeps pointing at every value it held. Once a map's table is in the old
 * generation, each replacement is allocated there too, and a dead old-generation object still
 * counts as a root for the young-generation collector until the next full collection. So every
 * value that was in the map at a rebuild, and all that hangs off it, survived and was promoted. A
 * session's stream table churns a stream per relayed request: on the cloud that promoted the whole
 * request (its HTTP request and response, the stream, their closures), ~4 KiB per request, and
 * scavenges cost ~20 µs per request instead of ~3.5 in whichever process had fallen into it
 * (docs/performance.md). A dead table now holds empty boxes.
 *
 * Keys are held by dead tables too: use small values as keys (ids), not the objects themselves.
 */
interface Box<V> {
  v: V | undefined;
}

export class ChurnMap<K, V> {
  private readonly m = new Map<K, Box<V>>();

  get size(): number {
    return this.m.size;
  }

  get(key: K): V | undefined {
    return this.m.get(key)?.v;
  }

  has(key: K): boolean {
    return this.m.has(key);
  }

  set(key: K, value: V): this {
    const b = this.m.get(key);
    if (b) b.v = value;
    else this.m.set(key, { v: value });
    return this;
  }

  delete(key: K): boolean {
    const b = this.m.get(key);
    if (!b) return false;
    b.v = undefined;
    return this.m.delete(key);
  }

  /** The oldest value (in insertion order), if any. */
  first(): V | undefined {
    for (const b of this.m.values()) return b.v;
    return undefined;
  }

  *values(): IterableIterator<V> {
    for (const b of this.m.values()) yield b.v as V;
  }
}
