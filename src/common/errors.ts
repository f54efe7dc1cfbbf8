/**
 * One place for uemlink's typed errors. Every error a user or a peer can see carries a stable string
 * `code` (listed in docs/errors.md); scripts and the cloud's code match on the code, never on the
 * message. `retryable` tells a supervisor whether trying again can help (cloudflared's "Permanent").
 */

export type ErrorCode =
  // configuration and local state
  | 'CONFIG_INVALID'
  | 'CONFIG_UNREADABLE'
  | 'STATE_CORRUPT'
  | 'STATE_INVALID'
  | 'STATE_UNREADABLE'
  | 'STATE_WRITE_FAILED'
  | 'STATE_LOCKED'
  | 'STATE_CHANGED'
  | 'ALREADY_RUNNING'
  // pairing
  | 'PAIR_TOKEN_MALFORMED'
  | 'PAIR_TOKEN_UNKNOWN'
  | 'PAIR_TOKEN_EXPIRED'
  | 'PAIR_TOKEN_USED'
  | 'PAIR_RATE_LIMITED'
  | 'PAIR_CSR_INVALID'
  | 'PAIR_ALREADY_PAIRED'
  | 'PAIR_NOT_PAIRED'
  | 'PAIR_FAILED'
  // tunnel
  | 'TUNNEL_PROTOCOL_ERROR'
  | 'TUNNEL_UNSUPPORTED_VERSION'
  | 'TUNNEL_AUTH_FAILED'
  | 'TUNNEL_REVOKED'
  | 'TUNNEL_OVERLOADED'
  | 'TUNNEL_CLOCK_SKEW'
  | 'TUNNEL_HANDSHAKE_TIMEOUT'
  | 'TUNNEL_HEARTBEAT_TIMEOUT'
  | 'TUNNEL_CLOSED'
  | 'TUNNEL_REPLACED'
  | 'TUNNEL_GOING_AWAY'
  | 'TUNNEL_DIAL_FAILED'
  | 'TUNNEL_STREAM_LIMIT'
  | 'TUNNEL_STREAM_RESET'
  | 'TUNNEL_FRAME_TOO_LARGE'
  // input of an API call or CLI command
  | 'INVALID_INPUT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'USAGE';

export class UemlinkError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UemlinkError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }

  /** The message as an API caller (a tenant) is shown it; a subclass leaves out what is the operator's (file paths). */
  get publicMessage(): string {
    return this.message;
  }
}

const FILE_PROBLEMS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOSPC: 'disk full',
  EROFS: 'read-only file system',
};

/**
 * What went wrong with a file, in words for the errno codes an admin meets (ENOENT, EACCES, ENOSPC,
 * EROFS); anything else as `fallback`, else its own message.
 */
export function fileProblem(e: unknown, fallback?: string): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return (code !== undefined ? FILE_PROBLEMS[code] : undefined) ?? fallback ?? messageOf(e);
}

/** Best-effort human message of anything thrown, without stack traces (they may carry paths, not secrets). */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
