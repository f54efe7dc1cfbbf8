/**
 * HTTP errors of the cloud API: always JSON `{"error": code, "message": text}` with a stable,
 * lower-case code (docs/errors.md). Internal details stay in the log.
 */
import type { ErrorRequestHandler, Response } from 'express';
import type { ApiErrorCode } from '../common/api-codes.js';
import { UemlinkError, type ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/log.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const MAP: Partial<Record<ErrorCode, [number, ApiErrorCode]>> = {
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
    if (m) return new ApiError(m[0], m[1], e.publicMessage);
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
    const api = toApiError(err) ?? clientError(err);
    if (api) return sendError(res, api);
    logger.error('request failed', { method: req.method, path: req.path, err });
    sendError(res, new ApiError(500, 'internal', 'internal error; the cloud log has the details'));
  };
}

/**
 * What Express and body-parser throw for a request that is the client's fault, as the API's JSON
 * error: they carry a 4xx `status` (http-errors), which a 500 used to hide (and logged as ours).
 */
function clientError(err: unknown): ApiError | undefined {
  const e = err as { type?: unknown; status?: unknown; expose?: unknown; message?: unknown };
  if (e?.type === 'entity.parse.failed') return new ApiError(400, 'bad_json', 'the request body is not valid JSON');
  if (e?.type === 'entity.too.large') return new ApiError(413, 'too_large', 'the request body is too large');
  if (e?.type === 'charset.unsupported') return new ApiError(415, 'unsupported_media_type', 'the request body must be JSON in UTF-8 (Content-Type: application/json; charset=utf-8)');
  if (e?.type === 'encoding.unsupported') return new ApiError(415, 'unsupported_media_type', 'the request body\'s Content-Encoding is not supported (send identity, gzip, deflate or br)');
  // The router decodes path parameters while matching, before any handler (or credentials check).
  if (err instanceof URIError) return new ApiError(400, 'bad_path', 'the request path is not valid percent-encoding');
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && e.expose === true) {
    // A corrupt compressed body, an aborted or mis-sized one: body-parser's own wording names it.
    return new ApiError(e.status, 'bad_request', `the request body could not be read: ${typeof e.message === 'string' ? e.message : 'unreadable'}`);
  }
  return undefined;
}
