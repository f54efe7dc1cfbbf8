/**
 * The JSON documents carried by HELLO, AUTH, WELCOME, GOAWAY, CONTROL, OPEN and RESPONSE frames, with
 * their validation. Handshake documents are rare and validated with zod; stream heads are on the hot
 * path and validated by hand.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ProtocolError, StreamError, isGoAwayCode, type GoAwayCode } from './codes.js';
import { ABSOLUTE_MAX_FRAME, MAX_WINDOW } from './frame.js';

/**
 * Targets one connector serves at most (local ones, and cloud-managed ones of its group, each):
 * their id lists travel in one JSON frame each (HELLO, the `targets` and `target.sync` CONTROL
 * messages, never split), and 2 × 200 ids of 64 characters fit the smallest frame a uemlink side
 * accepts (32 KiB). Receivers take up to 1000 (§4.1).
 */
export const MAX_TARGETS_PER_CONNECTOR = 200;

/** A handshake frame (HELLO, AUTH) is read up to this size whatever the frame limit: HELLO lists the targets. */
export const HANDSHAKE_FRAME_BYTES = 128 * 1024;

/** The protocol versions this build speaks. A peer outside this range is refused with a reason. */
export const PROTOCOL_MIN = 1;
export const PROTOCOL_MAX = 2;

export const LimitsSchema = z.object({
  maxFrameSize: z.number().int().min(1024).max(ABSOLUTE_MAX_FRAME),
  maxConcurrentStreams: z.number().int().min(1).max(1_000_000),
  initialWindow: z.number().int().min(1024).max(MAX_WINDOW),
});
export type Limits = z.infer<typeof LimitsSchema>;

export const DEFAULT_LIMITS: Limits = {
  maxFrameSize: 64 * 1024,
  maxConcurrentStreams: 1024,
  initialWindow: 1024 * 1024,
};

export const CloudHelloSchema = z.object({
  protocol: z.object({ min: z.number().int().min(1), max: z.number().int().min(1) }),
  software: z.string().max(200),
  nonce: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes of base64url'),
  limits: LimitsSchema,
  heartbeatMs: z.number().int().min(0).max(600_000),
});
export type CloudHello = z.infer<typeof CloudHelloSchema>;

export const ConnectorHelloSchema = z.object({
  protocol: z.number().int().min(1),
  software: z.string().max(200),
  hostname: z.string().max(255),
  connectorId: z.string().regex(/^cn_[0-9a-f]{20}$/, 'must be a connector id'),
  limits: LimitsSchema,
  heartbeatMs: z.number().int().min(0).max(600_000),
  targets: z.array(z.string().max(64)).max(1000),
  /** A diagnostic probe: authenticate and close; the live session (if any) is not replaced. */
  probe: z.boolean().optional(),
});
export type ConnectorHello = z.infer<typeof ConnectorHelloSchema>;

export const AuthSchema = z.object({
  alg: z.literal('rsa-sha256'),
  signature: z.string().regex(/^[A-Za-z0-9_-]+$/).max(2048),
});
export type Auth = z.infer<typeof AuthSchema>;

export const WelcomeSchema = z.object({
  sessionId: z.string().max(100),
  epoch: z.number().int().min(1),
  connectorId: z.string(),
  tenant: z.string(),
  group: z.string(),
  serverTime: z.string(),
});
export type Welcome = z.infer<typeof WelcomeSchema>;

export interface GoAway {
  code: GoAwayCode;
  message: string;
  /** Highest stream id of the receiver's that the sender will still process. */
  lastStreamId: number;
  /** Storm control: do not redial before this many milliseconds. */
  retryAfterMs?: number;
}
const GoAwaySchema = z.object({
  code: z.string().refine(isGoAwayCode, 'unknown GOAWAY code'),
  message: z.string().max(1024),
  lastStreamId: z.number().int().min(0),
  retryAfterMs: z.number().int().min(0).max(3_600_000).optional(),
});

/** Parses a handshake document; a bad one is a connection-level protocol error naming the frame. */
export function parseJson<T>(schema: z.ZodType<T>, bytes: Buffer, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ProtocolError(`${what}: payload is not JSON`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ProtocolError(`${what}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return r.data;
}

export function parseGoAway(bytes: Buffer): GoAway {
  const g = parseJson(GoAwaySchema, bytes, 'GOAWAY');
  const out: GoAway = { code: g.code as GoAwayCode, message: g.message, lastStreamId: g.lastStreamId };
  if (g.retryAfterMs !== undefined) out.retryAfterMs = g.retryAfterMs;
  return out;
}

/** Highest protocol version both sides speak, or undefined. */
export function negotiateVersion(peer: { min: number; max: number }): number | undefined {
  const v = Math.min(peer.max, PROTOCOL_MAX);
  return v >= Math.max(peer.min, PROTOCOL_MIN) ? v : undefined;
}

/**
 * The bytes a connector signs to prove possession of its key: a context label, the cloud's fresh
 * nonce (so an old signature cannot be replayed) and the SHA-256 of the exact HELLO bytes it sent
 * (so nobody can alter its id, limits or targets in flight).
 */
export function authMessage(nonce: Buffer, connectorHelloBytes: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from('uemlink-tunnel-auth-v1\0', 'utf8'),
    nonce,
    createHash('sha256').update(connectorHelloBytes).digest(),
  ]);
}

// ---- stream heads (hot path: hand-validated) ------------------------------------------------

export type HeaderList = Array<[string, string]>;

export interface RequestHead {
  method: string;
  /** Path and query, relative to the target's base URL, always starting with "/". */
  path: string;
  headers: HeaderList;
  /** The connector-side target id the request is for. */
  target: string;
  /** Lets the connector recognise a replayed non-idempotent request (see docs/protocol.md). */
  idempotencyKey?: string;
  /** How long the cloud will wait; the connector aborts the upstream call past it. */
  timeoutMs?: number;
  /** Tenant the request was made for; the connector checks it against its own. */
  tenant?: string;
  /**
   * The request has a body of unknown length (the client sent it chunked). Without it, a GET,
   * HEAD, OPTIONS or DELETE with no Content-Length is taken to have no body.
   */
  body?: true;
}

export interface ResponseHead {
  status: number;
  headers: HeaderList;
}

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Header pairs a request or response head may carry (§5). */
export const MAX_HEAD_PAIRS = 500;

function headerList(v: unknown, streamId: number): HeaderList {
  if (!Array.isArray(v) || v.length > MAX_HEAD_PAIRS) throw headError(streamId, `headers must be a list of at most ${MAX_HEAD_PAIRS} pairs`);
  for (const pair of v) {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== 'string' ||
      typeof pair[1] !== 'string' ||
      !TOKEN_RE.test(pair[0])
    ) {
      throw headError(streamId, 'each header must be a [name, value] pair of strings with a valid name');
    }
  }
  return v as HeaderList;
}

function headError(streamId: number, msg: string): ProtocolError {
  return new ProtocolError(msg, { streamId, streamError: StreamError.PROTOCOL_ERROR });
}

function parseObject(bytes: Buffer, streamId: number): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw headError(streamId, 'head is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw headError(streamId, 'head must be an object');
  return raw as Record<string, unknown>;
}

export function parseRequestHead(bytes: Buffer, streamId: number): RequestHead {
  const o = parseObject(bytes, streamId);
  const { method, path, target } = o;
  if (typeof method !== 'string' || !TOKEN_RE.test(method) || method.length > 32) throw headError(streamId, 'invalid method');
  if (typeof path !== 'string' || !path.startsWith('/') || path.length > 16384) throw headError(streamId, 'invalid path');
  if (typeof target !== 'string' || target.length === 0 || target.length > 64) throw headError(streamId, 'invalid target');
  const head: RequestHead = { method, path, target, headers: headerList(o.headers, streamId) };
  if (o.idempotencyKey !== undefined) {
    if (typeof o.idempotencyKey !== 'string' || o.idempotencyKey.length > 128) throw headError(streamId, 'invalid idempotencyKey');
    head.idempotencyKey = o.idempotencyKey;
  }
  if (o.timeoutMs !== undefined) {
    if (!Number.isInteger(o.timeoutMs) || (o.timeoutMs as number) < 1) throw headError(streamId, 'invalid timeoutMs');
    head.timeoutMs = o.timeoutMs as number;
  }
  if (o.tenant !== undefined) {
    if (typeof o.tenant !== 'string') throw headError(streamId, 'invalid tenant');
    head.tenant = o.tenant;
  }
  if (o.body !== undefined) {
    if (o.body !== true) throw headError(streamId, 'invalid body flag');
    head.body = true;
  }
  return head;
}

export function parseResponseHead(bytes: Buffer, streamId: number): ResponseHead {
  const o = parseObject(bytes, streamId);
  const { status } = o;
  // A final answer: informational (1xx) heads are not relayed (undici handles or refuses them), and a
  // 1xx here would be written to the client as if final, or make a fetch Response throw.
  if (!Number.isInteger(status) || (status as number) < 200 || (status as number) > 599) throw headError(streamId, 'invalid status');
  return { status: status as number, headers: headerList(o.headers, streamId) };
}
