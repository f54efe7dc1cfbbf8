/**
 * Remembers the idempotency keys of non-idempotent requests the connector already sent to a UEM, for
 * a few minutes, so that a replayed POST (a retry somewhere upstream, a duplicated frame) is never
 * executed twice. Bounded: the oldest keys go first when full.
 */
import type { Clock } from '../common/clock.js';

export class IdempotencyCache {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs = 10 * 60_000,
    private readonly maxKeys = 200_000,
  ) {}

  /** Records `key`; false when it was already recorded within the TTL. */
  claim(key: string): boolean {
    const now = this.clock.now();
    const at = this.seen.get(key);
    if (at !== undefined && now - at < this.ttlMs) return false;
    this.seen.delete(key);
    this.seen.set(key, now);
    if (this.seen.size > this.maxKeys) this.evict(now);
    return true;
  }

  private evict(now: number): void {
    for (const [k, at] of this.seen) {
      if (this.seen.size <= this.maxKeys && now - at < this.ttlMs) break;
      this.seen.delete(k);
    }
  }
}
