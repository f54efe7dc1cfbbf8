import { expect } from 'chai';
import fc from 'fast-check';
import { ProtocolError, StreamError } from '../../src/protocol/codes.js';
import {
  FRAME_HEADER_SIZE,
  FrameFlag,
  FrameType,
  decodeMessage,
  encodeFrame,
  encodeHeader,
  type Frame,
} from '../../src/protocol/frame.js';

const MAX = 64 * 1024;
const streamId = fc.integer({ min: 1, max: 0x7fffffff });
const bytes = (max = 2048) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const json = fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v)));

export const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  json.map((j) => ({ kind: 'hello', json: j }) as Frame),
  json.map((j) => ({ kind: 'auth', json: j }) as Frame),
  json.map((j) => ({ kind: 'welcome', json: j }) as Frame),
  json.map((j) => ({ kind: 'goaway', json: j }) as Frame),
  json.map((j) => ({ kind: 'control', json: j }) as Frame),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((d) => ({ kind: 'ping', data: Buffer.from(d) }) as Frame),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((d) => ({ kind: 'pong', data: Buffer.from(d) }) as Frame),
  fc.record({ streamId, json, end: fc.boolean() }).map((r) => ({ kind: 'open', ...r }) as Frame),
  fc.record({ streamId, json, end: fc.boolean() }).map((r) => ({ kind: 'response', ...r }) as Frame),
  fc.record({ streamId, data: bytes(), end: fc.boolean() }).map((r) => ({ kind: 'data', ...r }) as Frame),
  streamId.map((id) => ({ kind: 'end', streamId: id }) as Frame),
  fc
    .record({ streamId, code: fc.integer({ min: 0, max: 0xffffffff }), message: fc.string({ maxLength: 100 }) })
    .map((r) => ({ kind: 'reset', ...r }) as Frame),
  fc.record({ streamId, increment: fc.integer({ min: 1, max: 0x7fffffff }) }).map((r) => ({ kind: 'window', ...r }) as Frame),
);

function normalise(f: Frame): unknown {
  // Buffers compare by content.
  return JSON.parse(JSON.stringify(f));
}

describe('frames', () => {
  it('round-trip: decode(encode(frames)) is the same frames, batched in one message', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), (frames) => {
        const msg = Buffer.concat(frames.map(encodeFrame));
        const back = decodeMessage(msg, MAX);
        expect(back.map(normalise)).to.deep.equal(frames.map(normalise));
      }),
      { numRuns: 500 },
    );
  });

  it('a truncated header is a protocol error', () => {
    const f = encodeFrame({ kind: 'end', streamId: 3 });
    expect(() => decodeMessage(f.subarray(0, FRAME_HEADER_SIZE - 1), MAX)).to.throw(ProtocolError, /truncated frame header/);
  });

  it('a truncated payload is a protocol error, at every cut point', () => {
    fc.assert(
      fc.property(frameArb, fc.nat(), (frame, cut) => {
        const full = encodeFrame(frame);
        if (full.length <= FRAME_HEADER_SIZE) return;
        const at = FRAME_HEADER_SIZE + (cut % (full.length - FRAME_HEADER_SIZE));
        expect(() => decodeMessage(full.subarray(0, at), MAX)).to.throw(ProtocolError, /truncated/);
      }),
      { numRuns: 300 },
    );
  });

  it('an oversized frame is refused by its header, before any payload is read', () => {
    const h = encodeHeader(FrameType.DATA, 1, MAX + 1);
    try {
      decodeMessage(h, MAX);
      expect.fail('should throw');
    } catch (e) {
      expect(e).to.be.instanceOf(ProtocolError);
      expect((e as ProtocolError).streamError).to.equal(StreamError.FRAME_SIZE_ERROR);
      expect((e as ProtocolError).message).to.match(/exceeds the limit/);
    }
  });

  it('an unknown frame type is a protocol error naming the type', () => {
    const msg = Buffer.concat([encodeHeader(0x42, 1, 0)]);
    expect(() => decodeMessage(msg, MAX)).to.throw(ProtocolError, /unknown frame type 0x42/);
  });

  it('stream frames on stream 0 and connection frames on a stream are refused', () => {
    expect(() => decodeMessage(encodeHeader(FrameType.DATA, 0, 0), MAX)).to.throw(ProtocolError, /invalid stream id 0/);
    expect(() => decodeMessage(encodeHeader(FrameType.HELLO, 5, 0), MAX)).to.throw(ProtocolError, /connection frame/);
    expect(() => decodeMessage(encodeHeader(FrameType.DATA, 0x80000000, 0), MAX)).to.throw(ProtocolError, /invalid stream id/);
  });

  it('fixed-size payloads of the wrong size are refused', () => {
    const w = Buffer.concat([encodeHeader(FrameType.WINDOW, 1, 3), Buffer.alloc(3)]);
    expect(() => decodeMessage(w, MAX)).to.throw(ProtocolError, /WINDOW payload of 3 bytes/);
    const z = Buffer.concat([encodeHeader(FrameType.WINDOW, 1, 4), Buffer.alloc(4)]);
    expect(() => decodeMessage(z, MAX)).to.throw(ProtocolError, /increment 0/);
    const p = Buffer.concat([encodeHeader(FrameType.PING, 0, 7), Buffer.alloc(7)]);
    expect(() => decodeMessage(p, MAX)).to.throw(ProtocolError, /ping\/pong payload of 7/);
    const e = Buffer.concat([encodeHeader(FrameType.END, 1, 1), Buffer.alloc(1)]);
    expect(() => decodeMessage(e, MAX)).to.throw(ProtocolError, /END frame/);
  });

  it('END_STREAM is bit 0x01 of the flags byte on OPEN, RESPONSE and DATA; other bits and other frames carry none', () => {
    const data = encodeFrame({ kind: 'data', streamId: 5, data: Buffer.from('x'), end: true });
    expect(data[1]).to.equal(FrameFlag.END_STREAM);
    expect(encodeFrame({ kind: 'open', streamId: 5, json: Buffer.from('{}') })[1]).to.equal(0);
    const flagged = (type: number, flags: number, payload: Buffer): Buffer => {
      const h = encodeHeader(type, 5, payload.length, flags);
      return Buffer.concat([h, payload]);
    };
    const [d] = decodeMessage(flagged(FrameType.DATA, 0xfe, Buffer.from('x')), MAX);
    expect(d).to.include({ kind: 'data', end: false });
    const [r] = decodeMessage(flagged(FrameType.RESPONSE, 0xff, Buffer.from('{}')), MAX);
    expect(r).to.include({ kind: 'response', end: true });
    // Flags on frames that do not define them are still ignored, as in version 1.
    expect(decodeMessage(flagged(FrameType.END, 0xff, Buffer.alloc(0)), MAX)).to.deep.equal([{ kind: 'end', streamId: 5 }]);
    expect(decodeMessage(flagged(FrameType.WINDOW, 0x01, Buffer.from([0, 0, 1, 0])), MAX)).to.deep.equal([{ kind: 'window', streamId: 5, increment: 256 }]);
  });

  it('an empty message is a protocol error', () => {
    expect(() => decodeMessage(Buffer.alloc(0), MAX)).to.throw(ProtocolError, /empty/);
  });

  it('random and mutated bytes decode or fail with a ProtocolError, never anything else', () => {
    const mutated = fc
      .tuple(fc.array(frameArb, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }))
      .map(([frames, flips]) => {
        const b = Buffer.concat(frames.map(encodeFrame));
        for (const [i, v] of flips) b[i % b.length] = v;
        return b;
      });
    fc.assert(
      fc.property(fc.oneof(bytes(64), mutated), (msg) => {
        try {
          const frames = decodeMessage(msg, MAX);
          expect(frames.length).to.be.greaterThan(0);
          for (const f of frames) expect(f.kind).to.be.a('string');
        } catch (e) {
          expect(e).to.be.instanceOf(ProtocolError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
