/**
 * Counts failures (wrong pairing tokens, wrong admin tokens) per key (client address, tenant) in a
 * fixed window; past the limit the key is refused until its window ends. Memory is bounded: old
 * windows are swept, and when the table is full the oldest entries go first.
 */
import { isIPv4 } from 'node:net';
import { systemClock, type Clock } from '../common/clock.js';

interface Entry {
  windowStart: number;
  failures: number;
}

export class FailureLimiter {
  private readonly entries = new Map<string, Entry>();

  /** Whether `e`'s window is over at `now`; one that starts after `now` is over too (a clock stepped back kept a one-minute lockout for the size of the step). */
  private over(e: Entry, now: number): boolean {
    return now >= e.windowStart + this.windowMs || now < e.windowStart;
  }

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
    if (this.over(e, now)) {
      this.entries.delete(key);
      return 0;
    }
    return e.failures >= this.maxFailures ? end - now : 0;
  }

  fail(key: string): void {
    const now = this.clock.now();
    let e = this.entries.get(key);
    if (!e || this.over(e, now)) {
      if (this.entries.size >= this.maxKeys) this.sweep(now);
      e = { windowStart: now, failures: 0 };
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    e.failures++;
  }

  /**
   * Takes back one failure: an attempt is counted when it starts (so that concurrent attempts are
   * all judged against it, not against the count before any of them failed) and forgiven if it
   * turns out not to be one.
   */
  forgive(key: string): void {
    const e = this.entries.get(key);
    if (e && e.failures > 0) e.failures--;
  }

  private sweep(now: number): void {
    for (const [k, e] of this.entries) if (this.over(e, now)) this.entries.delete(k);
    // Still full: drop the oldest (Map iterates in insertion order).
    for (const k of this.entries.keys()) {
      if (this.entries.size < this.maxKeys) break;
      this.entries.delete(k);
    }
  }
}

/**
 * The source a connection is counted under: an IPv4 address (also when written as IPv4-mapped
 * IPv6), or the /64 of an IPv6 address. Limits keyed by a whole IPv6 address give a client that
 * rotates addresses inside its own /64 (every host has one) a fresh budget each time.
 */
export function sourceOf(address: string | undefined): string {
  if (!address) return '';
  if (isIPv4(address)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  const zone = address.indexOf('%');
  const groups = expandIPv6(zone < 0 ? address : address.slice(0, zone));
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : address;
}

/** The eight 16-bit groups of an IPv6 address, without leading zeros; undefined if it is not one. */
function expandIPv6(a: string): string[] | undefined {
  const halves = a.toLowerCase().split('::');
  if (halves.length > 2) return undefined;
  const part = (h: string | undefined): string[] => (h ? h.split(':') : []);
  const head = part(halves[0]);
  const tail = part(halves[1]);
  // An embedded IPv4 tail (::1.2.3.4) is two groups.
  const last = tail.length ? tail : head;
  if (last.length && isIPv4(last[last.length - 1]!)) {
    const [b0, b1, b2, b3] = last.pop()!.split('.').map(Number) as [number, number, number, number];
    last.push(((b0 << 8) | b1).toString(16), ((b2 << 8) | b3).toString(16));
  }
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => parseInt(g, 16).toString(16));
}
