/**
 * Repeated failures said once per episode, not once per event. A UEM that is down failed every
 * relayed call with its own warning: a client retrying wrote gigabytes a day, tripped journald's
 * rate limit (which then dropped the lines that mattered) and pushed the cause out of the status
 * page's recent problems. Per key (a target): the first failure of a kind is logged at once; the
 * same kind again within `windowMs` is counted, and the count goes with the next line logged after
 * the window (or with the recovery); the first success after failures logs one "recovered" line.
 */
import type { Clock } from './clock.js';
import type { Logger } from './log.js';

interface Episode {
  kind: string;
  since: number;
  saidAt: number;
  unsaid: number;
  total: number;
}

export class Episodes {
  private readonly open = new Map<string, Episode>();

  constructor(
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly windowMs = 60_000,
  ) {}

  /** A failure of `kind` for `key`; `message` and `meta` are those of its warning. */
  failed(key: string, kind: string, message: string, meta: Record<string, unknown>): void {
    const now = this.clock.now();
    const e = this.open.get(key);
    if (e && e.kind === kind && now - e.saidAt >= 0 && now - e.saidAt < this.windowMs) {
      e.unsaid++;
      e.total++;
      return;
    }
    const repeated = e && e.kind === kind && e.unsaid > 0 ? { repeated: e.unsaid, overSeconds: Math.round((now - e.saidAt) / 1000) } : {};
    this.logger.warn(message, { ...meta, ...repeated });
    if (e && e.kind === kind) {
      e.saidAt = now;
      e.unsaid = 0;
      e.total++;
    } else this.open.set(key, { kind, since: now, saidAt: now, unsaid: 0, total: 1 });
  }

  /** A success for `key`: ends its episode with one line, if it had one. */
  succeeded(key: string, message: string, meta: Record<string, unknown>): void {
    if (this.open.size === 0) return; // the common case, kept cheap: one check per relayed call
    const e = this.open.get(key);
    if (!e) return;
    this.open.delete(key);
    this.logger.info(message, { ...meta, failures: e.total, lastFailure: e.kind, forSeconds: Math.max(0, Math.round((this.clock.now() - e.since) / 1000)) });
  }
}
