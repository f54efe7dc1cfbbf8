/**
 * Who is connected: the live tunnel sessions of this cloud process. Kept behind an interface because
 * a later deployment runs several relay processes behind a load balancer and shares presence and
 * routing through Redis; only the in-memory implementation exists today.
 */
import type { GoAwayCode } from '../protocol/codes.js';
import type { MuxSession } from '../protocol/session.js';

export interface LiveSession {
  connectorId: string;
  tenant: string;
  group: string;
  sessionId: string;
  /** Increases with every new session of the same connector; a higher epoch replaces a lower one. */
  epoch: number;
  connectedAt: number;
  remoteAddress: string;
  version: string;
  hostname: string;
  targets: string[];
  session: MuxSession;
  /** Set once this session has renewed the connector's certificate (one renewal per session). */
  renewed?: boolean;
  /**
   * Fingerprint of the certificate this session authenticated with: the one the connector holds.
   * A renewal keeps it as the previous certificate (the grace), so that a connector which never
   * stored an earlier renewal's answer still has a key the cloud accepts.
   */
  authenticatedWith?: string;
}

export interface SessionRegistry {
  /** Assigns the next epoch for a connector (strictly greater than any before, across restarts). */
  nextEpoch(connectorId: string, now: number): number;
  /** Registers a session; returns the session it replaces, which the caller must close. */
  add(s: LiveSession): LiveSession | undefined;
  /** Removes `s` if it is still the current session of its connector. */
  remove(s: LiveSession): boolean;
  get(connectorId: string): LiveSession | undefined;
  list(filter?: { tenant?: string }): LiveSession[];
  /** Ends a connector's session wherever it lives (revocation). Returns whether one was found. */
  disconnect(connectorId: string, code: GoAwayCode, message: string): boolean;
  readonly size: number;
}

export class InMemoryRegistry implements SessionRegistry {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly byTenant = new Map<string, Set<LiveSession>>();
  private readonly epochs = new Map<string, number>();

  private index(s: LiveSession): void {
    let set = this.byTenant.get(s.tenant);
    if (!set) this.byTenant.set(s.tenant, (set = new Set()));
    set.add(s);
  }

  private unindex(s: LiveSession): void {
    const set = this.byTenant.get(s.tenant);
    set?.delete(s);
    if (set?.size === 0) this.byTenant.delete(s.tenant);
  }

  nextEpoch(connectorId: string, now: number): number {
    // Time-based so that epochs keep increasing across a cloud restart.
    const e = Math.max((this.epochs.get(connectorId) ?? 0) + 1, now);
    this.epochs.set(connectorId, e);
    return e;
  }

  add(s: LiveSession): LiveSession | undefined {
    const old = this.sessions.get(s.connectorId);
    if (old && old.epoch > s.epoch) throw new Error(`internal: stale epoch ${s.epoch} < ${old.epoch}`);
    if (old) this.unindex(old);
    this.sessions.set(s.connectorId, s);
    this.index(s);
    return old;
  }

  remove(s: LiveSession): boolean {
    if (this.sessions.get(s.connectorId) !== s) return false;
    this.sessions.delete(s.connectorId);
    this.unindex(s);
    return true;
  }

  get(connectorId: string): LiveSession | undefined {
    return this.sessions.get(connectorId);
  }

  list(filter: { tenant?: string } = {}): LiveSession[] {
    if (filter.tenant !== undefined) return [...(this.byTenant.get(filter.tenant) ?? [])];
    return [...this.sessions.values()];
  }

  disconnect(connectorId: string, code: GoAwayCode, message: string): boolean {
    const s = this.sessions.get(connectorId);
    if (!s) return false;
    this.sessions.delete(connectorId);
    this.unindex(s);
    s.session.fail(code, message);
    return true;
  }

  get size(): number {
    return this.sessions.size;
  }
}
