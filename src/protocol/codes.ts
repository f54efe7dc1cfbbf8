/**
 * Numeric codes carried on the wire, and the WebSocket close codes the tunnel uses.
 * docs/protocol.md lists them; never renumber one that has shipped.
 */
import { UemlinkError, type ErrorCode } from '../common/errors.js';

/** Stream error codes, carried in RESET frames (u32). */
export const StreamError = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  STREAM_CLOSED: 4,
  FRAME_SIZE_ERROR: 5,
  REFUSED_STREAM: 6,
  CANCEL: 7,
  TIMEOUT: 8,
  TUNNEL_CLOSED: 9,
} as const;

export function streamErrorName(code: number): string {
  for (const [name, value] of Object.entries(StreamError)) if (value === code) return name;
  return `UNKNOWN_${code}`;
}

/**
 * WebSocket close codes (RFC 6455 leaves 4000-4999 to applications). A connector treats the
 * "permanent" ones as a reason to stop redialling until an admin acts.
 */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  REPLACED: 4001,
  AUTH_FAILED: 4003,
  REVOKED: 4004,
  UNSUPPORTED_VERSION: 4008,
  HEARTBEAT_TIMEOUT: 4009,
  PROTOCOL_ERROR: 4010,
  HANDSHAKE_TIMEOUT: 4011,
  CLOCK_SKEW: 4012,
  OVERLOADED: 4029,
} as const;

/** GOAWAY codes (strings in the GOAWAY JSON) with the close code and JS error code they map to. */
export const GoAwayCodes = {
  SHUTTING_DOWN: { close: CloseCode.GOING_AWAY, error: 'TUNNEL_GOING_AWAY', permanent: false },
  REPLACED: { close: CloseCode.REPLACED, error: 'TUNNEL_REPLACED', permanent: false },
  AUTH_FAILED: { close: CloseCode.AUTH_FAILED, error: 'TUNNEL_AUTH_FAILED', permanent: true },
  REVOKED: { close: CloseCode.REVOKED, error: 'TUNNEL_REVOKED', permanent: true },
  UNSUPPORTED_VERSION: { close: CloseCode.UNSUPPORTED_VERSION, error: 'TUNNEL_UNSUPPORTED_VERSION', permanent: false },
  HEARTBEAT_TIMEOUT: { close: CloseCode.HEARTBEAT_TIMEOUT, error: 'TUNNEL_HEARTBEAT_TIMEOUT', permanent: false },
  PROTOCOL_ERROR: { close: CloseCode.PROTOCOL_ERROR, error: 'TUNNEL_PROTOCOL_ERROR', permanent: false },
  HANDSHAKE_TIMEOUT: { close: CloseCode.HANDSHAKE_TIMEOUT, error: 'TUNNEL_HANDSHAKE_TIMEOUT', permanent: false },
  OVERLOADED: { close: CloseCode.OVERLOADED, error: 'TUNNEL_OVERLOADED', permanent: false },
  /** The connector's certificate is not valid yet by the cloud's clock (a clock stepped back): retried when it is. */
  CLOCK_SKEW: { close: CloseCode.CLOCK_SKEW, error: 'TUNNEL_CLOCK_SKEW', permanent: false },
} as const satisfies Record<string, { close: number; error: ErrorCode; permanent: boolean }>;
export type GoAwayCode = keyof typeof GoAwayCodes;

export function isGoAwayCode(s: unknown): s is GoAwayCode {
  return typeof s === 'string' && Object.hasOwn(GoAwayCodes, s);
}

/** Map a close code back to the GOAWAY code that produced it (for peers that only saw the close). */
export function goAwayCodeForClose(close: number): GoAwayCode | undefined {
  for (const [name, v] of Object.entries(GoAwayCodes)) if (v.close === close) return name as GoAwayCode;
  return undefined;
}

/** A violation of the framing or stream rules. Always ends the tunnel (connection-level) or a stream. */
export class ProtocolError extends UemlinkError {
  /** The stream the violation belongs to, or 0 when it is connection-level. */
  readonly streamId: number;
  readonly streamError: number;
  constructor(message: string, opts: { streamId?: number; streamError?: number } = {}) {
    super('TUNNEL_PROTOCOL_ERROR', message);
    this.name = 'ProtocolError';
    this.streamId = opts.streamId ?? 0;
    this.streamError = opts.streamError ?? StreamError.PROTOCOL_ERROR;
  }
}

/** A stream ended by a RESET (either side) or by the tunnel going away. */
export class StreamResetError extends UemlinkError {
  readonly streamError: number;
  /** True when no response byte had arrived yet: an idempotent request may be retried elsewhere. */
  readonly beforeResponse: boolean;
  /**
   * `by`: which side ended the stream (the peer's RESET or tunnel close, or this side's). Named
   * options: two positional booleans could not be read at a call site.
   */
  constructor(o: { code: number; message: string; by: 'peer' | 'local'; beforeResponse: boolean }) {
    super(
      o.code === StreamError.TUNNEL_CLOSED ? 'TUNNEL_CLOSED' : 'TUNNEL_STREAM_RESET',
      `${o.by === 'peer' ? 'peer reset the stream' : 'stream reset'} (${streamErrorName(o.code)})${o.message ? `: ${o.message}` : ''}`,
      { retryable: o.beforeResponse },
    );
    this.name = 'StreamResetError';
    this.streamError = o.code;
    this.beforeResponse = o.beforeResponse;
  }
}
