/**
 * Reusable buffers for the large tunnel messages a session assembles from its frames.
 *
 * A bulk transfer sends a ~256 KiB message every few hundred microseconds. Allocating each one
 * fresh is cheap in itself, but it is memory outside V8's heap, and V8 answers a fast-growing
 * external allocation with "external memory pressure" collections: ~10 full mark-compacts per
 * 128 MiB on the sending side (docs/performance.md). Recycling a handful of buffers removes that
 * allocation from the data path.
 *
 * A buffer comes back only when the transport says the message has left the process (written to
 * the socket, or the socket is gone); until then it is not touched. Transports that cannot say so
 * never give buffers back, and the pool just allocates.
 *
 * Each buffer keeps `headroom` bytes in front of the message, for the transport's own framing: a
 * WebSocket frame header written there makes header and message one buffer, which the TLS layer
 * encrypts in place instead of first joining the two into a fresh copy (writer.ts, TRANSPORT_HEADROOM).
 */

export class MessagePool {
  private readonly free: Buffer[] = [];
  /** Buffers handed out and not yet given back, and messages assembled so far (for tests). */
  outstanding = 0;
  assembled = 0;

  /**
   * @param bufferBytes size of every pooled buffer; larger messages are not pooled.
   * @param maxFree buffers kept for reuse at most (the rest are left to the garbage collector), so
   *   a burst does not pin memory for ever.
   */
  constructor(
    readonly bufferBytes: number,
    private readonly maxFree: number,
    readonly headroom = 0,
  ) {}

  get freeCount(): number {
    return this.free.length;
  }

  /**
   * Smaller messages are assembled with Buffer.concat, as before: a message holds its whole pooled
   * buffer until it is written, and a session may have 1 MiB of messages waiting, so pooling small
   * ones would multiply that memory. From half a buffer up it at most doubles (bulk transfers fill
   * their messages to BATCH_BYTES anyway).
   */
  get minBytes(): number {
    return this.bufferBytes / 2;
  }

  /**
   * Concatenates `parts` (`total` bytes) into a pooled buffer, after its headroom. Returns the
   * message (a view of `total` bytes, with `headroom` bytes of the same buffer in front of it) and
   * the buffer to give back once it is sent, or undefined when this message is not worth pooling or
   * too large.
   */
  assemble(parts: readonly Buffer[], total: number): { message: Buffer; backing: Buffer } | undefined {
    if (total < this.minBytes || total > this.bufferBytes) return undefined;
    const backing = this.free.pop() ?? Buffer.allocUnsafeSlow(this.headroom + this.bufferBytes);
    let off = this.headroom;
    for (const p of parts) off += p.copy(backing, off);
    this.outstanding++;
    this.assembled++;
    return { message: backing.subarray(this.headroom, this.headroom + total), backing };
  }

  /** Gives a buffer from assemble() back. Call exactly once, after the message has left. */
  release(backing: Buffer): void {
    this.outstanding--;
    if (backing.length === this.headroom + this.bufferBytes && this.free.length < this.maxFree) this.free.push(backing);
  }
}
