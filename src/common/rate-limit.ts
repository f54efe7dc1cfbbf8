/**
 * Counts failures (wrong pairing tokens, wrong admin tokens) per key (client address, tenant) in a
 * fixed window; past the limit the key is refused until its window ends. Memory is bounded: old
 * windows are swept, and when the table is full the oldest entries go first.
 */
import { systemClock, type Clock } from '../common/clock.js';

interface Entry {
  windowStart: number;
  failures: number;
}

export class FailureLimiter {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxFailures: number,
    private readonly windowMs = 60_000,
    private readonly clock: Clock = systemClock,
    private readonly maxKeys = 100_000,
  ) {}

  /** Milliseconds until `key` may try again, or 0 when it may now. */
  retryAfter(key: string): number {
    const e = this.entries.get(key);
    if (!e) return 0;
    const now = this.clock.now();
    const end = e.windowStart + this.windowMs;
    if (now >= end) {
      this.entries.delete(key);
      return 0;
    }
    return e.failures >= this.maxFailures ? end - now : 0;
  }

  fail(key: string): void {
    const now = this.clock.now();
    let e = this.entries.get(key);
    if (!e || now >= e.windowStart + this.windowMs) {
      if (this.entries.size >= this.maxKeys) this.sweep(now);
      e = { windowStart: now, failures: 0 };
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    e.failures++;
  }

  private sweep(now: number): void {
    for (const [k, e] of this.entries) if (now >= e.windowStart + this.windowMs) this.entries.delete(k);
    // Still full: drop the oldest (Map iterates in insertion order).
    for (const k of this.entries.keys()) {
      if (this.entries.size < this.maxKeys) break;
      this.entries.delete(k);
    }
  }
}
