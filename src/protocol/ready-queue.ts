/**
 * The session's round-robin queue of streams with something to send: an intrusive doubly-linked
 * list, the links kept on the streams themselves (like the kernel's list_head).
 *
 * Why not a Map or Set: the queue churns on every write of every stream (taken from the front,
 * re-added at the back). A Map keeps deleted entries until its table is rebuilt, so taking the
 * first entry skips every entry deleted before it, and each rebuild leaves behind a table that
 * still points at streams; with the stream table, that showed as 2–3 % of the cloud's self time at
 * 64 connections (5.7 % during an upload) in `ChurnMap.delete`, and was one
 * of the ways streams were promoted to V8's old generation (docs/performance.md). Here every
 * operation is O(1), nothing is allocated, and a stream leaving the queue has its links cleared, so
 * a dead stream never points at a live one.
 */
export interface ReadyLinks<T> {
  /** @internal */ readyPrev: T | null;
  /** @internal */ readyNext: T | null;
  /** @internal */ readyQueued: boolean;
}

export class ReadyQueue<T extends ReadyLinks<T>> {
  private head: T | null = null;
  private tail: T | null = null;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Appends `s`; a stream already queued keeps its place (as Map.set of an existing key). */
  add(s: T): void {
    if (s.readyQueued) return;
    s.readyQueued = true;
    s.readyPrev = this.tail;
    s.readyNext = null;
    if (this.tail) this.tail.readyNext = s;
    else this.head = s;
    this.tail = s;
    this.count++;
  }

  /** Removes `s` if queued; returns whether it was. */
  delete(s: T): boolean {
    if (!s.readyQueued) return false;
    const { readyPrev: prev, readyNext: next } = s;
    if (prev) prev.readyNext = next;
    else this.head = next;
    if (next) next.readyPrev = prev;
    else this.tail = prev;
    s.readyPrev = null;
    s.readyNext = null;
    s.readyQueued = false;
    this.count--;
    return true;
  }

  /** Removes and returns the first stream, if any. */
  shift(): T | undefined {
    const s = this.head;
    if (!s) return undefined;
    this.delete(s);
    return s;
  }

  /** The streams in queue order (a snapshot: safe to change the queue while iterating it). */
  toArray(): T[] {
    const out: T[] = [];
    for (let s = this.head; s; s = s.readyNext) out.push(s);
    return out;
  }
}
