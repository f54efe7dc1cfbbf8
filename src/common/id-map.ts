/**
 * A map from positive 31-bit integer ids (stream ids) to values, for short-lived values in a
 * long-lived map: open addressing with linear probing in two flat arrays, deletion by backward
 * shift (no tombstones), growing at half load and never shrinking.
 *
 * Why not a Map: a session's stream table takes one stream per relayed request, and its size swings
 * between 0 and the concurrency with every burst. V8 rebuilds a Map's hash table when deletions
 * use up its entries and shrinks it (a new table) whenever it falls under a
 * quarter full; each abandoned table still points at every value it held. A dead old-generation
 * table counts as a root for the young-generation collector until the next full collection, so every
 * request that had been in the map at a rebuild was promoted: ~4 KiB per request on the cloud,
 * scavenges at ~20 µs per request instead of ~3.5 (docs/performance.md). Here a deleted slot is
 * cleared at once, and the arrays are only replaced when the map grows, the old values array
 * cleared as it is copied. Iteration order is unspecified.
 */
const EMPTY = 0;
const MIN_CAPACITY = 16;

export class IdMap<V> {
  private keys = new Int32Array(MIN_CAPACITY);
  private vals: Array<V | undefined> = new Array<V | undefined>(MIN_CAPACITY).fill(undefined);
  /** 32 - log2(capacity): Fibonacci hashing takes the product's high bits (ids come in steps of 2). */
  private shift = 32 - Math.log2(MIN_CAPACITY);
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(id: number): V | undefined {
    const i = this.find(id);
    return i < 0 ? undefined : this.vals[i];
  }

  has(id: number): boolean {
    return this.find(id) >= 0;
  }

  set(id: number, value: V): this {
    if (!Number.isInteger(id) || id < 1 || id > 0x7fffffff) throw new RangeError(`IdMap key out of range: ${id}`);
    const at = this.find(id);
    if (at >= 0) {
      this.vals[at] = value;
      return this;
    }
    if ((this.count + 1) * 2 > this.keys.length) this.grow();
    this.place(id, value);
    this.count++;
    return this;
  }

  delete(id: number): boolean {
    let i = this.find(id);
    if (i < 0) return false;
    const mask = this.keys.length - 1;
    // Backward shift: pull later entries of the probe run into the hole unless that would move one
    // before its home slot.
    for (let j = (i + 1) & mask; this.keys[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.home(this.keys[j]!);
      const stays = i < j ? home > i && home <= j : home > i || home <= j;
      if (stays) continue;
      this.keys[i] = this.keys[j]!;
      this.vals[i] = this.vals[j];
      i = j;
    }
    this.keys[i] = EMPTY;
    this.vals[i] = undefined;
    this.count--;
    return true;
  }

  *values(): IterableIterator<V> {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== EMPTY) yield this.vals[i] as V;
  }

  private home(id: number): number {
    return Math.imul(id, 0x9e3779b1) >>> this.shift;
  }

  private find(id: number): number {
    const mask = this.keys.length - 1;
    for (let i = this.home(id); ; i = (i + 1) & mask) {
      const k = this.keys[i];
      // The empty test first: an id of 0 must not match an empty slot. Any other id that set()
      // refuses equals no stored key, so its probe ends at an empty slot too.
      if (k === EMPTY) return -1;
      if (k === id) return i;
    }
  }

  /** Puts an id known to be absent into its first free slot. */
  private place(id: number, value: V): void {
    const mask = this.keys.length - 1;
    let i = this.home(id);
    while (this.keys[i] !== EMPTY) i = (i + 1) & mask;
    this.keys[i] = id;
    this.vals[i] = value;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    this.keys = new Int32Array(oldKeys.length * 2);
    this.vals = new Array<V | undefined>(oldKeys.length * 2).fill(undefined);
    this.shift--;
    for (let i = 0; i < oldKeys.length; i++) {
      if (oldKeys[i] === EMPTY) continue;
      this.place(oldKeys[i]!, oldVals[i] as V);
      oldVals[i] = undefined; // the abandoned array must not keep values alive (see above)
    }
  }
}
