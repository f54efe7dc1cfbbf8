/**
 * Credit-based flow control for one stream and one direction. Pure arithmetic; the session decides
 * when to call it.
 *
 * The receiver grants the sender `initial` bytes. Every DATA byte spends credit; the receiver returns
 * credit with WINDOW frames as its reader consumes bytes. A reader that stalls therefore stops the
 * sender after at most `initial` bytes, which bounds what either side buffers for that stream.
 */
import { ProtocolError, StreamError } from './codes.js';
import { MAX_WINDOW } from './frame.js';

export class SendWindow {
  private available: number;
  constructor(initial: number) {
    this.available = initial;
  }
  get size(): number {
    return this.available;
  }
  spend(n: number): void {
    if (n > this.available) throw new Error(`internal: spending ${n} bytes of a ${this.available}-byte window`);
    this.available -= n;
  }
  /** Applies a WINDOW increment; a peer that overflows the window breaks the protocol. */
  grant(increment: number, streamId: number): void {
    if (this.available + increment > MAX_WINDOW) {
      throw new ProtocolError(`window overflow on stream ${streamId}`, {
        streamId,
        streamError: StreamError.FLOW_CONTROL_ERROR,
      });
    }
    this.available += increment;
  }
}

export class RecvWindow {
  private available: number;
  private uncredited = 0;
  constructor(private readonly initial: number) {
    this.available = initial;
  }
  /** Credit the peer still has. */
  get size(): number {
    return this.available;
  }
  /** Accounts for `n` received bytes; throws when the peer sent beyond the credit it had. */
  receive(n: number, streamId: number): void {
    if (n > this.available) {
      throw new ProtocolError(`peer sent ${n} bytes on stream ${streamId} with only ${this.available} bytes of window`, {
        streamId,
        streamError: StreamError.FLOW_CONTROL_ERROR,
      });
    }
    this.available -= n;
  }
  /**
   * Records that the reader consumed `n` bytes and returns the increment to send now, or 0. Credit is
   * returned in batches of at least half the window so a fast reader does not cause a WINDOW frame per
   * DATA frame.
   */
  consumed(n: number): number {
    this.uncredited += n;
    if (this.uncredited < this.initial / 2) return 0;
    const inc = this.uncredited;
    this.uncredited = 0;
    this.available += inc;
    return inc;
  }
}
