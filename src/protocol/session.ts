/**
 * A multiplexing session over an already-authenticated tunnel: streams, flow control, fair
 * scheduling, heartbeats, GOAWAY and closing. It performs no I/O of its own: bytes go out through an
 * injected Transport and come in through onMessage/onDrain/onTransportClose, so the same session runs
 * over a WebSocket or an in-memory pair in tests.
 *
 * Writing: control frames (OPEN, RESPONSE, END, RESET, WINDOW, PING, ...) go to the outbox at once;
 * DATA is framed by a round-robin scheduler, one frame per stream per turn, only while the transport
 * holds less than `highWaterMark` bytes, so one bulk stream cannot starve the others or bloat memory.
 * The outbox is flushed as one message per event-loop turn (batching, like cork/uncork).
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type TimerHandle } from '../common/clock.js';
import { UemlinkError } from '../common/errors.js';
import { IdMap } from '../common/id-map.js';
import {
  CloseCode,
  GoAwayCodes,
  ProtocolError,
  StreamError,
  StreamResetError,
  goAwayCodeForClose,
  type GoAwayCode,
} from './codes.js';
import {
  FRAME_HEADER_SIZE,
  FrameType,
  MAX_RESET_MESSAGE,
  MAX_STREAM_ID,
  decodeMessage,
  encodeFrameParts,
  encodeHeader,
  jsonPayload,
  utf8Prefix,
  type Frame,
  type StreamFrame,
} from './frame.js';
import { MAX_HEAD_PAIRS, parseGoAway, parseRequestHead, parseResponseHead, type GoAway, type Limits, type RequestHead, type ResponseHead } from './messages.js';
import { canSend, onInbound, onOutbound, type Inbound } from './stream-state.js';
import { MuxStream, type StreamHost } from './stream.js';
import type { WindowTuning } from './flow.js';
import { BATCH_BYTES, FrameWriter } from './writer.js';
import { ReadyQueue } from './ready-queue.js';
import { Heartbeat } from './heartbeat.js';
import { parseControl, type ControlMessage } from './control.js';

/** What a session needs from the thing that carries its messages. */
export interface Transport {
  /**
   * Queues one binary message. `sent`, if given, is called once when the message has left the
   * process (written to the socket, or dropped with it): only then may its buffer be reused. A
   * transport that cannot tell never calls it. `headroom`, if given, is how many bytes right in
   * front of `message` in its ArrayBuffer belong to the message too, spare: the transport may write
   * its own framing there (at most TRANSPORT_HEADROOM bytes are offered).
   */
  send(message: Buffer, sent?: () => void, headroom?: number): void;
  /** Bytes queued by send() and not yet written to the network. */
  readonly bufferedAmount: number;
  /** Closing handshake with a close code. */
  close(code: number, reason: string): void;
  /** Drops the connection at once (dead peers do not answer a close handshake). */
  terminate(): void;
}

export type SessionRole = 'cloud' | 'connector';

export interface SessionOptions {
  role: SessionRole;
  transport: Transport;
  /** What we accept (announced in our HELLO). */
  local: Limits;
  /** What the peer accepts (from its HELLO). */
  remote: Limits;
  /** Ping period; a peer silent for two periods with a ping unanswered is declared dead. 0 disables. */
  heartbeatMs: number;
  clock?: Clock;
  /** Stop framing DATA while the transport buffers this many bytes (default 1 MiB). */
  highWaterMark?: number;
  /**
   * End the tunnel (PROTOCOL_ERROR) when, after handling a message from the peer, more than this
   * many bytes wait to be written (default: 16 MiB or 4 × highWaterMark, whichever is larger).
   */
  maxOutboundBacklog?: number;
  /**
   * Receive-window auto-tuning (flow.ts): a fast stream's window may grow to `maxWindow`, all grown
   * windows of the session together by at most `budget` bytes. Default 16 MiB / 64 MiB; false: fixed
   * windows.
   */
  windowTuning?: { maxWindow: number; budget: number } | false;
  /**
   * The protocol version the handshake settled on (default 1). From 2, a stream's END rides as the
   * END_STREAM flag on its last OPEN, RESPONSE or DATA frame when that frame is still unsent, and
   * the flag is honoured on receipt; version 1 sends END frames only and ignores flags.
   */
  version?: number;
}

export interface SessionClose {
  code: number;
  reason: string;
  /** Why, as a typed error: our own failure, the peer's GOAWAY, or a plain disconnect. */
  error: UemlinkError;
  /** Set when the peer announced the close with a GOAWAY. */
  goAway?: GoAway;
  /** Whether we initiated the close. */
  local: boolean;
}

export interface SessionEvents {
  stream: [stream: MuxStream];
  /** A CONTROL message the spec defines (others are ignored: control.ts). */
  control: [message: ControlMessage];
  goaway: [goAway: GoAway];
  rtt: [ms: number];
  idle: [];
  close: [info: SessionClose];
}

const noop = (): void => {};

/**
 * A DATA payload as the stream keeps it. Decoded payloads are views into their tunnel message (no
 * copy); a small one held by a reader that does not read kept its whole message alive, so a
 * stalled stream of small frames pinned ~30 times its window (26 MiB for a 1 MiB window, measured).
 * Small parts of large messages are copied when the stream queues them; bulk frames, and any frame
 * a flowing reader takes at once, stay views.
 */
function pinless(data: Buffer): Buffer {
  const whole = data.buffer.byteLength;
  return whole > 16 * 1024 && data.length * 4 < whole ? Buffer.from(data) : data;
}

/** How long a session whose stream ids ran out lets its streams finish before it closes (openStream). */
const EXHAUSTED_DRAIN_MS = 60_000;

/** The largest WebSocket message a receiver with these limits must accept. */
export function maxMessageSize(local: Limits): number {
  return Math.max(BATCH_BYTES, local.maxFrameSize + FRAME_HEADER_SIZE) + FRAME_HEADER_SIZE;
}

export type SessionState = 'open' | 'draining' | 'closed';

export class MuxSession extends EventEmitter<SessionEvents> implements StreamHost {
  readonly role: SessionRole;
  readonly local: Limits;
  readonly remote: Limits;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly highWaterMark: number;
  private readonly maxOutboundBacklog: number;

  // Not a Map: a stream per request passes through it, and a Map's abandoned tables left every
  // stream it ever held to the young-generation collector (id-map.ts).
  private readonly streams = new IdMap<MuxStream>();
  /** Streams with data (and credit) or an END waiting, in round-robin order (ready-queue.ts). */
  private readonly ready = new ReadyQueue<MuxStream>();
  private nextLocalId: number;
  private lastLocalId = 0;
  private lastPeerId = 0;
  private localOpen = 0;
  private peerOpen = 0;

  /** The outbox: frames leave batched into tunnel messages (writer.ts). */
  private readonly out: FrameWriter;
  /**
   * Bytes of replies (PONGs, RESETs refusing the peer's OPENs) queued since the outbound side was
   * last below its high-water mark: the peer makes this side write them, read or not.
   */
  private repliesWaiting = 0;
  /** The protocol version the handshake settled on. */
  readonly version: number;
  /** Version 2 or later: END_STREAM flags are sent and honoured. */
  private readonly endFlag: boolean;
  private pumping = false;

  private _state: SessionState = 'open';
  private sentGoAway: GoAway | undefined;
  private receivedGoAway: GoAway | undefined;

  private hbTimer: TimerHandle | undefined;
  private readonly hb = new Heartbeat();
  private _lastHeardAt: number;
  private _bytesIn = 0;
  private readonly tuning: WindowTuning | undefined;
  private grownBytes = 0;

  constructor(opts: SessionOptions) {
    super();
    this.role = opts.role;
    this.transport = opts.transport;
    this.out = new FrameWriter(opts.transport);
    this.local = opts.local;
    this.remote = opts.remote;
    this.clock = opts.clock ?? systemClock;
    this.highWaterMark = opts.highWaterMark ?? 1024 * 1024;
    this.version = opts.version ?? 1;
    this.endFlag = this.version >= 2;
    this.maxOutboundBacklog = opts.maxOutboundBacklog ?? Math.max(16 * 1024 * 1024, 4 * this.highWaterMark);
    const wt = opts.windowTuning ?? { maxWindow: 16 * 1024 * 1024, budget: 64 * 1024 * 1024 };
    this.tuning =
      wt === false
        ? undefined
        : {
            max: Math.max(wt.maxWindow, this.local.initialWindow),
            now: () => this.clock.now(),
            // A half window consumed within this time: the window, not the reader, is the limit.
            fastMs: () => Math.max(10, 4 * (this.hb.rttMs ?? 0)),
            reserve: (n) => {
              if (this.grownBytes + n > wt.budget) return false;
              this.grownBytes += n;
              return true;
            },
          };
    // The cloud opens odd stream ids, the connector even ones, so the two never collide.
    this.nextLocalId = this.role === 'cloud' ? 1 : 2;
    this._lastHeardAt = this.clock.now();
    if (opts.heartbeatMs > 0) {
      this.hbTimer = this.clock.setInterval(() => this.heartbeat(), opts.heartbeatMs);
      // A first ping right away: the round-trip time is known from the start, not after an interval.
      queueMicrotask(() => this.ping(this.hb.nextPing()));
    }
  }

  get state(): SessionState {
    return this._state;
  }
  get rttMs(): number | undefined {
    return this.hb.rttMs;
  }
  /** Open streams, both directions. */
  get activeStreams(): number {
    return this.streams.size;
  }
  /** When the last message from the peer arrived (ms since the epoch). */
  get lastHeardAt(): number {
    return this._lastHeardAt;
  }
  get bytesIn(): number {
    return this._bytesIn;
  }
  get bytesOut(): number {
    return this.out.bytesOut;
  }
  /** True when new streams may be opened towards the peer. */
  get acceptsStreams(): boolean {
    return this._state === 'open' && this.receivedGoAway === undefined;
  }

  // ---- opening streams ----------------------------------------------------------------------

  /** Opens a stream towards the peer and sends its head. Throws a retryable error when it cannot. */
  openStream(head: RequestHead): MuxStream {
    if (!this.acceptsStreams) {
      throw new UemlinkError('TUNNEL_GOING_AWAY', 'the tunnel is closing and accepts no new streams', { retryable: true });
    }
    if (this.localOpen >= this.remote.maxConcurrentStreams) {
      throw new UemlinkError('TUNNEL_STREAM_LIMIT', `the peer accepts at most ${this.remote.maxConcurrentStreams} concurrent streams`, {
        retryable: true,
      });
    }
    const id = this.nextLocalId;
    if (id > MAX_STREAM_ID) {
      // Drained, not only announced: a GOAWAY alone left both sides "draining" for good (nothing
      // closes a session on a GOAWAY it sent or got), the tunnel connected but carrying nothing,
      // and the connector never redialled. Closed once its streams finish, the tunnel is dialled
      // again (§5).
      void this.drain(EXHAUSTED_DRAIN_MS, 'stream ids exhausted');
      throw new UemlinkError('TUNNEL_GOING_AWAY', 'stream ids exhausted; the tunnel will be re-established', { retryable: true });
    }
    const json = this.fitting(jsonPayload(this.headCount(head, 'request head')), 'request head');
    this.nextLocalId += 2;
    this.lastLocalId = id;
    const s = new MuxStream(this, id, 'initiator', head, { send: this.remote.initialWindow, recv: this.local.initialWindow, ...this.tuningFor() });
    this.streams.set(id, s);
    this.localOpen++;
    this.enqueueStreamParts(s, encodeFrameParts({ kind: 'open', streamId: id, json }));
    return s;
  }

  // ---- StreamHost (called by MuxStream) -------------------------------------------------------

  queueData(s: MuxStream, chunks: readonly Buffer[], cb: (err?: Error | null) => void): void {
    if (!this.streams.has(s.id) || !canSend(s.status, 'data')) {
      cb(new UemlinkError('TUNNEL_STREAM_RESET', `stream ${s.id} can no longer send data`));
      return;
    }
    if (s.role === 'responder' && s.response === undefined) {
      cb(new Error('respond() must be called before writing a response body'));
      return;
    }
    const last = chunks.length - 1;
    let queued = false;
    for (let i = 0; i <= last; i++) {
      const chunk = chunks[i]!;
      if (chunk.length === 0) continue;
      s.pending.push({ chunk, offset: 0, cb: i === last ? cb : noop });
      queued = true;
    }
    if (!queued) {
      cb();
      return;
    }
    // An empty last chunk: the callback rides on the last one with bytes.
    if (chunks[last]!.length === 0) s.pending[s.pending.length - 1]!.cb = cb;
    if (s.sendWindow.size > 0) this.ready.add(s);
    this.pump();
  }

  queueEnd(s: MuxStream, cb: (err?: Error | null) => void): void {
    if (!this.streams.has(s.id) || !canSend(s.status, 'end')) {
      cb();
      return;
    }
    if (s.role === 'responder' && s.response === undefined) {
      cb(new Error('respond() must be called before ending a response'));
      return;
    }
    s.pendingEnd = cb;
    this.ready.add(s);
    this.pump();
  }

  sendResponse(s: MuxStream, head: ResponseHead, end: boolean): void {
    if (!this.streams.has(s.id) || !canSend(s.status, 'response') || s.response !== undefined) {
      throw new UemlinkError('TUNNEL_STREAM_RESET', `stream ${s.id} cannot send a response now`);
    }
    const json = this.fitting(jsonPayload(this.headCount(head, 'response head')), 'response head');
    s.response = head;
    this.enqueueStreamParts(s, encodeFrameParts({ kind: 'response', streamId: s.id, json }));
    if (end) s.end();
  }

  readerConsumed(s: MuxStream): void {
    const consumed = s.deliveredBytes - s.readableLength - s.accountedBytes;
    if (consumed <= 0) return;
    s.accountedBytes += consumed;
    // Once the peer ended (or the stream is gone) it sends nothing more: no credit to return, and a
    // window grown now would take session budget that retire() has already settled, for good.
    const remoteOpen = s.status.state === 'open' || s.status.state === 'half-closed-local';
    if (!remoteOpen || !this.streams.has(s.id)) return;
    const inc = s.recvWindow.consumed(consumed);
    if (inc > 0) this.enqueue({ kind: 'window', streamId: s.id, increment: inc });
  }

  streamDestroyed(s: MuxStream, err: Error | null): void {
    if (!this.streams.has(s.id)) return;
    // Destroyed locally before both sides finished: tell the peer to stop.
    this.sendReset(s, StreamError.CANCEL, err ? err.message : 'cancelled');
  }

  resetStream(s: MuxStream, code: number, message: string): void {
    if (!this.streams.has(s.id)) return;
    this.sendReset(s, code, message);
    s.destroy(new StreamResetError({ code, message, by: 'local', beforeResponse: !s.status.responseReceived }));
  }

  // ---- connection-level actions -----------------------------------------------------------------

  sendControl(message: ControlMessage): void {
    if (this._state === 'closed') return;
    this.enqueue({ kind: 'control', json: this.fitting(jsonPayload(message), 'control message') });
  }

  /**
   * A GOAWAY the peer can read: its message within §8's 1024 characters (a longer one made the peer
   * refuse the whole GOAWAY, and a permanent REVOKED read as a retryable protocol error) and the
   * frame within the peer's frame limit (1024 bytes is allowed).
   */
  private goAwayPayload(g: GoAway): Buffer {
    let message = fitChars(g.message, 1024);
    let json = jsonPayload({ ...g, message });
    while (json.length > this.remote.maxFrameSize && message.length > 0) {
      message = fitChars(message, Math.floor(message.length * 0.75));
      json = jsonPayload({ ...g, message });
    }
    return json;
  }

  /** A RESET's message within what the peer takes: 1024 bytes, and its frame within the peer's limit. */
  private resetMessage(message: string): string {
    const max = Math.min(MAX_RESET_MESSAGE, this.remote.maxFrameSize - 4);
    return Buffer.byteLength(message) <= max ? message : utf8Prefix(message, max).toString('utf8');
  }

  /**
   * A head the peer would refuse for its number of header lines is refused here, as one too large
   * for a frame is (a UEM answer with 600 headers reached the cloud, which reset the stream: the
   * client got a puzzling protocol error while the connector's audit said 200).
   */
  private headCount<H extends { headers: readonly unknown[] }>(head: H, what: string): H {
    if (head.headers.length > MAX_HEAD_PAIRS) {
      throw new UemlinkError('TUNNEL_FRAME_TOO_LARGE', `the ${what} has ${head.headers.length} header lines, more than the ${MAX_HEAD_PAIRS} a head may carry`);
    }
    return head;
  }

  /** JSON frames are never split: one that exceeds the peer's frame limit is refused here. */
  private fitting(json: Buffer, what: string): Buffer {
    if (json.length > this.remote.maxFrameSize) {
      throw new UemlinkError('TUNNEL_FRAME_TOO_LARGE', `the ${what} is ${json.length} bytes, more than the peer's frame limit of ${this.remote.maxFrameSize}`);
    }
    return json;
  }

  /** Announces that no new streams will be accepted; open ones continue. */
  goAway(code: GoAwayCode, message: string, retryAfterMs?: number): void {
    if (this._state === 'closed' || this.sentGoAway) return;
    const g: GoAway = { code, message, lastStreamId: this.lastPeerId };
    if (retryAfterMs !== undefined) g.retryAfterMs = retryAfterMs;
    this.sentGoAway = g;
    this._state = 'draining';
    this.enqueue({ kind: 'goaway', json: this.goAwayPayload(g) });
    this.out.flush();
  }

  /**
   * Graceful shutdown: GOAWAY, let open streams finish for up to `timeoutMs`, then close with
   * "going away". Resolves once closed.
   */
  async drain(timeoutMs: number, message = 'shutting down', retryAfterMs?: number): Promise<void> {
    if (this._state === 'closed') return;
    this.goAway('SHUTTING_DOWN', message, retryAfterMs);
    if (this.streams.size > 0) {
      await new Promise<void>((resolve) => {
        const t = this.clock.setTimeout(done, timeoutMs);
        const self = this;
        function done(): void {
          self.clock.clearTimeout(t);
          self.off('idle', done);
          self.off('close', done);
          resolve();
        }
        this.on('idle', done);
        this.on('close', done);
      });
    }
    this.close(CloseCode.GOING_AWAY, message);
  }

  /** Closes the tunnel; open streams end with TUNNEL_CLOSED. */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    if (this._state === 'closed') return;
    this.out.flush();
    this.transport.close(code, closeReason(reason));
    const g = goAwayCodeForClose(code) ?? 'SHUTTING_DOWN';
    this.finish({ code, reason, error: new UemlinkError(GoAwayCodes[g].error, reason || 'tunnel closed', { retryable: true }), local: true });
  }

  /** Ends the tunnel because of an error: a GOAWAY naming it, then the matching close code. */
  fail(code: GoAwayCode, message: string): void {
    if (this._state === 'closed') return;
    this.enqueue({ kind: 'goaway', json: this.goAwayPayload({ code, message, lastStreamId: this.lastPeerId }) });
    this.out.flush();
    const c = GoAwayCodes[code];
    if (code === 'HEARTBEAT_TIMEOUT') this.transport.terminate();
    else this.transport.close(c.close, closeReason(message));
    this.finish({
      code: c.close,
      reason: message,
      error: new UemlinkError(c.error, message, { retryable: !c.permanent }),
      local: true,
    });
  }

  // ---- transport callbacks ----------------------------------------------------------------------

  onMessage(message: Buffer): void {
    if (this._state === 'closed') return;
    this.hb.heard();
    this._lastHeardAt = this.clock.now();
    this._bytesIn += message.length;
    let frames: Frame[];
    try {
      frames = decodeMessage(message, this.local.maxFrameSize);
    } catch (e) {
      this.fail('PROTOCOL_ERROR', (e as Error).message);
      return;
    }
    for (const f of frames) {
      // handle() may have closed the session (TS cannot see that through the call).
      if ((this._state as SessionState) === 'closed') return;
      try {
        this.handle(f);
      } catch (e) {
        if (e instanceof ProtocolError && e.streamId !== 0 && this.streams.has(e.streamId)) {
          const s = this.streams.get(e.streamId)!;
          this.sendReset(s, e.streamError, e.message);
          s.destroy(new StreamResetError({ code: e.streamError, message: e.message, by: 'local', beforeResponse: !s.status.responseReceived }));
        } else {
          this.fail('PROTOCOL_ERROR', e instanceof Error ? e.message : String(e));
          return;
        }
      }
    }
    // Fix (hostile-input review, issue 7): every PING is answered with a PONG and every refused OPEN
    // with a RESET, whether or not the peer reads them. A peer that floods those while never reading
    // its socket made our send buffer grow without bound (the HTTP/2 "ping/reset flood"). Only those
    // replies count, since the outbound side was last below its high-water mark: what this side
    // sends on its own (a burst of target offers at connect, large request heads) killed tunnels to
    // peers that read normally (spec-conformance review).
    if ((this._state as SessionState) === 'closed') return;
    const waiting = this.transport.bufferedAmount + this.out.queuedBytes;
    if (waiting < this.highWaterMark) this.repliesWaiting = 0;
    else if (this.repliesWaiting > this.maxOutboundBacklog) {
      this.fail('PROTOCOL_ERROR', `the peer does not read its replies (${this.repliesWaiting} bytes of replies among ${waiting} waiting to be sent)`);
    }
  }

  /** Part of a message arrived: the peer is alive (the heartbeat counts bytes, not whole messages). */
  onActivity(): void {
    this.hb.heard();
  }

  onDrain(): void {
    if (this.ready.size > 0) this.pump();
  }

  onTransportClose(code: number, reason: string): void {
    if (this._state === 'closed') return;
    const g = this.receivedGoAway;
    const known = goAwayCodeForClose(code);
    const c = g ? GoAwayCodes[g.code] : known ? GoAwayCodes[known] : undefined;
    const message = g?.message || reason || `tunnel closed (code ${code})`;
    const info: SessionClose = {
      code,
      reason,
      error: new UemlinkError(c?.error ?? 'TUNNEL_CLOSED', message, { retryable: !(c?.permanent ?? false) }),
      local: false,
    };
    if (g) info.goAway = g;
    this.finish(info);
  }

  // ---- receiving --------------------------------------------------------------------------------

  private handle(f: Frame): void {
    switch (f.kind) {
      case 'hello':
      case 'auth':
      case 'welcome':
        throw new ProtocolError(`${f.kind.toUpperCase()} after the handshake`);
      case 'ping':
        this.reply({ kind: 'pong', data: Buffer.from(f.data) });
        return;
      case 'pong':
        {
          const rtt = this.hb.pong(f.data);
          if (rtt !== undefined) this.emit('rtt', rtt);
        }
        return;
      case 'goaway':
        this.onGoAway(parseGoAway(f.json));
        return;
      case 'control': {
        let msg: unknown;
        try {
          msg = JSON.parse(f.json.toString('utf8'));
        } catch {
          throw new ProtocolError('CONTROL payload is not JSON');
        }
        if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new ProtocolError('CONTROL payload must be an object');
        const known = parseControl(msg as Record<string, unknown>);
        if (known) this.emit('control', known);
        return;
      }
      default:
        this.handleStreamFrame(f);
    }
  }

  private isPeerId(id: number): boolean {
    // The cloud opens odd ids; so a cloud session's peer opens even ones and vice versa.
    return this.role === 'cloud' ? id % 2 === 0 : id % 2 === 1;
  }

  private handleStreamFrame(f: StreamFrame): void {
    if (f.kind === 'open') {
      this.onOpen(f.streamId, f.json);
      if (f.end === true && this.endFlag) this.endFromFlag(f.streamId);
      return;
    }
    const s = this.streams.get(f.streamId);
    if (!s) {
      const idle = this.isPeerId(f.streamId) ? f.streamId > this.lastPeerId : f.streamId > this.lastLocalId;
      if (idle) throw new ProtocolError(`${f.kind.toUpperCase()} frame for stream ${f.streamId}, which was never opened`);
      return; // a stream we already closed or reset: frames in flight are dropped
    }
    const step = onInbound(s.status, f.kind as Inbound);
    if (!step.ok) {
      throw new ProtocolError(`stream ${f.streamId}: ${step.reason}`, step.fatal ? {} : { streamId: f.streamId });
    }
    switch (f.kind) {
      case 'response': {
        const head = parseResponseHead(f.json, f.streamId);
        s.status = step.status;
        s.response = head;
        s.emit('response', head);
        if (f.end === true && this.endFlag) this.endFromFlag(f.streamId);
        return;
      }
      case 'data':
        s.recvWindow.receive(f.data.length, f.streamId);
        s.status = step.status;
        s.deliveredBytes += f.data.length;
        // A reader taking the bytes at once (flowing, nothing queued) keeps no view: no copy.
        s.push(s.readableFlowing === true && s.readableLength === 0 ? f.data : pinless(f.data));
        // The END this frame carries is applied before the credit step: a reader that took the
        // bytes inside push() must not earn credit (or window growth) for a stream the peer ended.
        if (f.end === true && this.endFlag) this.endFromFlag(f.streamId);
        this.readerConsumed(s);
        return;
      case 'end':
        this.onEnd(s, step.status);
        return;
      case 'reset':
        this.endWith(s, new StreamResetError({ code: f.code, message: f.message, by: 'peer', beforeResponse: s.role === 'initiator' && !s.status.responseReceived }));
        return;
      case 'window':
        s.sendWindow.grant(f.increment, f.streamId);
        if (s.pending.length > 0 || s.pendingEnd) {
          this.ready.add(s);
          this.pump();
        }
        return;
    }
  }

  private onEnd(s: MuxStream, status: MuxStream['status']): void {
    s.status = status;
    s.push(null);
    this.maybeRetire(s);
  }

  /**
   * The END_STREAM flag of a frame just handled: an END right after it. Nothing to do if handling
   * the frame refused, reset or closed the stream.
   */
  private endFromFlag(id: number): void {
    const s = this.streams.get(id);
    if (!s) return;
    const step = onInbound(s.status, 'end');
    // The frame carrying the flag passed the same checks, so this cannot fail short of a bug.
    if (!step.ok) throw new ProtocolError(`stream ${id}: ${step.reason}`, step.fatal ? {} : { streamId: id });
    this.onEnd(s, step.status);
  }

  private onOpen(id: number, json: Buffer): void {
    if (!this.isPeerId(id)) throw new ProtocolError(`peer opened stream ${id}, whose id belongs to this side`);
    if (id <= this.lastPeerId) throw new ProtocolError(`peer reopened stream ${id} (ids must increase)`);
    this.lastPeerId = id;
    if (this._state !== 'open') {
      this.reply({ kind: 'reset', streamId: id, code: StreamError.REFUSED_STREAM, message: 'going away' });
      return;
    }
    if (this.peerOpen >= this.local.maxConcurrentStreams) {
      this.reply({ kind: 'reset', streamId: id, code: StreamError.REFUSED_STREAM, message: 'too many concurrent streams' });
      return;
    }
    let head: RequestHead;
    try {
      head = parseRequestHead(json, id);
    } catch (e) {
      this.reply({ kind: 'reset', streamId: id, code: StreamError.PROTOCOL_ERROR, message: (e as Error).message });
      return;
    }
    if (this.listenerCount('stream') === 0) {
      this.reply({ kind: 'reset', streamId: id, code: StreamError.REFUSED_STREAM, message: 'this side accepts no streams' });
      return;
    }
    const s = new MuxStream(this, id, 'responder', head, { send: this.remote.initialWindow, recv: this.local.initialWindow, ...this.tuningFor() });
    this.streams.set(id, s);
    this.peerOpen++;
    this.emit('stream', s);
  }

  private onGoAway(g: GoAway): void {
    this.receivedGoAway = g;
    if (this._state === 'open') this._state = 'draining';
    // Streams we opened above the peer's last processed id were never seen: fail them as retryable.
    // One the peer has answered was seen, whatever the GOAWAY says: it goes on (failing it as
    // "refused", retryable with any method, could have sent a non-idempotent request twice).
    for (const s of [...this.streams.values()]) {
      if (s.role === 'initiator' && s.id > g.lastStreamId && !this.isPeerId(s.id) && !s.status.responseReceived) {
        this.endWith(s, new StreamResetError({ code: StreamError.REFUSED_STREAM, message: 'the peer is going away', by: 'peer', beforeResponse: true }));
      }
    }
    this.emit('goaway', g);
  }

  // ---- sending ----------------------------------------------------------------------------------

  private sendReset(s: MuxStream, code: number, message: string): void {
    if (canSend(s.status, 'reset')) {
      s.status = onOutbound(s.status, 'reset');
      this.enqueue({ kind: 'reset', streamId: s.id, code, message: this.resetMessage(message) });
    }
    this.retire(s);
  }

  /** Frames pending DATA round-robin while the transport has room. */
  private pump(): void {
    if (this.pumping || this._state === 'closed') return;
    this.pumping = true;
    const done: Array<(err?: Error | null) => void> = [];
    try {
      const maxFrame = this.remote.maxFrameSize;
      while (this.ready.size > 0 && this.transport.bufferedAmount + this.out.queuedBytes < this.highWaterMark) {
        const s = this.ready.shift()!;
        if (this.sendSome(s, maxFrame, done)) this.ready.add(s); // re-added at the end: round robin
      }
    } finally {
      this.pumping = false;
    }
    for (const cb of done) cb();
  }

  /**
   * Sends one DATA frame (or the END) of a stream; returns whether it has more to send now. Queued
   * chunks are joined into one frame up to the credit and the peer's frame size; the pieces stay
   * separate buffers until flush() assembles the message (no extra copy).
   */
  private sendSome(s: MuxStream, maxFrame: number, done: Array<(err?: Error | null) => void>): boolean {
    if (!this.streams.has(s.id)) return false;
    if (s.pending.length > 0) {
      let room = Math.min(s.sendWindow.size, maxFrame);
      if (room === 0) return false; // out of credit; a WINDOW frame re-adds it
      const parts: Buffer[] = []; // the payload pieces; the header goes in front once n is known
      let n = 0;
      while (room > 0 && s.pending.length > 0) {
        const head = s.pending[0]!;
        const take = Math.min(head.chunk.length - head.offset, room);
        parts.push(head.offset === 0 && take === head.chunk.length ? head.chunk : head.chunk.subarray(head.offset, head.offset + take));
        head.offset += take;
        n += take;
        room -= take;
        if (head.offset === head.chunk.length) {
          s.pending.shift();
          done.push(head.cb);
        }
      }
      s.sendWindow.spend(n);
      // Joins the stream's DATA frame still in the unsent message, if it can.
      if (!this.out.extend(s.tail, parts, n, maxFrame)) {
        parts.unshift(encodeHeader(FrameType.DATA, s.id, n));
        this.enqueueStreamParts(s, parts);
      }
      return s.pending.length > 0 ? s.sendWindow.size > 0 : s.pendingEnd !== undefined;
    }
    const end = s.pendingEnd;
    if (end) {
      s.pendingEnd = undefined;
      s.status = onOutbound(s.status, 'end');
      // The stream's last frame is still in the unsent message: the END rides on it as a flag.
      if (!(this.endFlag && this.out.flagEnd(s.tail, s.tailBatch))) this.enqueue({ kind: 'end', streamId: s.id });
      s.tail = undefined;
      this.maybeRetire(s);
      done.push(end);
    }
    return false;
  }

  /** A frame the peer made this side send (see repliesWaiting). */
  private reply(f: Frame & { kind: 'pong' | 'reset' }): void {
    if (f.kind === 'reset') f.message = this.resetMessage(f.message);
    this.repliesWaiting += FRAME_HEADER_SIZE + (f.kind === 'pong' ? f.data.length : 4 + Buffer.byteLength(f.message));
    this.enqueue(f);
  }

  private enqueue(f: Frame): void {
    this.out.enqueue(encodeFrameParts(f));
  }

  /**
   * Queues an OPEN, RESPONSE or DATA frame ([header, ...payload]) of `s`, and remembers where its
   * header sits while it is unsent: an END that follows before the flush can be a flag on it (with
   * END_STREAM flags in use, see sendSome), and more data can join it (FrameWriter.extend).
   */
  private enqueueStreamParts(s: MuxStream, parts: Buffer[]): void {
    s.tailBatch = this.out.enqueueTracked(parts);
    s.tail = s.tailBatch < 0 ? undefined : parts[0];
  }

  // ---- bookkeeping ------------------------------------------------------------------------------

  private maybeRetire(s: MuxStream): void {
    if (s.status.state === 'closed') this.retire(s);
  }

  private tuningFor(): { tuning?: WindowTuning } {
    return this.tuning ? { tuning: this.tuning } : {};
  }

  /** Retires `s` and destroys it, both with `err` (its queued writes fail with it too). */
  private endWith(s: MuxStream, err: StreamResetError): void {
    this.retire(s, err);
    s.destroy(err);
  }

  /**
   * `cause`: why the stream ends, given to writes still queued. The stream's Writable destroys
   * itself with the first error a write callback gets, and ignores the one passed to destroy()
   * after it: a generic error there hid a lost tunnel or a refused stream from the relay, which
   * then neither retried an idempotent request elsewhere nor said the connector was lost.
   */
  private retire(s: MuxStream, cause?: Error): void {
    if (!this.streams.delete(s.id)) return;
    this.grownBytes -= s.recvWindow.grown;
    this.ready.delete(s);
    if (s.role === 'initiator') this.localOpen--;
    else this.peerOpen--;
    // Only a stream retired with writes still queued needs the error (built lazily: retiring is the
    // common, clean end of every stream, and an Error with its stack trace is not free).
    if (s.pending.length > 0 || s.pendingEnd) {
      const err = cause ?? new UemlinkError('TUNNEL_STREAM_RESET', `stream ${s.id} was reset`);
      for (const p of s.pending) p.cb(err);
      s.pending = [];
      if (s.pendingEnd) {
        const cb = s.pendingEnd;
        s.pendingEnd = undefined;
        cb(err);
      }
    }
    if (this.streams.size === 0) this.emit('idle');
  }

  /** The heartbeat's interval passed (heartbeat.ts has the rule). */
  private heartbeat(): void {
    if (this._state === 'closed') return;
    const t = this.hb.tick();
    if (t.kind === 'dead') this.fail('HEARTBEAT_TIMEOUT', 'no answer from the peer for two heartbeat intervals');
    else this.ping(t.data);
  }

  private ping(data: Buffer): void {
    if (this._state === 'closed') return;
    this.enqueue({ kind: 'ping', data });
    this.out.flush();
  }

  private finish(info: SessionClose): void {
    if (this._state === 'closed') return;
    this._state = 'closed';
    if (this.hbTimer !== undefined) this.clock.clearInterval(this.hbTimer);
    this.out.close();
    for (const s of [...this.streams.values()]) {
      const beforeResponse = s.role === 'initiator' && !s.status.responseReceived;
      this.endWith(s, new StreamResetError({ code: StreamError.TUNNEL_CLOSED, message: info.reason || 'tunnel closed', by: info.local ? 'local' : 'peer', beforeResponse }));
    }
    this.emit('close', info);
  }
}

/** A WebSocket close reason is at most 123 bytes of UTF-8; cut on a character boundary. */
export function closeReason(s: string): string {
  let out = s;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

/** Routes a transport's events into a session (the handshake may have used the transport before). */
export function attachTransport(
  session: MuxSession,
  transport: { setHandlers(h: { message(d: Buffer): void; activity?(): void; drain(): void; close(code: number, reason: string): void }): void },
): void {
  transport.setHandlers({
    message: (d) => session.onMessage(d),
    activity: () => session.onActivity(),
    drain: () => session.onDrain(),
    close: (code, reason) => session.onTransportClose(code, reason),
  });
}

/** `s` within `max` UTF-16 code units (as the peer counts a GOAWAY message), not splitting a surrogate pair. */
function fitChars(s: string, max: number): string {
  if (s.length <= max) return s;
  const end = max > 0 && /[\ud800-\udbff]/.test(s[max - 1]!) ? max - 1 : max;
  return s.slice(0, end);
}
