/**
 * One multiplexed exchange as a Node Duplex: the writable side is the body this side sends, the
 * readable side the body the peer sends. All framing, flow control and state live in the session
 * (StreamHost); the stream only adapts Node's stream callbacks to it, so Node's own backpressure
 * (write() returning false, pipe pausing) becomes tunnel backpressure.
 *
 * Written chunks are not copied: a write's callback means "framed", and the bytes are read when the
 * session's message is assembled later in the same event-loop turn. As with a PassThrough, a writer
 * must not change a Buffer after writing it, even once the callback ran (every writer in uemlink
 * hands over fresh buffers: undici's, the HTTP parser's).
 */
import { Duplex } from 'node:stream';
import { SendWindow, RecvWindow, type WindowTuning } from './flow.js';
import type { RequestHead, ResponseHead } from './messages.js';
import { initialStatus, type Role, type StreamStatus } from './stream-state.js';
import type { ReadyLinks } from './ready-queue.js';

export interface StreamHost {
  /** Queues body chunks; `cb` runs once all of them are framed (or with the error that stops them). */
  queueData(s: MuxStream, chunks: readonly Buffer[], cb: (err?: Error | null) => void): void;
  queueEnd(s: MuxStream, cb: (err?: Error | null) => void): void;
  sendResponse(s: MuxStream, head: ResponseHead, end: boolean): void;
  readerConsumed(s: MuxStream): void;
  streamDestroyed(s: MuxStream, err: Error | null): void;
  resetStream(s: MuxStream, code: number, message: string): void;
}

export interface PendingWrite {
  chunk: Buffer;
  offset: number;
  cb: (err?: Error | null) => void;
}

export class MuxStream extends Duplex implements ReadyLinks<MuxStream> {
  readonly id: number;
  /** The request head: given by the initiator, received by the responder. */
  readonly request: RequestHead;
  /** The response head, once sent (responder) or received (initiator). */
  response: ResponseHead | undefined;
  status: StreamStatus;

  // --- owned by the session ---
  /** @internal */ readonly sendWindow: SendWindow;
  /** @internal */ readonly recvWindow: RecvWindow;
  /** @internal */ pending: PendingWrite[] = [];
  /** @internal */ pendingEnd: ((err?: Error | null) => void) | undefined;
  /** @internal */ deliveredBytes = 0;
  /** @internal */ accountedBytes = 0;
  /**
   * @internal Header of this stream's last OPEN/RESPONSE/DATA frame while it may still be unsent
   * (in message `tailBatch` of the session's outbox): where an END_STREAM flag can go, and what
   * more DATA can extend.
   */
  tail: Buffer | undefined = undefined;
  /** @internal */ tailBatch = -1;
  /** @internal The session's ready queue (ready-queue.ts). */ readyPrev: MuxStream | null = null;
  /** @internal */ readyNext: MuxStream | null = null;
  /** @internal */ readyQueued = false;

  private readonly host: StreamHost;

  constructor(
    host: StreamHost,
    id: number,
    role: Role,
    request: RequestHead,
    windows: { send: number; recv: number; tuning?: WindowTuning },
  ) {
    // The readable buffer may hold a whole window: the peer never sends more than that unread.
    super({ readableHighWaterMark: windows.recv, writableHighWaterMark: Math.min(windows.send, 256 * 1024) });
    this.host = host;
    this.id = id;
    this.request = request;
    this.status = initialStatus(role);
    this.sendWindow = new SendWindow(windows.send);
    this.recvWindow = new RecvWindow(windows.recv, windows.tuning);
  }

  get role(): Role {
    return this.status.role;
  }

  /** Bytes this side holds for the stream and has not framed yet (for tests and metrics). */
  get queuedBytes(): number {
    let n = this.writableLength;
    for (const p of this.pending) n += p.chunk.length - p.offset;
    return n;
  }

  /** Responder: sends the response head. With `end`, the response has no body. */
  respond(head: ResponseHead, opts: { end?: boolean } = {}): void {
    this.host.sendResponse(this, head, opts.end === true);
  }

  /** Ends the stream abruptly in both directions with an error code (see StreamError). */
  reset(code: number, message = ''): void {
    this.host.resetStream(this, code, message);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.host.queueData(this, [chunk], cb);
  }

  /**
   * Chunks written while the previous write waited for credit or room come here together, so the
   * session can frame them as one DATA frame (up to the peer's frame size) rather than one each:
   * fewer frames for the peer to decode and hand on (a download's 16 KiB TLS records).
   */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.host.queueData(
      this,
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.host.queueEnd(this, cb);
  }

  override _read(): void {
    // Nothing to start: the peer sends as credit allows. Credit is returned from read() below.
  }

  /**
   * Every way of consuming a Readable (flowing mode, pipe, async iteration, read(n)) goes through
   * read(); after it the consumed bytes have left the buffer, so this is where credit is returned.
   * (_read is called before the buffer is drained and not at all while a read is "pending".)
   */
  override read(size?: number): any {
    const chunk: unknown = super.read(size);
    if (chunk !== null) this.host.readerConsumed(this);
    return chunk;
  }

  /**
   * Refused: credit is what left the buffer in bytes (`deliveredBytes - readableLength`), and with
   * an encoding set `readableLength` counts characters, which would return more credit than was
   * read, past the window. Decode after reading (TextDecoder, stream/consumers' text()).
   */
  override setEncoding(_encoding: BufferEncoding): this {
    throw Object.assign(new TypeError('a tunnel stream carries bytes: decode after reading, setEncoding() would break its flow control'), { code: 'ERR_UEMLINK_STREAM_ENCODING' });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.host.streamDestroyed(this, err);
    cb(err);
  }
}
