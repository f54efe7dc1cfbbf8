/**
 * Writes what the cloud learns about connectors while they connect (last seen, hostname, version,
 * targets) to the state file in batches: a reconnect storm of thousands of connectors must not turn
 * into thousands of file rewrites.
 */
import type { Clock, TimerHandle } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import type { CloudStore, ConnectorRecord } from './state.js';

export type PresenceFields = Partial<Pick<ConnectorRecord, 'lastSeen' | 'hostname' | 'version' | 'targets' | 'managedTargets'>>;

const SOON_MS = 100;

export class PresenceBook {
  private pending = new Map<string, PresenceFields>();
  /**
   * The batch being written right now. Until the write lands, the file still holds the old values:
   * peek() must keep answering from the batch, or a reader in that window (the relay deciding
   * between 404 unknown_target and 503 no_connector) sees a connector's targets vanish for a moment
   * (found by the fault suite: a few 404s for a known target while a connector reconnected).
   */
  private writing: Map<string, PresenceFields> | undefined;
  private timer: TimerHandle | undefined;
  private timerSoon = false;
  private flushing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly store: CloudStore,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly flushMs = 5000,
  ) {}

  /**
   * `soon`: a change the relay's answers depend on (a connector's target list changed, e.g. at its
   * first connection). It is written within 100 ms rather than at the next batch: a cloud killed
   * in between would otherwise restart not knowing the targets, and answer 404 unknown_target
   * (which clients treat as permanent) instead of 503 until the connector is back. Reconnect storms
   * bring unchanged lists, so they still batch.
   */
  note(connectorId: string, fields: PresenceFields, opts: { soon?: boolean } = {}): void {
    this.pending.set(connectorId, { ...this.pending.get(connectorId), ...fields });
    if (opts.soon && !this.timerSoon && this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.timer === undefined) {
      this.timerSoon = opts.soon === true;
      this.timer = this.clock.setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, opts.soon ? SOON_MS : this.flushMs);
    }
  }

  /** What is noted but not yet written (so API answers are current before the flush). */
  peek(connectorId: string): PresenceFields | undefined {
    const w = this.writing?.get(connectorId);
    const p = this.pending.get(connectorId);
    return w && p ? { ...w, ...p } : (p ?? w);
  }

  async flush(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.writing = batch;
    this.flushing = this.store
      .update((s) => {
        for (const [id, f] of batch) {
          const c = s.connectors[id];
          if (c) Object.assign(c, f);
        }
      })
      .catch((err: unknown) => {
        // Presence is advisory; keep the notes for the next attempt rather than lose them.
        for (const [id, f] of batch) this.pending.set(id, { ...f, ...this.pending.get(id) });
        this.logger.warn('could not record connector presence', { err });
        // Nothing else may come to flush them (a changed target list is noted once): try again at
        // the next batch's time, or a restart would not know the targets (404 instead of 503).
        if (!this.stopped && this.timer === undefined) {
          this.timerSoon = false;
          this.timer = this.clock.setTimeout(() => {
            this.timer = undefined;
            void this.flush();
          }, this.flushMs);
        }
      })
      .finally(() => {
        this.writing = undefined;
        this.flushing = undefined;
      });
    await this.flushing;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
