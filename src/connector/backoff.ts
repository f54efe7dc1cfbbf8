/**
 * Reconnect delays: exponential backoff with full jitter (AWS architecture blog's "full jitter":
 * delay = random(0, min(cap, base * 2^attempt))), reset once a connection has stayed up for a
 * stable period. Two refinements:
 *
 * - The ceiling never exceeds how long the outage has lasted so far. A cloud deploy that takes 4 s
 *   thus costs connectors at most ~4 s more, instead of up to a minute, while a long outage still
 *   backs off to the cap. Jitter still spreads a reconnect storm. Sessions that end within
 *   `minSessionMs` (2 s) do not end the outage: it runs on from the failure before them.
 * - The cloud can ask for more (storm control, GOAWAY retryAfterMs, HTTP Retry-After); its wish is a
 *   floor, with up to a second (or half the wish, if shorter) of jitter on top: the cloud's storm
 *   control already spreads connectors over whole seconds, at the rate it can take them back
 *   (cloud/retry-schedule.ts), and the jitter spreads each second's share over that second. (It
 *   was up to half the wish: a connector told 30 s came back within 30–45 s, past its appointment.)
 */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** A connection that lasted this long resets the attempt count. */
  stableMs: number;
  /** A session shorter than this does not end the outage (default 2 s: one that carried traffic counts). */
  minSessionMs?: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private outageStart: number | undefined;
  /** The clock as `next` last read it: a reading before it means the clock was stepped back. */
  private lastNow: number | undefined;
  private readonly random: () => number;

  constructor(private readonly o: BackoffOptions) {
    this.random = o.random ?? Math.random;
  }

  get attempts(): number {
    return this.attempt;
  }

  /**
   * A session was established. The outage is not over yet: a session that ends within
   * `minSessionMs` (a cloud or proxy that drops every tunnel a moment after it opens) is part of
   * it, else every connector would redial within `baseMs`, forever, all at once.
   */
  connected(): void {}

  /** The session that began at `connectedAt` ended at `now`. */
  disconnected(now: number, connectedAt: number): void {
    const lasted = now - connectedAt;
    if (lasted >= this.o.stableMs) this.attempt = 0;
    if (lasted >= (this.o.minSessionMs ?? 2000) || this.outageStart === undefined) this.outageStart = now;
  }

  /** Delay before the next dial, after a failure (or a disconnect) at `now`. */
  next(now: number, floorMs = 0): number {
    // A clock stepped back during an outage (NTP) made it look seconds long: the ceiling fell to
    // the base delay, a redial a second until the clock caught up. The outage keeps its length.
    if (this.outageStart !== undefined && this.lastNow !== undefined && now < this.lastNow) this.outageStart -= this.lastNow - now;
    this.lastNow = now;
    this.outageStart ??= now;
    const exp = Math.min(this.o.capMs, this.o.baseMs * 2 ** Math.min(this.attempt, 30));
    const outage = Math.max(this.o.baseMs, now - this.outageStart);
    this.attempt++;
    const ceiling = Math.min(exp, outage);
    const jittered = this.random() * ceiling;
    if (floorMs > 0) return Math.min(floorMs + this.random() * Math.min(floorMs * 0.5, 1000), 3_600_000);
    return Math.round(jittered);
  }
}
