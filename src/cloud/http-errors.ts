/**
 * HTTP errors of the cloud API: always JSON `{"error": code, "message": text}` with a stable,
 * lower-case code (docs/errors.md). Internal details stay in the log.
 */
import type { ErrorRequestHandler, Response } from 'express';
import { UemlinkError, type ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/log.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const MAP: Partial<Record<ErrorCode, [number, string]>> = {
  PAIR_TOKEN_MALFORMED: [400, 'token_malformed'],
  PAIR_TOKEN_UNKNOWN: [401, 'token_unknown'],
  PAIR_TOKEN_EXPIRED: [401, 'token_expired'],
  PAIR_TOKEN_USED: [409, 'token_used'],
  PAIR_RATE_LIMITED: [429, 'rate_limited'],
  PAIR_CSR_INVALID: [400, 'csr_invalid'],
  STATE_LOCKED: [503, 'busy'],
  INVALID_INPUT: [400, 'bad_request'],
  NOT_FOUND: [404, 'not_found'],
};

export function toApiError(e: unknown): ApiError | undefined {
  if (e instanceof ApiError) return e;
  if (e instanceof UemlinkError) {
    const m = MAP[e.code];
    if (m) return new ApiError(m[0], m[1], e.message);
  }
  return undefined;
}

export function sendError(res: Response, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.status(err.status).json({ error: err.code, message: err.message });
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const e = err as { type?: string; status?: number };
    // body-parser's own errors: bad JSON, body too large.
    if (e?.type === 'entity.parse.failed') return sendError(res, new ApiError(400, 'bad_json', 'the request body is not valid JSON'));
    if (e?.type === 'entity.too.large') return sendError(res, new ApiError(413, 'too_large', 'the request body is too large'));
    const api = toApiError(err);
    if (api) return sendError(res, api);
    logger.error('request failed', { method: req.method, path: req.path, err });
    sendError(res, new ApiError(500, 'internal', 'internal error; the cloud log has the details'));
  };
}
