/**
 * Waiting items grouped by a key (the handshake gate's sources), taken one key at a time in turn,
 * each key's items in arrival order; the key with the most waiting is known at any time, so a full
 * queue can shed from it (longest queue drop). Every operation is O(1) apart from those that remove
 * many items at once, which cost what they remove.
 */
// Re-exported: the handshake gate's sources are the failure limiters' too.
export { sourceOf } from '../common/rate-limit.js';

/**
 * A FIFO as an array with a moving head: shift() on 10,000 waiting sockets would be O(n) each. The
 * array is compacted when the consumed part is both large and most of it.
 */
export class Fifo<T> {
  private items: Array<T | undefined> = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(x: T): void {
    this.items.push(x);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }
}

/** One key's items. `live` is false once it is empty and forgotten (a turn may still name it). */
interface Lane<T> {
  key: string;
  items: Fifo<T>;
  live: boolean;
}

export class FairQueue<T> {
  private readonly lanes = new Map<string, Lane<T>>();
  /** Live lanes in the order they are served (each at most once), and lanes emptied since. */
  private readonly turns = new Fifo<Lane<T>>();
  /** Live lanes by how many items they hold, and the largest such count. */
  private readonly byCount = new Map<number, Set<Lane<T>>>();
  private maxCount = 0;
  private _size = 0;

  get size(): number {
    return this._size;
  }

  /** Keys with items waiting. */
  get keys(): number {
    return this.lanes.size;
  }

  lengthOf(key: string): number {
    return this.lanes.get(key)?.items.length ?? 0;
  }

  /** The key with the most items waiting (the first to get there on a tie). */
  busiest(): { key: string; count: number } | undefined {
    if (this.maxCount === 0) return undefined;
    const lane = this.byCount.get(this.maxCount)!.values().next().value as Lane<T>;
    return { key: lane.key, count: this.maxCount };
  }

  push(key: string, item: T): void {
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { key, items: new Fifo(), live: true };
      this.lanes.set(key, lane);
      this.turns.push(lane);
    }
    lane.items.push(item);
    this._size++;
    this.counted(lane, lane.items.length - 1);
  }

  /** The next item: the oldest of the key whose turn it is. */
  shift(): T | undefined {
    for (;;) {
      const lane = this.turns.shift();
      if (!lane) return undefined;
      if (!lane.live) continue;
      const item = this.take(lane);
      if (lane.live) this.turns.push(lane);
      return item;
    }
  }

  /** Removes the oldest item of the busiest key. */
  shiftBusiest(): T | undefined {
    if (this.maxCount === 0) return undefined;
    return this.take(this.byCount.get(this.maxCount)!.values().next().value as Lane<T>);
  }

  /** Removes, from the front of every key's items, those `stale` says are, and returns them. */
  pruneFronts(stale: (item: T) => boolean): T[] {
    const out: T[] = [];
    for (const lane of [...this.lanes.values()]) {
      while (lane.live && stale(lane.items.peek()!)) out.push(this.take(lane));
    }
    return out;
  }

  /** Removes and returns every item. */
  clear(): T[] {
    const out: T[] = [];
    for (const lane of this.lanes.values()) for (const x of lane.items) out.push(x);
    this.lanes.clear();
    while (this.turns.shift());
    this.byCount.clear();
    this.maxCount = 0;
    this._size = 0;
    return out;
  }

  private take(lane: Lane<T>): T {
    const item = lane.items.shift()!;
    this._size--;
    this.counted(lane, lane.items.length + 1);
    if (lane.items.length === 0) {
      lane.live = false;
      this.lanes.delete(lane.key);
    }
    return item;
  }

  /** Moves `lane` from the bucket of `was` items to that of its length now. */
  private counted(lane: Lane<T>, was: number): void {
    const now = lane.items.length;
    if (was > 0) {
      const set = this.byCount.get(was)!;
      set.delete(lane);
      if (set.size === 0) this.byCount.delete(was);
    }
    if (now > 0) {
      let set = this.byCount.get(now);
      if (!set) this.byCount.set(now, (set = new Set()));
      set.add(lane);
    }
    if (now > this.maxCount) this.maxCount = now;
    while (this.maxCount > 0 && !this.byCount.has(this.maxCount)) this.maxCount--;
  }
}
