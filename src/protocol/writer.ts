/**
 * The session's outbox: frames queued during one turn of the event loop leave together, as one
 * tunnel message of up to BATCH_BYTES, assembled without copying a payload more than once. What
 * to send, and when a stream may, is the session's business (session.ts); this is how it leaves.
 *
 * Two things stay changeable while a frame sits in the unsent message, and both save the peer
 * work: a stream's last DATA frame can take more data (its header's length grows: no new frame),
 * and an END can become a flag on the stream's last frame instead of a frame of its own. A frame
 * is addressed by its header buffer and the number of the message it sits in (`batch`): both
 * plain values, so the data path allocates nothing per frame to track them.
 */
import { FrameFlag, FrameType } from './frame.js';
import { MessagePool } from './message-pool.js';

/** Messages hold at most this much before the writer starts a new one (unless one frame is larger). */
export const BATCH_BYTES = 256 * 1024;

/**
 * Room left in front of every assembled message for the transport's framing: 14 bytes is the
 * largest WebSocket frame header (2 + 8 length + 4 mask). With the header written there, header and
 * message leave in one write; as two, Node's TLS layer would first copy both into a fresh buffer
 * (docs/performance.md).
 */
export const TRANSPORT_HEADROOM = 14;

/** Assembled messages of bulk transfers are built in recycled buffers (message-pool.ts). */
export const messagePool = new MessagePool(BATCH_BYTES, 8, TRANSPORT_HEADROOM);

/** What the writer needs of the transport (session.ts, Transport). */
export interface MessageSink {
  send(message: Buffer, sent?: () => void, headroom?: number): void;
}

/** Buffer.concat into a new buffer that keeps `headroom` spare bytes in front of the result. */
function concatAfter(headroom: number, parts: readonly Buffer[], total: number): Buffer {
  const buf = Buffer.allocUnsafe(headroom + total);
  let off = headroom;
  for (const p of parts) off += p.copy(buf, off);
  return buf.subarray(headroom);
}

export class FrameWriter {
  private parts: Buffer[] = [];
  private bytes = 0;
  /** The header of the last frame in the unsent message. */
  private lastHeader: Buffer | undefined = undefined;
  /** Counts flushed messages: a header queued in the current one can still be changed. */
  private batchNo = 0;
  private flushScheduled = false;
  private closed = false;
  private _bytesOut = 0;

  constructor(private readonly sink: MessageSink) {}

  /** Bytes queued and not yet handed to the transport. */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** Bytes handed to the transport so far. */
  get bytesOut(): number {
    return this._bytesOut;
  }

  /** Queues one frame as its parts ([header, ...payload]); sent at the end of this turn, or at once when the message is full. */
  enqueue(parts: Buffer[]): void {
    if (this.closed) return;
    let size = 0;
    for (const p of parts) size += p.length;
    if (this.bytes > 0 && this.bytes + size > BATCH_BYTES) this.flush();
    for (const p of parts) this.parts.push(p);
    this.bytes += size;
    this.lastHeader = parts[0];
    if (this.bytes >= BATCH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /**
   * Queues a frame that may still change while unsent (extend, flagEnd): the number of the
   * message it sits in, or -1 when it has already left (a full message flushed with it).
   */
  enqueueTracked(parts: Buffer[]): number {
    this.enqueue(parts);
    // A full message may have been flushed before the frame (it then opens the next message) or
    // with it (then it is sent, and nothing can change it any more).
    return this.lastHeader === parts[0] ? this.batchNo : -1;
  }

  /**
   * Appends `n` bytes of payload to the DATA frame `header`, when it is the last frame of the
   * unsent message and the sum fits `maxFrame` and the message: the header's length grows, no new
   * frame. Chunks arrive as the UEM's TLS records (16 KiB) and were each a frame of their own; the
   * peer then handled (pushed, wrote to its client) every one. Returns whether it appended.
   */
  extend(header: Buffer | undefined, payload: readonly Buffer[], n: number, maxFrame: number): boolean {
    if (header === undefined || header !== this.lastHeader || header[0] !== FrameType.DATA) return false;
    const length = header.readUInt32BE(6) + n;
    if (length > maxFrame || this.bytes + n > BATCH_BYTES || this.closed) return false;
    header.writeUInt32BE(length, 6);
    for (const p of payload) this.parts.push(p);
    this.bytes += n;
    if (this.bytes >= BATCH_BYTES) this.flush();
    return true;
  }

  /** Sets END_STREAM on `header` if it is still in the unsent message `batch`; false if it has left. */
  flagEnd(header: Buffer | undefined, batch: number): boolean {
    if (header === undefined || batch !== this.batchNo) return false;
    header[1]! |= FrameFlag.END_STREAM;
    return true;
  }

  /** Hands the unsent message to the transport. */
  flush(): void {
    if (this.bytes === 0 || this.closed) return;
    const parts = this.parts;
    const total = this.bytes;
    this._bytesOut += total;
    this.parts = [];
    this.bytes = 0;
    this.lastHeader = undefined;
    this.batchNo++;
    if (parts.length === 1) return this.sink.send(parts[0]!);
    const pooled = messagePool.assemble(parts, total);
    if (!pooled) return this.sink.send(concatAfter(TRANSPORT_HEADROOM, parts, total), undefined, TRANSPORT_HEADROOM);
    let given = false;
    this.sink.send(
      pooled.message,
      () => {
        // Once only: a buffer given back twice would be handed to two messages at once.
        if (given) return;
        given = true;
        messagePool.release(pooled.backing);
      },
      TRANSPORT_HEADROOM,
    );
  }

  /** The session closed: what is unsent is dropped, and nothing is queued any more. */
  close(): void {
    this.closed = true;
    this.parts = [];
    this.bytes = 0;
    this.lastHeader = undefined;
  }
}
