/**
 * A WebSocket seen through the session's eyes (the Transport interface): messages in, messages out
 * with the frame header written by this end where it can (ws-frame.ts), close and terminate.
 */
import type { TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import type { Transport } from '../protocol/session.js';
import { wsHeaderLength, writeWsHeader } from './ws-frame.js';

export interface TransportHandlers {
  message(data: Buffer): void;
  /** Bytes arrived from the peer (part of a message, maybe): it is alive, whatever the message's size. */
  activity?(): void;
  drain(): void;
  close(code: number, reason: string): void;
}

/**
 * Who frames the messages WsTransport sends with headroom: this end itself, as a server (no mask)
 * or as a client with all-zero masks; or ws (a client with random masks, which change the payload).
 */
export type WsFraming = 'server' | 'zero-mask' | 'ws';

/** ws's private parts the direct write relies on; checked on every use, any surprise falls back to ws.send. */
interface WsInternals {
  _socket?: { write(chunk: Buffer, cb: (err?: Error | null) => void): boolean };
  _sender?: { _state?: unknown; _queue?: unknown[] };
}

/** A WebSocket seen through the session's eyes. Handlers can be swapped (handshake, then session). */
export class WsTransport implements Transport {
  private handlers: TransportHandlers | undefined;
  private closed = false;
  /** Messages (and a close) that arrived before anyone listened: ws may deliver the peer's first
   * message in the same tick as 'open', before the dialler's promise continuation runs. */
  private early: Buffer[] = [];
  private earlyClose: [number, string] | undefined;
  /** Address of the peer as the socket saw it. */
  readonly remoteAddress: string;
  /** The TLS under the WebSocket (wss://), for logs and diagnostics. */
  readonly tls: TlsInfo | undefined;

  /** Messages written straight to the socket with their header in the headroom (for tests). */
  directWrites = 0;
  /** Messages waiting for the write in flight, in order. */
  private queue: Array<{ message: Buffer; headroom: number; done: () => void }> = [];
  private queuedBytes = 0;
  /** A write (direct or ws's) has not called back yet. */
  private inFlight = false;

  constructor(
    private readonly ws: WebSocket,
    remoteAddress = '',
    private readonly framing: WsFraming = 'ws',
  ) {
    this.remoteAddress = remoteAddress;
    const sock = (ws as unknown as { _socket?: Partial<TLSSocket> })._socket;
    this.tls = typeof sock?.isSessionReused === 'function' && sock.encrypted ? { protocol: sock.getProtocol?.() ?? 'unknown', resumed: sock.isSessionReused() } : undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.close(4010, 'text messages are not part of the protocol');
        return;
      }
      if (this.handlers) this.handlers.message(data);
      else this.early.push(data);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = true;
      this.dropQueued();
      if (this.handlers) this.handlers.close(code, reason.toString('utf8'));
      else this.earlyClose = [code, reason.toString('utf8')];
    });
    // Errors are followed by 'close'; the close carries what the session needs.
    ws.on('error', () => {});
    // A message is up to 256 KiB: on a slow link (256 kbit/s) one takes longer than two heartbeat
    // intervals to arrive, and counting only whole messages as "heard" ended busy tunnels there.
    (sock as { on?: (e: 'data', f: () => void) => void } | undefined)?.on?.('data', () => this.handlers?.activity?.());
  }

  setHandlers(h: TransportHandlers): void {
    this.handlers = h;
    while (this.early.length > 0 && this.handlers === h) h.message(this.early.shift()!);
    if (this.earlyClose && this.handlers === h) {
      const [code, reason] = this.earlyClose;
      this.earlyClose = undefined;
      h.close(code, reason);
    }
  }

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  send(message: Buffer, sent?: () => void, headroom = 0): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      sent?.(); // nothing holds it
      return;
    }
    // Called once the socket has taken the bytes (or failed): then the buffer is free.
    const done = sent ? (): void => (sent(), this.afterSend()) : this.afterSend;
    if (this.inFlight || this.queue.length > 0) {
      // Behind the write in flight: wait, so that messages keep their order (see writeDirect).
      this.queue.push({ message, headroom, done });
      this.queuedBytes += message.length;
      return;
    }
    this.dispatch(message, headroom, done);
  }

  private dispatch(message: Buffer, headroom: number, done: () => void): void {
    this.inFlight = true;
    const written = (): void => {
      this.inFlight = false;
      done();
      this.dispatchQueued();
    };
    if (headroom > 0 && this.writeDirect(message, headroom, written)) return;
    // ws frames it: one at a time as well, so that a direct write never joins it in the socket's buffer.
    this.ws.send(message, { binary: true }, written);
  }

  /**
   * Writes the frame header into the headroom in front of `message` and header and message to the
   * socket as one buffer. ws would write them as two, and Node's TLS layer joins the buffers of one
   * write into a fresh copy before encrypting: a copy of every byte a transfer sends
   * (docs/performance.md). For the same reason one write at a time (dispatch): writes made while
   * the socket is busy are buffered by the stream and leave together, joined again; the next
   * message waits for this one's callback instead (the socket's own buffer in the kernel keeps the
   * link busy meanwhile). Only while ws's sender has nothing queued (it queues only for compression,
   * off here, and Blobs, never sent), so frames keep their order; otherwise, or if ws's internals
   * are not what this expects, returns false and ws sends the message.
   */
  private writeDirect(message: Buffer, headroom: number, done: () => void): boolean {
    if (this.framing === 'ws') return false;
    const masked = this.framing === 'zero-mask';
    const hl = wsHeaderLength(message.length, masked);
    if (headroom < hl) return false;
    const { _socket: socket, _sender: sender } = this.ws as unknown as WsInternals;
    if (!socket || typeof socket.write !== 'function' || sender?._state !== 0 || !Array.isArray(sender._queue) || sender._queue.length > 0) return false;
    const frame = Buffer.from(message.buffer, message.byteOffset - hl, hl + message.length);
    writeWsHeader(frame, 0, message.length, masked);
    this.directWrites++;
    socket.write(frame, () => done());
    return true;
  }

  /** Empties the queue, returning what waited. */
  private takeQueued(): WsTransport['queue'] {
    const q = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    return q;
  }

  /** Hands every waiting message to the socket now, without waiting for the write in flight. */
  private writeQueuedNow(): void {
    for (const m of this.takeQueued()) this.dispatch(m.message, m.headroom, m.done);
  }

  /** The connection is gone: the waiting messages are dropped and their buffers free. */
  private dropQueued(): void {
    for (const m of this.takeQueued()) m.done();
  }

  private dispatchQueued(): void {
    while (!this.inFlight && this.queue.length > 0) {
      const m = this.queue.shift()!;
      this.queuedBytes -= m.message.length;
      if (this.ws.readyState === WebSocket.OPEN) this.dispatch(m.message, m.headroom, m.done);
      else m.done(); // dropped with the connection: its buffer is free
    }
  }

  private readonly afterSend = (): void => {
    this.handlers?.drain();
  };

  get bufferedAmount(): number {
    return this.ws.bufferedAmount + this.queuedBytes;
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.CLOSED || this.ws.readyState === WebSocket.CLOSING) return;
    // ws writes the Close frame at once: what waits behind the write in flight (the session's last
    // message, a GOAWAY saying why) goes to the socket first, in order, even if it leaves joined.
    // (A close started by the peer, or by ws on a protocol error, drops it: RFC 6455 lets an
    // endpoint stop sending once a Close is under way.)
    this.writeQueuedNow();
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers the close handshake must not hold the socket for ws's 30 s default.
    // (reason: at most 123 bytes, cut by the caller on a character boundary)
    const t = setTimeout(() => this.ws.terminate(), 2000);
    t.unref();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

export interface TlsInfo {
  /** 'TLSv1.3', 'TLSv1.2' */
  protocol: string;
  /** The session was resumed from a ticket (no certificate exchanged), see TlsSessionCache. */
  resumed: boolean;
}
