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
 * connection that waits is closed once its turn comes after it has waited `maxWaitMs`: at most
 * `maxWaitMs` + `slotMs`.
 *
 * The gate sits in front of the whole listener, so in a storm relay API clients queue with the
 * connectors: what they wait for is the CPU the storm is using anyway.
 */
import { isIPv4 } from 'node:net';
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Clock, TimerHandle } from '../common/clock.js';

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
  destroy(): void;
  once(event: 'close', fn: () => void): unknown;
  off(event: 'close', fn: () => void): unknown;
}

/**
 * The source a connection is counted under: an IPv4 address (also when written as IPv4-mapped
 * IPv6), or the /64 of an IPv6 address.
 */
export function sourceOf(address: string | undefined): string {
  if (!address) return '';
  if (isIPv4(address)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  const zone = address.indexOf('%');
  const groups = expandIPv6(zone < 0 ? address : address.slice(0, zone));
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : address;
}

/** The eight 16-bit groups of an IPv6 address, without leading zeros; undefined if it is not one. */
function expandIPv6(a: string): string[] | undefined {
  const halves = a.toLowerCase().split('::');
  if (halves.length > 2) return undefined;
  const part = (h: string | undefined): string[] => (h ? h.split(':') : []);
  const head = part(halves[0]);
  const tail = part(halves[1]);
  // An embedded IPv4 tail (::1.2.3.4) is two groups.
  const last = tail.length ? tail : head;
  if (last.length && isIPv4(last[last.length - 1]!)) {
    const [b0, b1, b2, b3] = last.pop()!.split('.').map(Number) as [number, number, number, number];
    last.push(((b0 << 8) | b1).toString(16), ((b2 << 8) | b3).toString(16));
  }
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => parseInt(g, 16).toString(16));
}

/**
 * A FIFO as an array with a moving head: shift() on 10,000 waiting sockets would be O(n) each. The
 * array is compacted when the consumed part is both large and most of it.
 */
class Fifo<T> {
  private items: Array<T | undefined> = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(x: T): void {
    this.items.push(x);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }
}

interface Waiting<C> {
  conn: C;
  since: number;
}

/** One source's waiting connections. */
interface Source<C> {
  key: string;
  waiting: Fifo<Waiting<C>>;
}

/** The accounting, without Node's TLS server: `start` begins a handshake, `done(conn)` ends one. */
export class HandshakeGate<C extends GatedConnection = GatedConnection> {
  private inProgress = 0;
  private queued = 0;
  private readonly slots = new Map<C, () => void>();
  /** Sources with connections waiting, and the order they are served in (each at most once). */
  private readonly sources = new Map<string, Source<C>>();
  private readonly turns = new Fifo<Source<C>>();
  /**
   * The source with the most waiting as far as pushes tell: a source only grows by arriving, so the
   * one that last outgrew it is it, or was until it was served (then it is merely a busy one).
   */
  private busiest: Source<C> | undefined;
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
    const b = this.liveBusiest();
    return {
      inProgress: this.inProgress,
      queued: this.queued,
      sources: this.sources.size,
      ...(b ? { busiest: { source: b.key, queued: b.waiting.length } } : {}),
      dropped: this.dropped,
      expired: this.expired,
    };
  }

  /** A connection was accepted (and is not being read). */
  arrived(conn: C): void {
    if (this.closed) return conn.destroy();
    if (this.inProgress < this.o.maxInProgress && this.queued === 0) return this.admit(conn);
    const key = sourceOf(conn.remoteAddress);
    let src = this.sources.get(key);
    if (this.queued >= this.o.maxQueued) {
      // Longest queue drop: the busiest source (as far as we know) gives up its oldest, which would
      // time out first, unless taking the newcomer would leave the newcomer's source no shorter
      // than it; then the newcomer goes. (So a source emptied here never happens: the busiest
      // keeps at least one.)
      const b = this.liveBusiest();
      if (!b || b.waiting.length <= (src?.waiting.length ?? 0) + 1) return this.drop(conn);
      this.drop(b.waiting.shift()!.conn);
      this.queued--;
    }
    if (!src) {
      src = { key, waiting: new Fifo() };
      this.sources.set(key, src);
      this.turns.push(src);
    }
    src.waiting.push({ conn, since: this.o.clock.now() });
    this.queued++;
    const b = this.liveBusiest();
    if (!b || src.waiting.length > b.waiting.length) this.busiest = src;
  }

  /** The busiest source, unless it has since been served empty. */
  private liveBusiest(): Source<C> | undefined {
    const b = this.busiest;
    return b && this.sources.get(b.key) === b ? b : undefined;
  }

  /**
   * The listener is closing: waiting connections are closed (a paused socket would otherwise keep
   * the server open until its client gave up), and later arrivals too.
   */
  close(): void {
    this.closed = true;
    for (const s of this.sources.values()) for (const w of s.waiting) w.conn.destroy();
    this.sources.clear();
    while (this.turns.shift());
    this.queued = 0;
    this.busiest = undefined;
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

  /** Fills free slots, one waiting connection per source in turn. */
  private pump(): void {
    const now = this.o.clock.now();
    while (!this.closed && this.inProgress < this.o.maxInProgress && this.queued > 0) {
      const src = this.turns.shift()!;
      const w = src.waiting.shift()!;
      this.queued--;
      if (src.waiting.length > 0) this.turns.push(src);
      else this.sources.delete(src.key);
      if (now - w.since > this.o.maxWaitMs) this.drop(w.conn);
      else this.admit(w.conn);
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
