/**
 * A fault-injecting TCP proxy of the tests' own, on 127.0.0.1: it forwards every connection to a
 * target port and, switched at run time, misbehaves the way networks do:
 *
 * - `pass`: forward both ways (FIN and RST are passed on);
 * - `drop`: new connections are accepted and reset at once (a firewall rejecting, a dead host's RST);
 * - `stall`: nothing is forwarded in either direction but both sockets stay open, and nothing is
 *   passed on when either side closes (a silent half-open cut: packets vanish, no FIN, no RST);
 * - `halfClose`: FIN towards the client (downstream) while the upstream side stays open;
 * - `trickle`: at most `bytes` bytes every `everyMs` in `direction` (default both; a congested link,
 *   or with `down` a server that answers at a crawl); a FIN is passed on after the queued bytes;
 * - `cut`: after `afterBytes` bytes in `direction` (counted from the moment the mode is set), both
 *   sockets are closed with RST or FIN — mid-message, wherever that falls.
 *
 * "Downstream" is target → client (the answer direction), "upstream" client → target. A mode applies
 * to new connections and, unless `{ existing: false }`, to the ones already open. Counters say what
 * happened. Every timer and socket ends with close().
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type FaultMode =
  | { kind: 'pass' }
  | { kind: 'drop' }
  | { kind: 'stall' }
  | { kind: 'halfClose' }
  | { kind: 'trickle'; bytes: number; everyMs: number; direction?: 'down' | 'up' | 'both' }
  | { kind: 'cut'; afterBytes: number; how: 'rst' | 'fin'; direction?: 'down' | 'up' };

export interface FaultCounters {
  accepted: number;
  dropped: number;
  /** Connections currently open (client side). */
  active: number;
  bytesUp: number;
  bytesDown: number;
  /** Connections ended by a `cut`. */
  cuts: number;
  /** Connections put into `stall`. */
  stalled: number;
  halfClosed: number;
}

type Dir = 'up' | 'down';

class Pair {
  mode: FaultMode = { kind: 'pass' };
  /** Bytes seen per direction since the current mode was set (for `cut`). */
  private sinceMode = { up: 0, down: 0 };
  private readonly queue: Record<Dir, Buffer[]> = { up: [], down: [] };
  /** A FIN that arrived while bytes were still queued (trickle): passed on once they are out. */
  private readonly endQueued: Record<Dir, boolean> = { up: false, down: false };
  private trickleTimer: NodeJS.Timeout | undefined;
  closed = false;

  constructor(
    readonly client: Socket,
    readonly server: Socket,
    private readonly counters: FaultCounters,
    private readonly onGone: (p: Pair) => void,
  ) {
    client.on('data', (c: Buffer) => this.onData('up', c));
    server.on('data', (c: Buffer) => this.onData('down', c));
    client.on('end', () => this.onEnd('up'));
    server.on('end', () => this.onEnd('down'));
    client.on('error', () => this.onAbrupt('up'));
    server.on('error', () => this.onAbrupt('down'));
    client.on('close', () => this.maybeGone());
    server.on('close', () => this.maybeGone());
  }

  private from(d: Dir): Socket {
    return d === 'up' ? this.client : this.server;
  }
  private to(d: Dir): Socket {
    return d === 'up' ? this.server : this.client;
  }

  setMode(m: FaultMode): void {
    if (this.closed) return;
    const prev = this.mode;
    this.mode = m;
    this.sinceMode = { up: 0, down: 0 };
    if (prev.kind === 'trickle' && m.kind !== 'trickle') this.flushQueues();
    if (m.kind === 'stall') {
      this.counters.stalled++;
      // Stop reading: the peers' kernel buffers fill and their writes just queue, like a dead path.
      this.client.pause();
      this.server.pause();
      this.queue.up = [];
      this.queue.down = [];
    } else if (prev.kind === 'stall') {
      this.client.resume();
      this.server.resume();
    }
    if (m.kind === 'halfClose') {
      this.counters.halfClosed++;
      this.client.end(); // FIN downstream; upstream keeps flowing
    }
    if (m.kind === 'trickle') this.startTrickle(m);
    else if (this.trickleTimer) {
      clearInterval(this.trickleTimer);
      this.trickleTimer = undefined;
    }
  }

  private onData(d: Dir, chunk: Buffer): void {
    const m = this.mode;
    if (d === 'up') this.counters.bytesUp += chunk.length;
    else this.counters.bytesDown += chunk.length;
    switch (m.kind) {
      case 'stall':
        return; // vanishes
      case 'halfClose':
        if (d === 'down') return; // the client was told the stream ended
        this.write(d, chunk);
        return;
      case 'trickle':
        if (m.direction !== undefined && m.direction !== 'both' && m.direction !== d) return this.write(d, chunk);
        this.queue[d].push(chunk);
        if (this.queued(d) > 256 * 1024) this.from(d).pause();
        return;
      case 'cut': {
        const dir = m.direction ?? 'down';
        if (d !== dir) return this.write(d, chunk);
        const left = m.afterBytes - this.sinceMode[d];
        this.sinceMode[d] += chunk.length;
        if (left > chunk.length) return this.write(d, chunk);
        if (left > 0) this.to(d).write(chunk.subarray(0, left));
        this.cut(m.how);
        return;
      }
      default:
        this.write(d, chunk);
    }
  }

  private write(d: Dir, chunk: Buffer): void {
    const to = this.to(d);
    if (to.destroyed || to.writableEnded) return;
    if (!to.write(chunk)) {
      const from = this.from(d);
      from.pause();
      to.once('drain', () => {
        if (this.mode.kind !== 'stall') from.resume();
      });
    }
  }

  private queued(d: Dir): number {
    return this.queue[d].reduce((n, b) => n + b.length, 0);
  }

  private startTrickle(m: Extract<FaultMode, { kind: 'trickle' }>): void {
    if (this.trickleTimer) clearInterval(this.trickleTimer);
    this.trickleTimer = setInterval(() => {
      for (const d of ['up', 'down'] as const) {
        let budget = m.bytes;
        const q = this.queue[d];
        while (budget > 0 && q.length > 0) {
          const head = q[0]!;
          const part = head.subarray(0, budget);
          budget -= part.length;
          if (part.length === head.length) q.shift();
          else q[0] = head.subarray(part.length);
          const to = this.to(d);
          if (!to.destroyed && !to.writableEnded) to.write(part);
        }
        if (this.queued(d) < 64 * 1024 && this.from(d).isPaused()) this.from(d).resume();
        if (q.length === 0 && this.endQueued[d]) {
          this.endQueued[d] = false;
          if (!this.to(d).destroyed) this.to(d).end();
        }
      }
    }, m.everyMs);
  }

  private flushQueues(): void {
    for (const d of ['up', 'down'] as const) {
      for (const b of this.queue[d]) this.write(d, b);
      this.queue[d] = [];
      this.from(d).resume();
      if (this.endQueued[d]) {
        this.endQueued[d] = false;
        if (!this.to(d).destroyed) this.to(d).end();
      }
    }
  }

  private cut(how: 'rst' | 'fin'): void {
    if (this.closed) return;
    this.counters.cuts++;
    this.closed = true;
    if (how === 'rst') {
      this.client.resetAndDestroy();
      this.server.resetAndDestroy();
    } else {
      this.client.end();
      this.server.end();
      // Whatever either side still sends is ignored; the sockets go once both FINs are out.
      setTimeout(() => this.destroy(), 2000).unref();
    }
  }

  private onEnd(d: Dir): void {
    // A silent cut passes nothing on; otherwise FIN is forwarded (half-close preserved).
    if (this.mode.kind === 'stall' || this.closed) return;
    if (this.queue[d].length > 0) {
      this.endQueued[d] = true;
      return;
    }
    const to = this.to(d);
    if (!to.destroyed) to.end();
  }

  private onAbrupt(d: Dir): void {
    if (this.mode.kind === 'stall') return; // silent: the other side hears nothing
    // An RST on one side becomes an RST on the other.
    const to = this.to(d);
    if (!to.destroyed) to.resetAndDestroy();
  }

  private maybeGone(): void {
    if (this.mode.kind === 'stall' && !(this.client.destroyed && this.server.destroyed)) return;
    if (this.client.destroyed || this.server.destroyed) {
      if (this.mode.kind !== 'stall') {
        // Closing without error on one side (after both FINs) ends the pair.
        if (this.client.destroyed && !this.server.destroyed && this.server.writableEnded) this.server.destroy();
        if (this.server.destroyed && !this.client.destroyed && this.client.writableEnded) this.client.destroy();
      }
    }
    if (this.client.destroyed && this.server.destroyed) this.gone();
  }

  private gone(): void {
    if (this.trickleTimer) clearInterval(this.trickleTimer);
    this.trickleTimer = undefined;
    this.closed = true;
    this.onGone(this);
  }

  destroy(): void {
    this.closed = true;
    this.client.destroy();
    this.server.destroy();
    this.gone();
  }
}

export class FaultProxy {
  readonly counters: FaultCounters = { accepted: 0, dropped: 0, active: 0, bytesUp: 0, bytesDown: 0, cuts: 0, stalled: 0, halfClosed: 0 };
  private mode: FaultMode = { kind: 'pass' };
  private readonly pairs = new Set<Pair>();
  private server: Server | undefined;

  private constructor(
    public targetPort: number,
    readonly port: number,
    private readonly targetHost: string,
  ) {}

  /** Starts a proxy on 127.0.0.1 (`port` 0 = any free port) forwarding to 127.0.0.1:`targetPort`. */
  static async start(targetPort: number, opts: { port?: number; targetHost?: string } = {}): Promise<FaultProxy> {
    const p = new FaultProxy(targetPort, opts.port ?? 0, opts.targetHost ?? '127.0.0.1');
    await p.listen();
    return p;
  }

  get address(): string {
    return `127.0.0.1:${this.boundPort}`;
  }
  get url(): string {
    return `http://${this.address}`;
  }
  private boundPort = 0;

  private listen(): Promise<void> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => this.accept(client));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort || this.port, '127.0.0.1', () => {
        server.off('error', reject);
        this.boundPort = (server.address() as { port: number }).port;
        this.server = server;
        resolve();
      });
    });
  }

  get currentMode(): FaultMode {
    return this.mode;
  }

  /** Connections currently open through the proxy. */
  get open(): number {
    return this.pairs.size;
  }

  /** Switches the mode for new connections and (unless `existing: false`) for those already open. */
  set(mode: FaultMode, opts: { existing?: boolean; newConnections?: boolean } = {}): void {
    if (opts.newConnections !== false) this.mode = mode;
    if (opts.existing !== false) for (const p of this.pairs) p.setMode(mode);
  }

  /** New connections go to 127.0.0.1:`port` from now on (open ones stay where they are). */
  retarget(port: number): void {
    this.targetPort = port;
  }

  /** Resets every open connection (both sides get an RST). */
  resetAll(): void {
    for (const p of [...this.pairs]) {
      p.client.resetAndDestroy();
      p.server.resetAndDestroy();
      p.destroy();
    }
  }

  private accept(client: Socket): void {
    this.counters.accepted++;
    if (this.mode.kind === 'drop') {
      this.counters.dropped++;
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    const server = connect({ port: this.targetPort, host: this.targetHost, allowHalfOpen: true });
    client.setNoDelay(true);
    server.setNoDelay(true);
    this.counters.active++;
    const pair = new Pair(client, server, this.counters, (p) => {
      if (this.pairs.delete(p)) this.counters.active--;
    });
    this.pairs.add(pair);
    pair.setMode(this.mode);
    if (this.mode.kind !== 'stall') client.resume();
  }

  /** Stops listening (new connections are refused by the kernel) but keeps open ones. */
  stopListening(): void {
    this.server?.close(); // its 'close' waits for open connections: not awaited
    this.server = undefined;
  }

  /** Listens again on the same port. */
  async resumeListening(): Promise<void> {
    if (!this.server) await this.listen();
  }

  async close(): Promise<void> {
    for (const p of [...this.pairs]) p.destroy();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
