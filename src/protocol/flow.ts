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

/**
 * Window auto-tuning (as QUIC stacks do it): a stream whose reader consumes half its window faster
 * than `fastMs` is limited by the window, not by its reader, so its window doubles, up to `max`.
 * Grown bytes come out of a per-session budget, so the worst case of a peer that gets many windows
 * grown and then stops reading stays bounded. A reader that stalls never grows its window: credit,
 * and growth, are given only for bytes consumed.
 */
export interface WindowTuning {
  max: number;
  now(): number;
  fastMs(): number;
  /** Takes `n` bytes from the session's budget for grown windows; false when it is spent. */
  reserve(n: number): boolean;
}

export class RecvWindow {
  private available: number;
  private uncredited = 0;
  private limit: number;
  private lastCreditAt: number;
  /** Bytes this window grew beyond `initial` (returned to the session budget when the stream ends). */
  grown = 0;
  constructor(
    initial: number,
    private readonly tuning?: WindowTuning,
  ) {
    this.available = initial;
    this.limit = initial;
    this.lastCreditAt = tuning?.now() ?? 0;
  }
  /** Credit the peer still has. */
  get size(): number {
    return this.available;
  }
  /** The current window (initial, or grown by auto-tuning). */
  get window(): number {
    return this.limit;
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
   * DATA frame; the increment includes any growth of the window.
   */
  consumed(n: number): number {
    this.uncredited += n;
    if (this.uncredited < this.limit / 2) return 0;
    let inc = this.uncredited;
    this.uncredited = 0;
    const t = this.tuning;
    if (t) {
      const now = t.now();
      if (now - this.lastCreditAt < t.fastMs() && this.limit < t.max) {
        const extra = Math.min(this.limit, t.max - this.limit);
        if (t.reserve(extra)) {
          this.limit += extra;
          this.grown += extra;
          inc += extra;
        }
      }
      this.lastCreditAt = now;
    }
    this.available += inc;
    return inc;
  }
}
