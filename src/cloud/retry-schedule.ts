/**
 * Storm control's answer to "when should I come back?" for a tunnel upgrade refused with 503
 * (`maxPendingHandshakes` in progress). Pure: the caller passes the time.
 *
 * A random Retry-After of 2–22 s spread a storm, but without regard to how fast the cloud could take
 * it back: a 2,000-connector storm that overflowed the limit for a moment waited up to 37 s when
 * the cloud needed 5, and 10,000 came back ~50 s after the cloud listened where its handshake rate
 * needed ~33 (docs/performance.md). Refused connectors now get appointments instead: whole seconds
 * are filled, from the moment the handshakes already admitted should be done, up to the rate at which
 * the cloud has been completing handshakes while it had more than it could take, so they come back
 * about as fast as it can take them, and few are refused twice.
 *
 * The rate is the mean count of completions in the seconds of the last 10 during which an upgrade
 * was refused (seconds in which the cloud had more than it took: its capacity, whatever the
 * machine). Not the best such second: completions come in bursts (a 10,000-connector storm on the
 * 2-core VM went 656, 198, 207 … 11, 12, 507 a second around a mean of ~260), and appointments at
 * the bursts' rate brought connectors back 2.5 times too fast, 1,300 of them refused 3 to 6 times,
 * each refusal a TLS handshake for nothing. Until 3 such seconds are measured, never below
 * `minPerS` either: the first seconds after a restart are slow (a cold JIT, the state
 * loading), and appointments made from them would hold connectors back long after the cloud got
 * up to speed. Erring high costs a connector that comes back too early a second refusal, with a
 * better appointment; erring low leaves the cloud idle while connectors wait.
 */
export interface RetryScheduleOptions {
  /** The earliest Retry-After, in seconds. */
  minDelayS: number;
  /** The latest; past it, appointments are overbooked at this delay. */
  maxDelayS: number;
  /** Handshakes per second assumed at least until 3 saturated seconds are measured (see above). */
  minPerS: number;
  /** Seconds of history the rate is taken from. */
  windowS?: number;
}

export class RetrySchedule {
  private readonly done = new Map<number, number>();
  private readonly saturated = new Set<number>();
  private readonly booked = new Map<number, number>();
  private prunedAt = 0;
  private readonly windowS: number;

  constructor(private readonly o: RetryScheduleOptions) {
    this.windowS = o.windowS ?? 10;
  }

  /** A handshake that was admitted has finished (welcomed, refused inside the tunnel, or dropped). */
  completed(now: number): void {
    const s = Math.floor(now / 1000);
    this.done.set(s, (this.done.get(s) ?? 0) + 1);
    this.prune(s);
  }

  /** Handshakes per second the cloud has shown it can complete (see the module comment). */
  rate(now: number): number {
    const s = Math.floor(now / 1000);
    let sum = 0;
    let n = 0;
    for (let i = s - this.windowS; i < s; i++) {
      if (!this.saturated.has(i)) continue;
      sum += this.done.get(i) ?? 0;
      n++;
    }
    // From 3 measured seconds on, the measure stands, also below the floor (a slow machine).
    const mean = n > 0 ? Math.floor(sum / n) : 0;
    return Math.max(1, n >= 3 ? mean : Math.max(this.o.minPerS, mean));
  }

  /**
   * An upgrade is refused at `now` with `pending` handshakes in progress: the Retry-After (whole
   * seconds) of the first second, from when those should be done, that has a free appointment.
   */
  refused(now: number, pending: number): number {
    const s = Math.floor(now / 1000);
    this.saturated.add(s);
    this.prune(s);
    const rate = this.rate(now);
    const from = Math.max(this.o.minDelayS, Math.ceil(pending / rate));
    for (let k = from; k <= this.o.maxDelayS; k++) {
      const n = this.booked.get(s + k) ?? 0;
      if (n < rate) {
        this.booked.set(s + k, n + 1);
        return k;
      }
    }
    return this.o.maxDelayS;
  }

  /** Appointments booked for the second `now + k` s falls in (tests, diagnostics). */
  bookedAt(now: number, k: number): number {
    return this.booked.get(Math.floor(now / 1000) + k) ?? 0;
  }

  private prune(s: number): void {
    if (s === this.prunedAt) return;
    this.prunedAt = s;
    for (const k of this.done.keys()) if (k < s - this.windowS) this.done.delete(k);
    for (const k of this.saturated) if (k < s - this.windowS) this.saturated.delete(k);
    for (const k of this.booked.keys()) if (k < s) this.booked.delete(k);
  }
}
