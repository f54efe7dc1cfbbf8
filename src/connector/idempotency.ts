/**
 * Remembers the idempotency keys of non-idempotent requests the connector already sent to a UEM, for
 * a few minutes, so that a replayed POST (a retry somewhere upstream, a duplicated frame) is never
 * executed twice. Bounded: the oldest keys go first when full.
 *
 * Timed by a monotonic clock: with the wall clock, a step forward (NTP correcting a VM that slept)
 * expired every key at once, so a replay minutes later ran a second time, and a step back kept
 * every key, and stopped the eviction, for as long as the step.
 */
export class IdempotencyCache {
  private readonly seen = new Map<string, number>();

  /** `now`: milliseconds from a clock that never steps (tests give their own). */
  constructor(
    private readonly ttlMs = 10 * 60_000,
    private readonly maxKeys = 200_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records `key`; false when it was already recorded within the TTL. */
  claim(key: string): boolean {
    const now = this.now();
    const at = this.seen.get(key);
    if (at !== undefined && now - at < this.ttlMs) return false;
    this.seen.delete(key);
    this.seen.set(key, now);
    this.evict(now);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  /**
   * Drops expired keys (and the oldest beyond maxKeys) from the front: the map is in claim order, so
   * this is amortised O(1) per claim, and memory follows the last TTL's traffic instead of growing
   * to maxKeys and staying there (seen as a steady RSS climb in the soak).
   */
  private evict(now: number): void {
    for (const [k, at] of this.seen) {
      if (this.seen.size <= this.maxKeys && now - at < this.ttlMs) break;
      this.seen.delete(k);
    }
  }
}
