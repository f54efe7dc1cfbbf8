/**
 * Hostile-input properties of the tunnel protocol, shared by the CI test
 * (test/hostile/protocol-fuzz.test.ts, a few hundred cases each) and the long fuzz run
 * (bench/fuzz.ts, >= 1,000,000 cases).
 *
 * Every property is synchronous: a session is driven by calling onMessage() directly with a sink
 * transport whose peer never reads (so anything the session queues stays counted). Checks throw a
 * plain Error; there is no chai here so the fuzz script runs outside mocha.
 *
 * What is asserted, whatever the peer sends:
 * - the decoder returns frames or throws ProtocolError, nothing else; what it returns re-encodes to
 *   the same bytes (flags aside);
 * - the session never throws out of onMessage; when it ends the tunnel, it is with a GOAWAY
 *   PROTOCOL_ERROR and close code 4010;
 * - the stream table stays within maxConcurrentStreams (+ the streams we opened), each stream
 *   buffers at most its receive window, and what waits to be sent stays under the outbound backlog
 *   cap plus one message's worth of replies;
 * - frames for streams the peer does not own end the tunnel; window overflow and data beyond the
 *   window reset just that stream; END/RESET/RESPONSE/DATA in any order never crash and leave no
 *   stream behind.
 */
import fc from 'fast-check';
import { CloseCode, ProtocolError, StreamError } from '../../src/protocol/codes.js';
import {
  ABSOLUTE_MAX_FRAME,
  FRAME_HEADER_SIZE,
  FrameFlag,
  FrameType,
  MAX_STREAM_ID,
  MAX_WINDOW,
  decodeMessage,
  encodeFrame,
  encodeHeader,
  jsonPayload,
  type Frame,
} from '../../src/protocol/frame.js';
import type { Limits, RequestHead } from '../../src/protocol/messages.js';
import { MuxSession, type Transport } from '../../src/protocol/session.js';
import type { MuxStream } from '../../src/protocol/stream.js';

// ---- harness ------------------------------------------------------------------------------------

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`property violated: ${what}`);
}

/** A transport whose peer never reads: bufferedAmount is everything ever sent. */
export class SinkTransport implements Transport {
  readonly messages: Buffer[] = [];
  bytes = 0;
  closed: { code: number; reason: string } | undefined;
  terminated = false;
  send(message: Buffer): void {
    if (this.closed || this.terminated) return;
    this.messages.push(message);
    this.bytes += message.length;
  }
  get bufferedAmount(): number {
    return this.bytes;
  }
  close(code: number, reason: string): void {
    this.closed ??= { code, reason };
  }
  terminate(): void {
    this.terminated = true;
  }
  frames(): Frame[] {
    const out: Frame[] = [];
    // The session must never emit a malformed frame: decoding its output must not throw.
    for (const m of this.messages) out.push(...decodeMessage(m, ABSOLUTE_MAX_FRAME));
    return out;
  }
}

/** The outbound backlog cap used by the harness (small, so a flood reaches it within one case). */
export const HARNESS_BACKLOG = 64 * 1024;
/**
 * The harness's high-water mark: replies count against the cap only while this much or more waits
 * to be sent (below it the peer is reading), so the bound on what waits is this plus the cap.
 */
export const HARNESS_HWM = 16 * 1024;
/** Largest reply one inbound frame can cause: a RESET with a 1024-byte message, per 10-byte frame. */
const REPLY_AMPLIFICATION = Math.ceil((FRAME_HEADER_SIZE + 4 + 1024) / FRAME_HEADER_SIZE);

interface SessionInternals {
  streams: Map<number, MuxStream>;
  /** The session's outbox (writer.ts). */
  out: { queuedBytes: number };
}
function internals(s: MuxSession): SessionInternals {
  return s as unknown as SessionInternals;
}

export interface Harness {
  session: MuxSession;
  sink: SinkTransport;
  local: Limits;
  /** Ids this side opened (cloud role). */
  ownIds: number[];
  /** Ids the peer opened (connector role), valid or not. */
  peerIds: number[];
  /** Next id the peer may legally open. */
  nextPeerId: number;
  /** Streams handed to the 'stream' listener. */
  accepted: MuxStream[];
  /** Bytes of the largest message sent in so far. */
  maxIn: number;
  baseOut: number;
}

export const validHead = (i = 0): RequestHead => ({ method: 'GET', path: `/p/${i}`, headers: [['accept', '*/*']], target: 't1' });

export function makeHarness(
  role: 'cloud' | 'connector',
  local: Limits,
  opts: { ownStreams?: number; reader?: 'none' | 'flowing'; respond?: boolean; version?: number } = {},
): Harness {
  const sink = new SinkTransport();
  const session = new MuxSession({ role, transport: sink, local, remote: local, heartbeatMs: 0, maxOutboundBacklog: HARNESS_BACKLOG, highWaterMark: HARNESS_HWM, version: opts.version ?? 1 });
  const h: Harness = { session, sink, local, ownIds: [], peerIds: [], nextPeerId: role === 'cloud' ? 2 : 1, accepted: [], maxIn: 0, baseOut: 0 };
  session.on('stream', (st) => {
    st.on('error', () => {});
    h.accepted.push(st);
    if (opts.reader === 'flowing') st.resume();
    if (opts.respond) {
      st.respond({ status: 200, headers: [['content-type', 'text/plain']] });
      st.end('ok');
    }
  });
  if (role === 'cloud') {
    for (let i = 0; i < (opts.ownStreams ?? 0); i++) {
      const st = session.openStream(validHead(i));
      st.on('error', () => {});
      if (opts.reader === 'flowing') st.resume();
      h.ownIds.push(st.id);
    }
  }
  // What the session queued before the peer said anything (our own OPENs) does not count as replies.
  h.baseOut = sink.bytes + internals(session).out.queuedBytes;
  return h;
}

/** Feeds one message and checks the invariants that must hold after every message. */
export function feed(h: Harness, msg: Buffer): void {
  h.maxIn = Math.max(h.maxIn, msg.length);
  try {
    h.session.onMessage(msg);
  } catch (e) {
    throw new Error(`property violated: onMessage threw ${(e as Error)?.stack ?? String(e)}`);
  }
  invariants(h);
}

export function invariants(h: Harness): void {
  const s = h.session;
  const st = internals(s).streams;
  check(s.activeStreams <= h.local.maxConcurrentStreams + h.ownIds.length, `stream table bounded (${s.activeStreams} > ${h.local.maxConcurrentStreams} + ${h.ownIds.length})`);
  for (const x of st.values()) {
    check(x.readableLength <= h.local.initialWindow, `stream ${x.id} buffers ${x.readableLength} bytes, more than its window ${h.local.initialWindow}`);
  }
  const waiting = h.sink.bytes + internals(s).out.queuedBytes;
  const bound = h.baseOut + HARNESS_HWM + HARNESS_BACKLOG + REPLY_AMPLIFICATION * h.maxIn + 4096;
  check(waiting <= bound, `outbound backlog bounded (${waiting} > ${bound})`);
  if (s.state === 'closed') {
    check(h.sink.closed !== undefined || h.sink.terminated, 'a closed session closed its transport');
    check(h.sink.closed?.code === CloseCode.PROTOCOL_ERROR, `closed with PROTOCOL_ERROR (got ${JSON.stringify(h.sink.closed)})`);
  }
}

/** Ends the case: close, then check what the session sent is well-formed and consistent. */
export function finish(h: Harness): Frame[] {
  const wasClosed = h.session.state === 'closed';
  try {
    if (!wasClosed) h.session.close();
  } catch (e) {
    throw new Error(`property violated: close threw ${(e as Error)?.stack ?? String(e)}`);
  }
  const frames = h.sink.frames();
  if (wasClosed) {
    const g = frames.filter((f) => f.kind === 'goaway');
    check(g.length >= 1, 'a GOAWAY precedes a protocol-error close');
    const last = JSON.parse((g[g.length - 1] as Extract<Frame, { kind: 'goaway' }>).json.toString('utf8')) as { code: string };
    check(last.code === 'PROTOCOL_ERROR', `GOAWAY code PROTOCOL_ERROR (got ${last.code})`);
  }
  check(h.session.activeStreams === 0, 'no stream survives the session');
  const resetOnce = new Set<number>();
  for (const f of frames) {
    if (f.kind === 'reset') {
      check(!resetOnce.has(f.streamId) || h.peerIds.includes(f.streamId), `stream ${f.streamId} reset twice`);
      resetOnce.add(f.streamId);
    }
  }
  return frames;
}

// ---- arbitraries --------------------------------------------------------------------------------

const smallLimits: fc.Arbitrary<Limits> = fc.record({
  maxFrameSize: fc.constantFrom(1024, 4096, 65536),
  maxConcurrentStreams: fc.integer({ min: 1, max: 8 }),
  initialWindow: fc.integer({ min: 1024, max: 16384 }),
});

const jsonDoc = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).map((v) => jsonPayload(v)),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc.constant(Buffer.alloc(0)),
);

const goodHead = fc
  .record({ method: fc.constantFrom('GET', 'POST', 'DELETE', 'X'), path: fc.constantFrom('/', '/a', '/a/b?c=1'), target: fc.constantFrom('t1', 'x') })
  .map((r) => jsonPayload({ ...r, headers: [['a', 'b']] }));
const badHead = fc.oneof(
  jsonDoc,
  fc.constant(jsonPayload({ method: 'GET', path: 'no-slash', headers: [], target: 't' })),
  fc.constant(jsonPayload({ method: 'G E T', path: '/', headers: [], target: 't' })),
  fc.constant(jsonPayload({ method: 'GET', path: '/', headers: [['bad name', 'v']], target: 't' })),
  fc.constant(jsonPayload({ method: 'GET', path: '/', headers: 'x', target: '' })),
);
const goodResponse = fc.integer({ min: 100, max: 599 }).map((status) => jsonPayload({ status, headers: [['x', 'y']] }));
const badResponse = fc.oneof(jsonDoc, fc.constant(jsonPayload({ status: 42, headers: [] })), fc.constant(jsonPayload({ status: 200 })));

/** Which stream a hostile frame names, resolved against the harness when the case runs. */
type IdSel =
  | { k: 'known'; i: number } // one of ours or one the peer opened (may be closed by now)
  | { k: 'next' } // the next id the peer may open
  | { k: 'ownUnopened' } // our parity, never opened
  | { k: 'peerUnopened' } // the peer's parity, above anything it opened
  | { k: 'any'; id: number };
const idSel: fc.Arbitrary<IdSel> = fc.oneof(
  { weight: 6, arbitrary: fc.nat(16).map((i) => ({ k: 'known', i }) as IdSel) },
  { weight: 2, arbitrary: fc.constant({ k: 'next' } as IdSel) },
  { weight: 1, arbitrary: fc.constant({ k: 'ownUnopened' } as IdSel) },
  { weight: 1, arbitrary: fc.constant({ k: 'peerUnopened' } as IdSel) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: MAX_STREAM_ID }).map((id) => ({ k: 'any', id }) as IdSel) },
);

type DataLen = { k: 'n'; n: number } | { k: 'window' } | { k: 'windowPlus' } | { k: 'max' };
const dataLen: fc.Arbitrary<DataLen> = fc.oneof(
  { weight: 5, arbitrary: fc.nat(2048).map((n) => ({ k: 'n', n }) as DataLen) },
  { weight: 2, arbitrary: fc.constant({ k: 'n', n: 0 } as DataLen) },
  { weight: 1, arbitrary: fc.constant({ k: 'window' } as DataLen) },
  { weight: 1, arbitrary: fc.constant({ k: 'windowPlus' } as DataLen) },
  { weight: 1, arbitrary: fc.constant({ k: 'max' } as DataLen) },
);

/** END_STREAM on OPEN, RESPONSE and DATA (honoured at version 2, ignored at 1). */
const endFlag = fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) });

/** A hostile frame, before its stream id is resolved. */
export type Act =
  | { t: 'open'; id: IdSel; json: Buffer; end?: boolean }
  | { t: 'response'; id: IdSel; json: Buffer; end?: boolean }
  | { t: 'data'; id: IdSel; len: DataLen; end?: boolean }
  | { t: 'end'; id: IdSel }
  | { t: 'reset'; id: IdSel; code: number; msg: string }
  | { t: 'window'; id: IdSel; inc: number }
  | { t: 'conn'; f: Frame };

const act: fc.Arbitrary<Act> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ id: idSel, json: fc.oneof({ weight: 3, arbitrary: goodHead }, { weight: 1, arbitrary: badHead }), end: endFlag }).map((r) => ({ t: 'open', ...r }) as Act) },
  { weight: 2, arbitrary: fc.record({ id: idSel, json: fc.oneof({ weight: 3, arbitrary: goodResponse }, { weight: 1, arbitrary: badResponse }), end: endFlag }).map((r) => ({ t: 'response', ...r }) as Act) },
  { weight: 4, arbitrary: fc.record({ id: idSel, len: dataLen, end: endFlag }).map((r) => ({ t: 'data', ...r }) as Act) },
  { weight: 2, arbitrary: idSel.map((id) => ({ t: 'end', id }) as Act) },
  { weight: 1, arbitrary: fc.record({ id: idSel, code: fc.nat(12), msg: fc.string({ maxLength: 20 }) }).map((r) => ({ t: 'reset', ...r }) as Act) },
  {
    weight: 2,
    arbitrary: fc
      .record({ id: idSel, inc: fc.oneof(fc.integer({ min: 1, max: 65536 }), fc.constant(MAX_WINDOW), fc.integer({ min: 1, max: MAX_WINDOW })) })
      .map((r) => ({ t: 'window', ...r }) as Act),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.uint8Array({ minLength: 8, maxLength: 8 }).map((d) => ({ t: 'conn', f: { kind: 'ping', data: Buffer.from(d) } }) as Act),
      fc.uint8Array({ minLength: 8, maxLength: 8 }).map((d) => ({ t: 'conn', f: { kind: 'pong', data: Buffer.from(d) } }) as Act),
      jsonDoc.map((j) => ({ t: 'conn', f: { kind: 'control', json: j } }) as Act),
      fc.constantFrom('hello', 'auth', 'welcome').map((k) => ({ t: 'conn', f: { kind: k, json: jsonPayload({}) } as Frame }) as Act),
      fc
        .record({ code: fc.constantFrom('SHUTTING_DOWN', 'PROTOCOL_ERROR', 'NOPE'), lastStreamId: fc.nat(20) })
        .map((g) => ({ t: 'conn', f: { kind: 'goaway', json: jsonPayload({ ...g, message: 'bye' }) } }) as Act),
    ),
  },
);

/** One WebSocket message: 1-4 hostile frames, optionally with a few bytes overwritten. */
export interface Msg {
  acts: Act[];
  flips: Array<[number, number]>;
  /** Replace the whole message with these random bytes. */
  raw: Buffer | undefined;
}
const msgArb: fc.Arbitrary<Msg> = fc.record({
  acts: fc.array(act, { minLength: 1, maxLength: 4 }),
  flips: fc.oneof({ weight: 5, arbitrary: fc.constant([] as Array<[number, number]>) }, { weight: 1, arbitrary: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 3 }) }),
  raw: fc.oneof({ weight: 12, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) }),
});

function resolveId(h: Harness, sel: IdSel, forOpen: boolean): number {
  const known = [...h.ownIds, ...h.peerIds];
  const ownParityStart = h.session.role === 'cloud' ? 1 : 2;
  switch (sel.k) {
    case 'known':
      if (known.length === 0) return forOpen ? h.nextPeerId : ownParityStart;
      return known[sel.i % known.length]!;
    case 'next':
      return h.nextPeerId;
    case 'ownUnopened':
      return Math.max(ownParityStart, ...h.ownIds) + 2 * (h.ownIds.length > 0 ? 1 : 0) + 200;
    case 'peerUnopened':
      return h.nextPeerId + 400;
    case 'any':
      return sel.id;
  }
}

const ZERO = Buffer.alloc(ABSOLUTE_MAX_FRAME >> 4); // 1 MiB of zeros, sliced for DATA payloads

function toFrame(h: Harness, a: Act): Frame {
  switch (a.t) {
    case 'conn':
      return a.f;
    case 'open': {
      const id = resolveId(h, a.id, true);
      const peerParity = h.session.role === 'cloud' ? id % 2 === 0 : id % 2 === 1;
      if (peerParity && id >= h.nextPeerId) {
        h.peerIds.push(id);
        h.nextPeerId = id + 2;
      }
      return { kind: 'open', streamId: id, json: a.json, end: a.end === true };
    }
    case 'response':
      return { kind: 'response', streamId: resolveId(h, a.id, false), json: a.json, end: a.end === true };
    case 'data': {
      const w = h.local.initialWindow;
      const n = a.len.k === 'n' ? a.len.n : a.len.k === 'window' ? w : a.len.k === 'windowPlus' ? w + 1 : h.local.maxFrameSize;
      return { kind: 'data', streamId: resolveId(h, a.id, false), data: ZERO.subarray(0, Math.min(n, h.local.maxFrameSize)), end: a.end === true };
    }
    case 'end':
      return { kind: 'end', streamId: resolveId(h, a.id, false) };
    case 'reset':
      return { kind: 'reset', streamId: resolveId(h, a.id, false), code: a.code, message: a.msg };
    case 'window':
      return { kind: 'window', streamId: resolveId(h, a.id, false), increment: a.inc };
  }
}

export function encodeMsg(h: Harness, m: Msg): Buffer {
  if (m.raw) return m.raw;
  const b = Buffer.concat(m.acts.map((a) => encodeFrame(toFrame(h, a))));
  for (const [i, v] of m.flips) b[i % b.length] = v;
  return b;
}

// ---- properties ---------------------------------------------------------------------------------

export interface NamedProperty {
  name: string;
  /** Share of the fuzz run's cases (the CI test runs a fixed small number of each). */
  weight: number;
  property: fc.IProperty<any>;
}

/** 1. Random and mutated bytes: decode or ProtocolError; decoded frames re-encode to the same bytes. */
const decoderRandom = fc.property(
  fc.oneof(
    fc.uint8Array({ maxLength: 96 }).map((a) => Buffer.from(a)),
    fc
      .tuple(
        fc.array(
          fc.tuple(fc.nat(0x20), fc.oneof(fc.constant(0), fc.nat(3), fc.constant(MAX_STREAM_ID + 1), fc.constant(0xffffffff)), fc.uint8Array({ maxLength: 24 })),
          { minLength: 1, maxLength: 4 },
        ),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }),
      )
      .map(([frames, flips]) => {
        const b = Buffer.concat(frames.map(([type, id, p]) => Buffer.concat([encodeHeader(type, id, p.length), Buffer.from(p)])));
        for (const [i, v] of flips) b[i % b.length] = v;
        return b;
      }),
  ),
  (msg) => {
    let frames: Frame[];
    try {
      frames = decodeMessage(msg, 1024);
    } catch (e) {
      check(e instanceof ProtocolError, `decoder threw ${(e as Error)?.name}: ${(e as Error)?.message}, not a ProtocolError`);
      return;
    }
    check(frames.length > 0, 'a decoded message has frames');
    let off = 0;
    for (const f of frames) {
      const enc = encodeFrame(f);
      const orig = Buffer.from(msg.subarray(off, off + enc.length));
      // Reserved flag bits are ignored on receipt; END_STREAM is kept on the frames that carry it.
      orig[1] = f.kind === 'open' || f.kind === 'response' || f.kind === 'data' ? orig[1]! & FrameFlag.END_STREAM : 0;
      if (f.kind !== 'reset') check(enc.equals(orig), `frame ${f.kind} re-encodes to the bytes it came from`);
      off += FRAME_HEADER_SIZE + msg.readUInt32BE(off + 6);
    }
    check(off === msg.length, 'the frames cover the whole message');
  },
);

/** 2. Zero-length and maximal frames of every type: a frame of maxFrameSize passes the size check, one byte more fails on the header alone. */
const decoderLimits = fc.property(
  fc.constantFrom(...Object.values(FrameType), 0x00, 0x08, 0x16, 0xff),
  fc.constantFrom(1024, 65536, 1 << 20),
  fc.constantFrom('zero', 'max', 'over', 'huge'),
  (type, maxFrame, size) => {
    const id = type >= FrameType.OPEN ? 1 : 0;
    const len = size === 'zero' ? 0 : size === 'max' ? maxFrame : size === 'over' ? maxFrame + 1 : 0xffffffff;
    // Oversized ones carry no payload at all: the header alone must be refused (length-checked before allocation).
    const msg = len > maxFrame ? encodeHeader(type, id, len) : Buffer.concat([encodeHeader(type, id, len), ZERO.subarray(0, len)]);
    try {
      const [f] = decodeMessage(msg, maxFrame);
      check(len <= maxFrame, 'an oversized frame is refused');
      check(f !== undefined, 'a frame');
    } catch (e) {
      check(e instanceof ProtocolError, 'only ProtocolError');
      if (len > maxFrame) check(/exceeds the limit/.test((e as Error).message), `oversized refused by size: ${(e as Error).message}`);
      else check(!/exceeds the limit/.test((e as Error).message), 'a frame of exactly maxFrameSize is not refused for its size');
    }
  },
);

/** 3. A hostile peer's random/mutated message sequences against a live session (both roles). */
const sessionHostile = fc.property(
  fc.constantFrom('cloud', 'connector') as fc.Arbitrary<'cloud' | 'connector'>,
  smallLimits,
  fc.nat(4),
  fc.constantFrom('none', 'flowing') as fc.Arbitrary<'none' | 'flowing'>,
  fc.boolean(),
  fc.array(msgArb, { minLength: 1, maxLength: 12 }),
  fc.constantFrom(1, 2),
  (role, limits, own, reader, respond, msgs, version) => {
    const h = makeHarness(role, limits, { ownStreams: Math.min(own, limits.maxConcurrentStreams), reader, respond, version });
    for (const m of msgs) {
      if (h.session.state === 'closed') break;
      feed(h, encodeMsg(h, m));
    }
    finish(h);
  },
);

/** 4. Frames for streams the peer does not own (never opened, or our parity) end the tunnel. */
const notOwned = fc.property(
  fc.constantFrom('cloud', 'connector') as fc.Arbitrary<'cloud' | 'connector'>,
  fc.constantFrom('response', 'data', 'end', 'reset', 'window', 'open-our-parity', 'open-reused'),
  fc.constantFrom('ownUnopened', 'peerUnopened') as fc.Arbitrary<'ownUnopened' | 'peerUnopened'>,
  fc.nat(3),
  (role, kind, which, own) => {
    const h = makeHarness(role, { maxFrameSize: 4096, maxConcurrentStreams: 8, initialWindow: 4096 }, { ownStreams: own });
    // Some legal traffic first, so the session has state to lose.
    if (role === 'connector') for (let i = 0; i < own; i++) feed(h, encodeMsg(h, { acts: [{ t: 'open', id: { k: 'next' }, json: jsonPayload(validHead(i)) }], flips: [], raw: undefined }));
    let f: Frame;
    if (kind === 'open-our-parity') f = { kind: 'open', streamId: resolveId(h, { k: 'ownUnopened' }, true), json: jsonPayload(validHead()) };
    else if (kind === 'open-reused') {
      if (h.peerIds.length === 0) return; // nothing to reuse yet
      f = { kind: 'open', streamId: h.peerIds[0]!, json: jsonPayload(validHead()) };
    } else {
      const id: IdSel = { k: which };
      const a: Act =
        kind === 'data'
          ? { t: 'data', id, len: { k: 'n', n: 10 } }
          : kind === 'window'
            ? { t: 'window', id, inc: 10 }
            : kind === 'reset'
              ? { t: 'reset', id, code: 7, msg: '' }
              : kind === 'response'
                ? { t: 'response', id, json: jsonPayload({ status: 200, headers: [] }) }
                : { t: 'end', id };
      f = toFrame(h, a);
    }
    feed(h, encodeFrame(f));
    check(h.session.state === 'closed', `${kind} for a stream the peer does not own (${f.kind} ${(f as { streamId: number }).streamId}) ends the tunnel`);
    finish(h);
  },
);

/** 5. Window overflow and DATA beyond the window reset that stream only. */
const windows = fc.property(
  fc.constantFrom('cloud', 'connector') as fc.Arbitrary<'cloud' | 'connector'>,
  fc.integer({ min: 1024, max: 65536 }),
  fc.constantFrom('overflow', 'beyond'),
  fc.array(fc.integer({ min: 1, max: MAX_WINDOW }), { minLength: 1, maxLength: 4 }),
  fc.array(fc.integer({ min: 0, max: 4096 }), { minLength: 1, maxLength: 40 }),
  (role, window, mode, incs, sizes) => {
    const h = makeHarness(role, { maxFrameSize: 4096, maxConcurrentStreams: 4, initialWindow: window }, { ownStreams: 2, reader: 'none' });
    if (role === 'connector') {
      feed(h, encodeMsg(h, { acts: [{ t: 'open', id: { k: 'next' }, json: jsonPayload(validHead(0)) }, { t: 'open', id: { k: 'next' }, json: jsonPayload(validHead(1)) }], flips: [], raw: undefined }));
    } else {
      for (const id of h.ownIds) feed(h, encodeFrame({ kind: 'response', streamId: id, json: jsonPayload({ status: 200, headers: [] }) }));
    }
    const ids = role === 'cloud' ? h.ownIds : h.peerIds;
    const victim = ids[0]!;
    const bystander = ids[1]!;
    const streams = internals(h.session).streams;
    check(streams.has(victim) && streams.has(bystander), 'both streams open');
    let expectReset: boolean;
    if (mode === 'overflow') {
      // Our send window starts at the peer's initialWindow (= window here).
      let total = window;
      expectReset = false;
      for (const inc of incs) {
        feed(h, encodeFrame({ kind: 'window', streamId: victim, increment: inc }));
        total += inc;
        if (total > MAX_WINDOW) {
          expectReset = true;
          break;
        }
      }
    } else {
      let total = 0;
      expectReset = false;
      for (const n of sizes) {
        feed(h, encodeFrame({ kind: 'data', streamId: victim, data: ZERO.subarray(0, n) }));
        total += n;
        if (total > window) {
          expectReset = true;
          break;
        }
      }
    }
    check(h.session.state === 'open', 'a flow-control error is a stream error, not a tunnel error');
    check(streams.has(bystander), 'the other stream is untouched');
    check(streams.has(victim) === !expectReset, `victim stream ${expectReset ? 'reset' : 'still open'}`);
    const frames = finish(h);
    if (expectReset) {
      check(
        frames.some((f) => f.kind === 'reset' && f.streamId === victim && f.code === StreamError.FLOW_CONTROL_ERROR),
        'RESET FLOW_CONTROL_ERROR sent for the victim',
      );
    }
  },
);

/**
 * 6. RESPONSE, DATA, END, RESET in any order on one stream (with END_STREAM flags on RESPONSE and
 * DATA, honoured at version 2): never a crash, never a stuck stream.
 */
const ordering = fc.property(
  fc.constantFrom('cloud', 'connector') as fc.Arbitrary<'cloud' | 'connector'>,
  fc.array(fc.constantFrom('response', 'response-end', 'data', 'data-end', 'data0', 'end', 'reset', 'window'), { minLength: 1, maxLength: 8 }),
  fc.boolean(),
  fc.constantFrom(1, 2),
  (role, order, respond, version) => {
    const h = makeHarness(role, { maxFrameSize: 4096, maxConcurrentStreams: 4, initialWindow: 8192 }, { ownStreams: 1, reader: 'flowing', respond, version });
    if (role === 'connector') feed(h, encodeMsg(h, { acts: [{ t: 'open', id: { k: 'next' }, json: jsonPayload(validHead()) }], flips: [], raw: undefined }));
    const id = role === 'cloud' ? h.ownIds[0]! : h.peerIds[0]!;
    let fatal = false;
    for (const k of order) {
      if (h.session.state === 'closed') break;
      const f: Frame =
        k === 'response' || k === 'response-end'
          ? { kind: 'response', streamId: id, json: jsonPayload({ status: 200, headers: [] }), end: k === 'response-end' }
          : k === 'data' || k === 'data-end'
            ? { kind: 'data', streamId: id, data: Buffer.from('x'), end: k === 'data-end' }
            : k === 'data0'
              ? { kind: 'data', streamId: id, data: Buffer.alloc(0) }
              : k === 'end'
                ? { kind: 'end', streamId: id }
                : k === 'reset'
                  ? { kind: 'reset', streamId: id, code: StreamError.CANCEL, message: 'x' }
                  : { kind: 'window', streamId: id, increment: 1 };
      // Only a RESPONSE sent to the responder of a live stream is a connection-level error.
      const live = internals(h.session).streams.has(id);
      if ((k === 'response' || k === 'response-end') && role === 'connector' && live) fatal = true;
      feed(h, encodeFrame(f));
      if (fatal) break;
    }
    check(h.session.state === (fatal ? 'closed' : 'open'), `session ${fatal ? 'closed' : 'open'} after ${order.join(',')}`);
    finish(h);
  },
);

/** 7. A peer that floods PINGs or refused OPENs and never reads: the session ends rather than buffer for ever. */
const flood = fc.property(
  fc.constantFrom('ping', 'open-refused', 'bad-head'),
  fc.integer({ min: 100, max: 2000 }),
  (kind, perMessage) => {
    const h = makeHarness('connector', { maxFrameSize: 65536, maxConcurrentStreams: 1, initialWindow: 4096 }, { reader: 'none' });
    let closedAt = -1;
    for (let m = 0; m < 2000 && h.session.state !== 'closed'; m++) {
      const frames: Frame[] = [];
      for (let i = 0; i < perMessage; i++) {
        if (kind === 'ping') frames.push({ kind: 'ping', data: Buffer.alloc(8, i & 0xff) });
        else {
          const id = h.nextPeerId;
          h.nextPeerId += 2;
          h.peerIds.push(id);
          frames.push({ kind: 'open', streamId: id, json: kind === 'bad-head' ? Buffer.from('{') : jsonPayload(validHead(i)) });
        }
      }
      feed(h, Buffer.concat(frames.map(encodeFrame)));
      if ((h.session.state as string) === 'closed') closedAt = m;
    }
    check(closedAt >= 0, `${kind} flood ends the tunnel`);
    check(/does not read/.test(h.sink.closed?.reason ?? ''), `closed because the peer does not read (${h.sink.closed?.reason})`);
    finish(h);
  },
);

export const PROPERTIES: NamedProperty[] = [
  { name: 'decoder: random and mutated bytes', weight: 30, property: decoderRandom },
  { name: 'decoder: zero-length, maximal and oversized frames of every type', weight: 4, property: decoderLimits },
  { name: 'session: random hostile message sequences (both roles)', weight: 40, property: sessionHostile },
  { name: 'session: frames for streams the peer does not own end the tunnel', weight: 8, property: notOwned },
  { name: 'session: window overflow / data beyond the window reset that stream only', weight: 10, property: windows },
  { name: 'session: RESPONSE/DATA/END/RESET in any order', weight: 8, property: ordering },
  { name: 'session: ping / refused-open floods from a peer that never reads are cut off', weight: 0.05, property: flood },
];
