/** Bearer-token checks for the cloud's admin API, with failure rate limiting per client address. */
import type { RequestHandler } from 'express';
import { ApiError, sendError } from './http-errors.js';
import { sourceOf, type FailureLimiter } from '../common/rate-limit.js';
import { matchesConfiguredSecret } from '../common/safe-equal.js';

/** Compares two secrets in time independent of where they differ (hashing equalises lengths). */
export { safeEqual } from '../common/safe-equal.js';

export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header ?? '');
  return m?.[1];
}

export function clientAddress(req: { socket: { remoteAddress?: string | undefined } }): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/** What failure limits count a client under: its IPv4 address, or its IPv6 /64 (sourceOf). */
export function limiterKey(req: { socket: { remoteAddress?: string | undefined } }): string {
  return sourceOf(req.socket.remoteAddress) || 'unknown';
}

export function requireAdmin(adminToken: string, limiter: FailureLimiter): RequestHandler {
  return (req, res, next) => {
    const ip = limiterKey(req);
    const wait = limiter.retryAfter(ip);
    if (wait > 0) {
      return sendError(res, new ApiError(429, 'rate_limited', 'too many failed attempts from this address; wait and retry', { 'Retry-After': String(Math.ceil(wait / 1000)) }));
    }
    const token = bearerToken(req.headers.authorization);
    if (!token) {
      return sendError(res, new ApiError(401, 'unauthorized', 'missing "Authorization: Bearer <admin token>" header', { 'WWW-Authenticate': 'Bearer' }));
    }
    if (!matchesConfiguredSecret(token, adminToken)) {
      limiter.fail(ip);
      return sendError(res, new ApiError(401, 'unauthorized', 'the admin token is not valid', { 'WWW-Authenticate': 'Bearer error="invalid_token"' }));
    }
    next();
  };
}
