/**
 * An in-memory Transport pair for protocol tests: messages are delivered asynchronously, in order,
 * and a side can be "stalled" to model a network that stops carrying bytes (half-open links).
 */
import type { Transport } from '../../src/protocol/session.js';
import type { TransportHandlers } from '../../src/transport/ws.js';

export class MemoryTransport implements Transport {
  peer!: MemoryTransport;
  handlers: TransportHandlers | undefined;
  private queue: Buffer[] = [];
  private queued = 0;
  private scheduled = false;
  /** When true, messages sent by this side pile up and are never delivered (until resumed). */
  stalled = false;
  closed = false;
  sentMessages = 0;

  setHandlers(h: TransportHandlers): void {
    this.handlers = h;
  }

  /**
   * Hold the sender's buffer until delivery and copy it only then (calling `sent` after the copy),
   * as a socket with a backlog does: a sender that reuses a buffer too early corrupts the message.
   */
  copyOnDeliver = false;
  private sentCallbacks = new Map<Buffer, () => void>();

  /** Messages sent with headroom (whose spare bytes this transport scribbled over). */
  headroomMessages = 0;

  send(message: Buffer, sent?: () => void, headroom = 0): void {
    if (this.closed) return;
    if (headroom > 0) {
      // As WsTransport writes its frame header there: if those bytes belonged to anything else
      // (another message, a payload still queued), the protocol tests would see it corrupted.
      Buffer.from(message.buffer, message.byteOffset - headroom, headroom).fill(0xaa);
      this.headroomMessages++;
    }
    if (this.copyOnDeliver) {
      this.queue.push(message);
      if (sent) this.sentCallbacks.set(message, sent);
    } else {
      // Copy: the sender may reuse its buffers, a real socket would have copied them too.
      this.queue.push(Buffer.from(message));
      sent?.();
    }
    this.queued += message.length;
    this.sentMessages++;
    this.schedule();
  }

  get bufferedAmount(): number {
    return this.queued;
  }

  private schedule(): void {
    if (this.scheduled || this.stalled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    while (this.queue.length > 0 && !this.stalled && !this.closed) {
      const held = this.queue.shift()!;
      this.queued -= held.length;
      const m = this.copyOnDeliver ? Buffer.from(held) : held;
      const sent = this.sentCallbacks.get(held);
      if (sent) {
        this.sentCallbacks.delete(held);
        sent();
      }
      this.peer.handlers?.message(m);
    }
    this.handlers?.drain();
  }

  resume(): void {
    this.stalled = false;
    this.schedule();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.deliver();
    this.closed = true;
    this.peer.closed = true;
    setImmediate(() => {
      this.handlers?.close(code, reason);
      this.peer.handlers?.close(code, reason);
    });
  }

  terminate(): void {
    if (this.closed) return;
    this.closed = true;
    this.peer.closed = true;
    setImmediate(() => {
      this.handlers?.close(1006, '');
      this.peer.handlers?.close(1006, '');
    });
  }
}

export function memoryPair(): [MemoryTransport, MemoryTransport] {
  const a = new MemoryTransport();
  const b = new MemoryTransport();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
