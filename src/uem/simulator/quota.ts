/** Request quotas for simulated UEM APIs (vendor-neutral: Hexnode's 30 calls/min fits too). */
import type { Response } from 'express';

/**
 * A fixed window of `windowMs` starting with the first request after the previous one ended, and the
 * x-ratelimit-* headers that describe it. With `enforce` false it only counts (Workspace ONE advertises
 * a daily limit the simulator does not enforce by default); with it true, take() refuses beyond `limit`.
 */
export class QuotaWindow {
  private start = Number.NEGATIVE_INFINITY;
  private used = 0;
  constructor(
    private readonly now: () => number,
    readonly limit: number,
    private readonly windowMs: number,
    private readonly enforce: boolean,
  ) {}
  private roll(): void {
    const now = this.now();
    if (now >= this.start + this.windowMs) {
      this.start = now;
      this.used = 0;
    }
  }
  /** Counts one request; false when it is over an enforced quota (and then not counted). */
  take(): boolean {
    this.roll();
    if (this.enforce && this.used >= this.limit) return false;
    this.used++;
    return true;
  }
  secondsToReset(): number {
    return Math.max(1, Math.ceil((this.start + this.windowMs - this.now()) / 1000));
  }
  setHeaders(res: Response): void {
    this.roll();
    res.setHeader('x-ratelimit-limit', String(this.limit));
    res.setHeader('x-ratelimit-remaining', String(Math.max(0, this.limit - this.used)));
    res.setHeader('x-ratelimit-reset', String(Math.ceil((this.start + this.windowMs) / 1000)));
  }
}
