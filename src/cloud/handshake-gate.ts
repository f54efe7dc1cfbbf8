/**
 * Admission before TLS: at most `maxInProgress` TLS handshakes at once; further connections wait,
 * unread, in arrival order, and one that has waited `maxWaitMs` is closed unserved.
 *
 * Why: Node accepts every connection waiting in the kernel's backlog in one go and starts a TLS
 * handshake for each. In a reconnect storm that put thousands of handshakes (~1 ms of CPU each
 * with RSA-2048) into every turn of the event loop, so every connection's next step waited seconds
 * behind all the others: handshakes that the cloud had admitted timed out on the connector's side
 * (10 s) and were made again, and the refusals of storm control (tunnel-server.ts) came only after
 * their own TLS handshake. With the gate a turn holds at most `maxInProgress` handshakes' work, the
 * handshakes the cloud starts finish, and a connection that cannot be served in time costs an
 * accept and a close instead of a TLS handshake.
 *
 * A handshake holds its slot until it is secure, its socket closes, or `slotMs` passes; then it goes
 * on outside the count (so after an event-loop turn longer than `slotMs` the limit is briefly
 * exceeded), and clients that open connections and send nothing hold a slot `slotMs` each. A
 * connection that waits is closed once a slot frees after it has waited `maxWaitMs`: at most
 * `maxWaitMs` + `slotMs`.
 *
 * The gate sits in front of the whole listener, so in a storm relay API clients queue with the
 * connectors: what they wait for is the CPU the storm is using anyway.
 */
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Clock, TimerHandle } from '../common/clock.js';

export interface HandshakeGateOptions {
  maxInProgress: number;
  /** Waiting longer than this, a connection is closed: its client would give up before we were done. */
  maxWaitMs: number;
  /** Longest a handshake holds its slot. */
  slotMs: number;
  /** Connections waiting beyond this many are closed at once. */
  maxQueued: number;
  clock: Clock;
  /** Told of connections closed unserved, at most every `reportMs` (a storm closes thousands). */
  report?: (dropped: number, stats: HandshakeGateStats) => void;
  reportMs?: number;
}

export interface HandshakeGateStats {
  inProgress: number;
  queued: number;
  /** Closed unserved since the start: waited `maxWaitMs`, or arrived to a full queue. */
  dropped: number;
  /** Slots freed by `slotMs` rather than by the handshake ending. */
  expired: number;
}

/** What the gate needs of a connection: start its handshake, close it, hear that it closed. */
export interface GatedConnection {
  destroy(): void;
  once(event: 'close', fn: () => void): unknown;
  off(event: 'close', fn: () => void): unknown;
}

interface Waiting<C> {
  conn: C;
  since: number;
}

/** The accounting, without Node's TLS server: `start` begins a handshake, `done(conn)` ends one. */
export class HandshakeGate<C extends GatedConnection = GatedConnection> {
  private inProgress = 0;
  private readonly slots = new Map<C, () => void>();
  // A queue as an array with a moving head: shift() on 10,000 waiting sockets would be O(n) each.
  private queue: Array<Waiting<C> | undefined> = [];
  private head = 0;
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
    return { inProgress: this.inProgress, queued: this.queue.length - this.head, dropped: this.dropped, expired: this.expired };
  }

  /** A connection was accepted (and is not being read). */
  arrived(conn: C): void {
    if (this.closed) return conn.destroy();
    if (this.inProgress < this.o.maxInProgress && this.head === this.queue.length) return this.admit(conn);
    if (this.queue.length - this.head >= this.o.maxQueued) return this.drop(conn);
    this.queue.push({ conn, since: this.o.clock.now() });
  }

  /**
   * The listener is closing: waiting connections are closed (a paused socket would otherwise keep
   * the server open until its client gave up), and later arrivals too.
   */
  close(): void {
    this.closed = true;
    for (let i = this.head; i < this.queue.length; i++) this.queue[i]!.conn.destroy();
    this.queue = [];
    this.head = 0;
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

  private pump(): void {
    const now = this.o.clock.now();
    while (!this.closed && this.inProgress < this.o.maxInProgress && this.head < this.queue.length) {
      const w = this.queue[this.head]!;
      this.queue[this.head++] = undefined;
      if (now - w.since > this.o.maxWaitMs) this.drop(w.conn);
      else this.admit(w.conn);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
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
