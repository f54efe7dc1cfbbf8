/**
 * Tunnel frames: bytes <-> typed frames. Pure; no sockets, no clocks.
 *
 * One WebSocket binary message carries one or more whole frames back to back (the writer batches the
 * frames of one event-loop turn into a message). A frame never spans two messages.
 *
 *   0        1        2                                   6                                  10
 *  +--------+--------+-----------------------------------+-----------------------------------+---------
 *  | type   | flags  | stream id (u32, big-endian)       | payload length (u32, big-endian)  | payload
 *  +--------+--------+-----------------------------------+-----------------------------------+---------
 *    1      + 1      + 4                                 + 4                                 = 10 bytes
 *
 * Connection frames (HELLO .. CONTROL) use stream id 0; stream frames (OPEN .. WINDOW) a non-zero id.
 * Flags: protocol version 1 reserves them (senders write 0, receivers ignore them). From version 2,
 * bit 0x01 (END_STREAM) on OPEN, RESPONSE and DATA ends the sender's side of the stream after that
 * frame, as HTTP/2's flag of the same name does: a small exchange then takes 3 frames instead of 5.
 */
import { ProtocolError, StreamError } from './codes.js';

export const FRAME_HEADER_SIZE = 10;
export const MAX_STREAM_ID = 0x7fffffff;
export const MAX_WINDOW = 0x7fffffff;
/** Hard ceiling for any frame payload, whatever a peer announces (16 MiB). */
export const ABSOLUTE_MAX_FRAME = 16 * 1024 * 1024;
/** Longest RESET message we accept or send; longer ones are a protocol error, not a memory sink. */
export const MAX_RESET_MESSAGE = 1024;

/** `s` in UTF-8, cut to at most `maxBytes` at a character boundary (a cut inside one is invalid UTF-8 on the wire). */
export function utf8Prefix(s: string, maxBytes: number): Buffer {
  const b = Buffer.from(s.length > maxBytes ? s.slice(0, maxBytes) : s, 'utf8');
  if (b.length <= maxBytes) return b;
  let end = maxBytes;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--; // back to the first byte of the character cut
  return b.subarray(0, end);
}

/** Flag bits (second header byte); meaningful from protocol version 2 on OPEN, RESPONSE and DATA. */
export const FrameFlag = {
  END_STREAM: 0x01,
} as const;

export const FrameType = {
  HELLO: 0x01,
  AUTH: 0x02,
  WELCOME: 0x03,
  GOAWAY: 0x04,
  PING: 0x05,
  PONG: 0x06,
  CONTROL: 0x07,
  OPEN: 0x10,
  RESPONSE: 0x11,
  DATA: 0x12,
  END: 0x13,
  RESET: 0x14,
  WINDOW: 0x15,
} as const;

/** Frames whose payload is a UTF-8 JSON document (parsed and validated a layer up). */
export type JsonFrame =
  | { kind: 'hello'; json: Buffer }
  | { kind: 'auth'; json: Buffer }
  | { kind: 'welcome'; json: Buffer }
  | { kind: 'goaway'; json: Buffer }
  | { kind: 'control'; json: Buffer };

export type ConnectionFrame = JsonFrame | { kind: 'ping'; data: Buffer } | { kind: 'pong'; data: Buffer };

export type StreamFrame =
  | { kind: 'open'; streamId: number; json: Buffer; end?: boolean }
  | { kind: 'response'; streamId: number; json: Buffer; end?: boolean }
  | { kind: 'data'; streamId: number; data: Buffer; end?: boolean }
  | { kind: 'end'; streamId: number }
  | { kind: 'reset'; streamId: number; code: number; message: string }
  | { kind: 'window'; streamId: number; increment: number };

export type Frame = ConnectionFrame | StreamFrame;
export type FrameKind = Frame['kind'];

const TYPE_OF: Record<FrameKind, number> = {
  hello: FrameType.HELLO,
  auth: FrameType.AUTH,
  welcome: FrameType.WELCOME,
  goaway: FrameType.GOAWAY,
  ping: FrameType.PING,
  pong: FrameType.PONG,
  control: FrameType.CONTROL,
  open: FrameType.OPEN,
  response: FrameType.RESPONSE,
  data: FrameType.DATA,
  end: FrameType.END,
  reset: FrameType.RESET,
  window: FrameType.WINDOW,
};

export const PING_PAYLOAD_SIZE = 8;

export function isStreamFrame(f: Frame): f is StreamFrame {
  return 'streamId' in f;
}

/** Writes a frame header into a fresh buffer of FRAME_HEADER_SIZE bytes. */
export function encodeHeader(type: number, streamId: number, length: number, flags = 0): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  h[0] = type;
  h[1] = flags;
  h.writeUInt32BE(streamId, 2);
  h.writeUInt32BE(length, 6);
  return h;
}

/**
 * Encodes a frame as [header, payload] pieces so a writer can batch them into one message without
 * copying a large DATA payload twice.
 */
export function encodeFrameParts(frame: Frame): Buffer[] {
  const type = TYPE_OF[frame.kind];
  const streamId = isStreamFrame(frame) ? frame.streamId : 0;
  let payload: Buffer;
  switch (frame.kind) {
    case 'hello':
    case 'auth':
    case 'welcome':
    case 'goaway':
    case 'control':
    case 'open':
    case 'response':
      payload = frame.json;
      break;
    case 'ping':
    case 'pong':
    case 'data':
      payload = frame.data;
      break;
    case 'end':
      payload = Buffer.alloc(0);
      break;
    case 'reset': {
      const msg = utf8Prefix(frame.message, MAX_RESET_MESSAGE);
      payload = Buffer.allocUnsafe(4 + msg.length);
      payload.writeUInt32BE(frame.code >>> 0, 0);
      msg.copy(payload, 4);
      break;
    }
    case 'window':
      payload = Buffer.allocUnsafe(4);
      payload.writeUInt32BE(frame.increment, 0);
      break;
  }
  const end = (frame.kind === 'open' || frame.kind === 'response' || frame.kind === 'data') && frame.end === true;
  const header = encodeHeader(type, streamId, payload.length, end ? FrameFlag.END_STREAM : 0);
  return payload.length === 0 ? [header] : [header, payload];
}

export function encodeFrame(frame: Frame): Buffer {
  return Buffer.concat(encodeFrameParts(frame));
}

export function jsonPayload(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/**
 * Decodes every frame of one message. Throws ProtocolError for anything malformed: a truncated
 * header or payload, a payload above `maxFrameSize`, an unknown type, a stream frame on stream 0 or a
 * connection frame on a stream, or a fixed-size payload of the wrong size. Payloads are views into
 * `message` (no copy).
 */
export function decodeMessage(message: Buffer, maxFrameSize: number): Frame[] {
  const frames: Frame[] = [];
  let off = 0;
  if (message.length === 0) throw new ProtocolError('empty message');
  while (off < message.length) {
    if (message.length - off < FRAME_HEADER_SIZE) {
      throw new ProtocolError(`truncated frame header (${message.length - off} of ${FRAME_HEADER_SIZE} bytes)`);
    }
    const type = message[off]!;
    const streamId = message.readUInt32BE(off + 2);
    const length = message.readUInt32BE(off + 6);
    if (length > Math.min(maxFrameSize, ABSOLUTE_MAX_FRAME)) {
      throw new ProtocolError(`frame of ${length} bytes exceeds the limit of ${maxFrameSize}`, {
        streamId,
        streamError: StreamError.FRAME_SIZE_ERROR,
      });
    }
    const start = off + FRAME_HEADER_SIZE;
    if (message.length - start < length) {
      throw new ProtocolError(`truncated frame payload (${message.length - start} of ${length} bytes)`);
    }
    frames.push(decodeOne(type, message[off + 1]!, streamId, message.subarray(start, start + length)));
    off = start + length;
  }
  return frames;
}

/** `end` reflects the END_STREAM flag as sent; whether it counts depends on the session's version. */
function decodeOne(type: number, flags: number, streamId: number, p: Buffer): Frame {
  if (type < FrameType.OPEN) {
    if (streamId !== 0) throw new ProtocolError(`connection frame type 0x${type.toString(16)} on stream ${streamId}`);
  } else if (streamId === 0 || streamId > MAX_STREAM_ID) {
    throw new ProtocolError(`stream frame type 0x${type.toString(16)} with invalid stream id ${streamId}`);
  }
  switch (type) {
    case FrameType.HELLO:
      return { kind: 'hello', json: p };
    case FrameType.AUTH:
      return { kind: 'auth', json: p };
    case FrameType.WELCOME:
      return { kind: 'welcome', json: p };
    case FrameType.GOAWAY:
      return { kind: 'goaway', json: p };
    case FrameType.CONTROL:
      return { kind: 'control', json: p };
    case FrameType.PING:
    case FrameType.PONG:
      if (p.length !== PING_PAYLOAD_SIZE) throw new ProtocolError(`ping/pong payload of ${p.length} bytes (must be 8)`);
      return { kind: type === FrameType.PING ? 'ping' : 'pong', data: p };
    case FrameType.OPEN:
      return { kind: 'open', streamId, json: p, end: (flags & FrameFlag.END_STREAM) !== 0 };
    case FrameType.RESPONSE:
      return { kind: 'response', streamId, json: p, end: (flags & FrameFlag.END_STREAM) !== 0 };
    case FrameType.DATA:
      return { kind: 'data', streamId, data: p, end: (flags & FrameFlag.END_STREAM) !== 0 };
    case FrameType.END:
      if (p.length !== 0) throw new ProtocolError(`END frame with a ${p.length}-byte payload`, { streamId });
      return { kind: 'end', streamId };
    case FrameType.RESET:
      if (p.length < 4 || p.length > 4 + MAX_RESET_MESSAGE) {
        throw new ProtocolError(`RESET payload of ${p.length} bytes`, { streamId });
      }
      return { kind: 'reset', streamId, code: p.readUInt32BE(0), message: p.toString('utf8', 4) };
    case FrameType.WINDOW: {
      if (p.length !== 4) throw new ProtocolError(`WINDOW payload of ${p.length} bytes (must be 4)`, { streamId });
      const increment = p.readUInt32BE(0);
      if (increment === 0 || increment > MAX_WINDOW) {
        throw new ProtocolError(`WINDOW increment ${increment} out of range`, {
          streamId,
          streamError: StreamError.FLOW_CONTROL_ERROR,
        });
      }
      return { kind: 'window', streamId, increment };
    }
    default:
      throw new ProtocolError(`unknown frame type 0x${type.toString(16).padStart(2, '0')}`);
  }
}
