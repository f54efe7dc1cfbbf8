/**
 * Writes what the cloud learns about connectors while they connect (last seen, hostname, version,
 * targets) to the state file in batches: a reconnect storm of thousands of connectors must not turn
 * into thousands of file rewrites.
 */
import type { Clock, TimerHandle } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import type { CloudStore, ConnectorRecord } from './state.js';

export type PresenceFields = Partial<Pick<ConnectorRecord, 'lastSeen' | 'hostname' | 'version' | 'targets' | 'managedTargets'>>;

export class PresenceBook {
  private pending = new Map<string, PresenceFields>();
  private timer: TimerHandle | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly store: CloudStore,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly flushMs = 5000,
  ) {}

  note(connectorId: string, fields: PresenceFields): void {
    this.pending.set(connectorId, { ...this.pending.get(connectorId), ...fields });
    this.timer ??= this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.flushMs);
  }

  /** What is noted but not yet written (so API answers are current before the flush). */
  peek(connectorId: string): PresenceFields | undefined {
    return this.pending.get(connectorId);
  }

  async flush(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
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
      })
      .finally(() => {
        this.flushing = undefined;
      });
    await this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
