/**
 * A session's liveness and round-trip time, as state without I/O: the session owns the interval
 * timer and sends what this decides (so both can be tested apart, and a clock injected).
 *
 * The rule: a PING goes every interval, even while earlier ones wait (on a slow link the peer's
 * PONG waits behind its bulk data, and a side that stopped pinging left that peer hearing nothing
 * from it); any byte from the peer counts as heard; the peer is dead after two whole intervals
 * heard nothing with a PING unanswered, not one: a side sending a large body over a slow link
 * hears only the peer's PINGs, one per interval of the same length, so one interval could pass
 * without one by jitter alone, and the tunnel was ended mid-transfer.
 */
import { PING_PAYLOAD_SIZE } from './frame.js';

/** Unanswered PINGs remembered (one per interval); a PONG to an older one no longer gives an RTT. */
export const MAX_PINGS_OUTSTANDING = 8;

export type HeartbeatTick = { kind: 'ping'; data: Buffer } | { kind: 'dead' };

export class Heartbeat {
  /** PINGs not answered yet, oldest first. */
  private outstanding: Array<{ data: Buffer; sentAt: number }> = [];
  private counter = 0;
  private heardSinceTick = true;
  /** Ticks in a row with nothing heard. */
  private silentTicks = 0;
  private _rttMs: number | undefined;

  /**
   * `monotonic`: milliseconds from a clock that never steps (a wall-clock step during a PING gave a
   * round trip of minus an hour: status, metrics, and the window tuning that reads it).
   */
  constructor(private readonly monotonic: () => number = () => performance.now()) {}

  /** The last round trip, in whole milliseconds (status and the local page show an integer). */
  get rttMs(): number | undefined {
    return this._rttMs;
  }

  /** Part of a message arrived from the peer. */
  heard(): void {
    this.heardSinceTick = true;
  }

  /** An interval passed: the peer is dead, or here is the next PING to send. */
  tick(): HeartbeatTick {
    this.silentTicks = this.heardSinceTick ? 0 : this.silentTicks + 1;
    if (this.outstanding.length > 0 && this.silentTicks >= 2) return { kind: 'dead' };
    this.heardSinceTick = false;
    return { kind: 'ping', data: this.nextPing() };
  }

  /** A PING's payload, remembered as sent now. */
  nextPing(): Buffer {
    const data = Buffer.alloc(PING_PAYLOAD_SIZE);
    data.writeUInt32BE(++this.counter >>> 0, 4);
    this.outstanding.push({ data, sentAt: this.monotonic() });
    if (this.outstanding.length > MAX_PINGS_OUTSTANDING) this.outstanding.shift();
    return data;
  }

  /** A PONG arrived: the new round trip, or undefined if it answers no PING remembered. */
  pong(data: Buffer): number | undefined {
    // A PONG answers its PING and every older one (they left before it, on one ordered channel).
    const i = this.outstanding.findIndex((p) => p.data.equals(data));
    if (i < 0) return undefined;
    this._rttMs = Math.round(this.monotonic() - this.outstanding[i]!.sentAt);
    this.outstanding.splice(0, i + 1);
    return this._rttMs;
  }
}
