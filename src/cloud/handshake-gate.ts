/**
 * Admission before TLS: at most `maxInProgress` TLS handshakes at once; further connections wait,
 * unread, and one that has waited `maxWaitMs` is closed unserved. Waiting connections are served
 * fairly by source: one FIFO per source address (an IPv6 /64, since one host commonly holds a whole
 * /64), taken round-robin, so a source that opens thousands of connections delays each other source
 * by one of its own at a time, not by all of them.
 *
 * Why a gate: Node accepts every connection waiting in the kernel's backlog in one go and starts a
 * TLS handshake for each. In a reconnect storm that put thousands of handshakes (~1 ms of CPU each
 * with RSA-2048) into every turn of the event loop, so every connection's next step waited seconds
 * behind all the others: handshakes that the cloud had admitted timed out on the connector's side
 * (10 s) and were made again, and the refusals of storm control (tunnel-server.ts) came only after
 * their own TLS handshake. With the gate a turn holds at most `maxInProgress` handshakes' work, the
 * handshakes the cloud starts finish, and a connection that cannot be served in time costs an
 * accept and a close instead of a TLS handshake.
 *
 * Why by source: a gate in arrival order let ~500 empty connections a second from one address keep
 * every slot busy, and the connectors queued behind them timed out. Behind a TCP balancer every
 * connection has the balancer's address, and the gate is FIFO again (the balancer's own limits
 * apply there). A full queue drops from the source with the most waiting, not the newcomer.
 *
 * A handshake holds its slot until it is secure, its socket closes, or `slotMs` passes; then it goes
 * on outside the count (so after an event-loop turn longer than `slotMs` the limit is briefly
 * exceeded), and clients that open connections and send nothing hold a slot `slotMs` each. A
 * connection that has waited `maxWaitMs` is closed when its turn comes or by a sweep once a
 * second, whichever is first: it waits at most about `maxWaitMs` + 1 s.
 *
 * The gate sits in front of the whole listener, so in a storm relay API clients queue with the
 * connectors: what they wait for is the CPU the storm is using anyway.
 */
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Clock, TimerHandle } from '../common/clock.js';
import { FairQueue, sourceOf } from './fair-queue.js';

export interface HandshakeGateOptions {
  maxInProgress: number;
  /** Waiting longer than this, a connection is closed: its client would give up before we were done. */
  maxWaitMs: number;
  /** Longest a handshake holds its slot. */
  slotMs: number;
  /** Connections waiting beyond this many: the source with the most waiting loses its oldest. */
  maxQueued: number;
  clock: Clock;
  /** Told of connections closed unserved, at most every `reportMs` (a storm closes thousands). */
  report?: (dropped: number, stats: HandshakeGateStats) => void;
  reportMs?: number;
}

export interface HandshakeGateStats {
  inProgress: number;
  queued: number;
  /** Sources with connections waiting. */
  sources: number;
  /** The source with the most connections waiting, and how many (when any wait). */
  busiest?: { source: string; queued: number };
  /** Closed unserved since the start: waited `maxWaitMs`, or pushed out of a full queue. */
  dropped: number;
  /** Slots freed by `slotMs` rather than by the handshake ending. */
  expired: number;
}

/** What the gate needs of a connection: start its handshake, close it, hear that it closed. */
export interface GatedConnection {
  /** The peer's address; connections without one share a source. */
  readonly remoteAddress?: string | undefined;
  /** Closed already (by this process). */
  readonly destroyed?: boolean;
  destroy(): void;
  once(event: 'close', fn: () => void): unknown;
  off(event: 'close', fn: () => void): unknown;
}

interface Waiting<C> {
  conn: C;
  since: number;
}

/** How often waiting connections past `maxWaitMs` are looked for (besides when their turn comes). */
const SWEEP_MS = 1000;

/** The accounting, without Node's TLS server: `start` begins a handshake, `done(conn)` ends one. */
export class HandshakeGate<C extends GatedConnection = GatedConnection> {
  private inProgress = 0;
  private readonly slots = new Map<C, () => void>();
  private readonly waiting = new FairQueue<Waiting<C>>();
  private sweepTimer: TimerHandle | undefined;
  private dropped = 0;
  private expired = 0;
  private reported = 0;
  private reportTimer: TimerHandle | undefined;
  private closed = false;

  constructor(
    private readonly o: HandshakeGateOptions,
    private readonly start: (conn: C) => void,
  ) {}

  get stats(): HandshakeGateStats {
    const b = this.waiting.busiest();
    return {
      inProgress: this.inProgress,
      queued: this.waiting.size,
      sources: this.waiting.keys,
      ...(b ? { busiest: { source: b.key, queued: b.count } } : {}),
      dropped: this.dropped,
      expired: this.expired,
    };
  }

  /** A connection was accepted (and is not being read). */
  arrived(conn: C): void {
    if (this.closed) return conn.destroy();
    if (this.inProgress < this.o.maxInProgress && this.waiting.size === 0) return this.admit(conn);
    const key = sourceOf(conn.remoteAddress);
    if (this.waiting.size >= this.o.maxQueued) {
      // Longest queue drop: the busiest source gives up its oldest, which would time out first,
      // unless taking the newcomer would leave the newcomer's source no shorter than it; then the
      // newcomer goes.
      const b = this.waiting.busiest();
      if (!b || b.count <= this.waiting.lengthOf(key) + 1) return this.drop(conn);
      this.drop(this.waiting.shiftBusiest()!.conn);
    }
    this.waiting.push(key, { conn, since: this.o.clock.now() });
    this.scheduleSweep();
  }

  /**
   * The listener is closing: waiting connections are closed (a paused socket would otherwise keep
   * the server open until its client gave up), and later arrivals too.
   */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.clear()) w.conn.destroy();
    this.o.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** The connection's handshake is over (secure or failed); frees its slot if it still holds one. */
  done(conn: C): void {
    this.slots.get(conn)?.();
  }

  private admit(conn: C): void {
    this.inProgress++;
    let timer: TimerHandle | undefined;
    const release = (expired: boolean): void => {
      if (this.slots.get(conn) !== onDone) return;
      this.slots.delete(conn);
      this.o.clock.clearTimeout(timer);
      conn.off('close', onDone);
      if (expired) this.expired++;
      this.inProgress--;
      this.pump();
    };
    const onDone = (): void => release(false);
    this.slots.set(conn, onDone);
    conn.once('close', onDone);
    // The handshake goes on outside the count; the server's handshakeTimeout ends it if it must.
    // (Closing connections that had sent nothing by then was tried: a client whose event loop is
    // busy sends its ClientHello seconds after its connect, and 10,000-connector storms got slower.)
    timer = this.o.clock.setTimeout(() => release(true), this.o.slotMs);
    (timer as { unref?: () => void }).unref?.();
    this.start(conn);
  }

  private drop(conn: C): void {
    this.dropped++;
    conn.destroy();
    if (!this.o.report || this.reportTimer !== undefined) return;
    this.reportTimer = this.o.clock.setTimeout(() => {
      this.reportTimer = undefined;
      const n = this.dropped - this.reported;
      this.reported = this.dropped;
      this.o.report!(n, this.stats);
    }, this.o.reportMs ?? 5000);
    (this.reportTimer as { unref?: () => void }).unref?.();
  }

  private isStale(w: Waiting<C>, now: number): boolean {
    return now - w.since > this.o.maxWaitMs;
  }

  /** Fills free slots, one waiting connection per source in turn. */
  private pump(): void {
    const now = this.o.clock.now();
    while (!this.closed && this.inProgress < this.o.maxInProgress && this.waiting.size > 0) {
      const w = this.waiting.shift()!;
      // Destroyed while it waited (its 'close' has been and gone: a slot would wait for slotMs).
      if (w.conn.destroyed) continue;
      if (this.isStale(w, now)) this.drop(w.conn);
      else this.admit(w.conn);
    }
  }

  /**
   * While connections wait, those past `maxWaitMs` are closed every SWEEP_MS, whichever source they
   * belong to: with sources served in turn, a source's own turn can come later than that.
   */
  private scheduleSweep(): void {
    if (this.sweepTimer !== undefined || this.closed) return;
    this.sweepTimer = this.o.clock.setTimeout(() => {
      this.sweepTimer = undefined;
      const now = this.o.clock.now();
      for (const w of this.waiting.pruneFronts((x) => this.isStale(x, now))) this.drop(w.conn);
      if (this.waiting.size > 0) this.scheduleSweep();
    }, SWEEP_MS);
    (this.sweepTimer as { unref?: () => void }).unref?.();
  }
}

/**
 * Puts a gate in front of a TLS server's handshakes. The server must have been created with
 * `pauseOnConnect: true`: a waiting socket must not be read, or the bytes of its ClientHello would be
 * consumed before the TLS layer takes the socket over.
 */
export function gateTlsHandshakes(server: TlsServer, o: HandshakeGateOptions): HandshakeGate<Socket> {
  if (!(server as unknown as { pauseOnConnect?: boolean }).pauseOnConnect) throw new Error('gateTlsHandshakes: the server must be created with pauseOnConnect: true');
  // Node's TLS server starts a handshake from its own 'connection' listener; the gate calls it later.
  const listeners = server.listeners('connection') as Array<(this: TlsServer, s: Socket) => void>;
  const tls = listeners.find((f) => f.name === 'tlsConnectionListener');
  if (!tls || listeners.length !== 1) throw new Error("gateTlsHandshakes: cannot find the TLS server's connection listener (a Node version this was not written for)");
  server.removeListener('connection', tls);
  const gate = new HandshakeGate<Socket>(o, (s) => tls.call(server, s));
  server.on('connection', (s: Socket) => gate.arrived(s));
  // `_parent` is the socket the TLS socket wraps (Node's own name for it since the TLS layer began);
  // without it the slot is freed when the socket closes or by `slotMs`.
  server.on('secureConnection', (t: TLSSocket) => {
    const raw = (t as unknown as { _parent?: Socket })._parent;
    if (raw) gate.done(raw);
  });
  return gate;
}
