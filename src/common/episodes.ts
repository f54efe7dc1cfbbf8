/**
 * Repeated failures said once per episode, not once per event. A UEM that is down failed every
 * relayed call with its own warning: a client retrying wrote gigabytes a day, tripped journald's
 * rate limit (which then dropped the lines that mattered) and pushed the cause out of the status
 * page's recent problems. Per key (a target) and kind: the first failure is logged at once; the
 * same again within `windowMs` is counted, and the count goes with the next line logged after the
 * window; the first success after failures logs one "recovered" line with the total.
 */
import type { Clock } from './clock.js';
import type { Logger } from './log.js';

interface Episode {
  since: number;
  saidAt: number;
  unsaid: number;
  total: number;
}

export class Episodes {
  /** Per key, its open episodes by kind: a UEM failing two ways in turn (a dead node behind its
   * balancer) is two episodes, each counted, not a line per request. */
  private readonly open = new Map<string, Map<string, Episode>>();

  constructor(
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly windowMs = 60_000,
  ) {}

  /** A failure of `kind` for `key`; `message` and `meta` are those of its warning. */
  failed(key: string, kind: string, message: string, meta: Record<string, unknown>): void {
    const now = this.clock.now();
    let kinds = this.open.get(key);
    if (!kinds) this.open.set(key, (kinds = new Map()));
    const e = kinds.get(kind);
    if (e && now - e.saidAt >= 0 && now - e.saidAt < this.windowMs) {
      e.unsaid++;
      e.total++;
      return;
    }
    const repeated = e && e.unsaid > 0 ? { repeated: e.unsaid, overSeconds: Math.round((now - e.saidAt) / 1000) } : {};
    this.logger.warn(message, { ...meta, ...repeated });
    if (e) {
      e.saidAt = now;
      e.unsaid = 0;
      e.total++;
    } else kinds.set(kind, { since: now, saidAt: now, unsaid: 0, total: 1 });
  }

  /** A success for `key`: ends its episodes with one line, if it had any. */
  succeeded(key: string, message: string, meta: Record<string, unknown>): void {
    if (this.open.size === 0) return; // the common case, kept cheap: one check per relayed call
    const kinds = this.open.get(key);
    if (!kinds) return;
    this.open.delete(key);
    let failures = 0;
    let since = Infinity;
    for (const e of kinds.values()) {
      failures += e.total;
      since = Math.min(since, e.since);
    }
    this.logger.info(message, { ...meta, failures, failedWith: [...kinds.keys()], forSeconds: Math.max(0, Math.round((this.clock.now() - since) / 1000)) });
  }
}
