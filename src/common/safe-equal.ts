/**
 * Constant-time comparison of secrets (tokens, passwords, CSRF tokens) given as strings.
 *
 * Both sides are hashed first, so the comparison takes the same time whatever their lengths and
 * wherever they differ, and it never throws: comparing Buffer.from() of two strings directly throws
 * when their UTF-8 byte lengths differ even if their string lengths are equal (e.g. "é" vs "ab").
 */
import { hash, timingSafeEqual } from 'node:crypto';

export function safeEqual(a: string, b: string): boolean {
  const ha = hash('sha256', a, 'buffer');
  const hb = hash('sha256', b, 'buffer');
  return timingSafeEqual(ha, hb);
}

/**
 * safeEqual for a long-lived configured secret (the admin token) checked on every request. Its
 * bytes are kept and compared with timingSafeEqual directly: hashing the presented token cost
 * 4-8 % of the cloud's CPU per small relayed call (docs/performance.md). A token of another length
 * is refused at once: a caller can learn the configured token's length (at least 16 characters),
 * never its bytes. Only a handful of such secrets exist; the cache is bounded anyway.
 */
const configured = new Map<string, Buffer>();
export function matchesConfiguredSecret(given: string, secret: string): boolean {
  let s = configured.get(secret);
  if (!s) {
    if (configured.size >= 16) configured.clear();
    s = Buffer.from(secret, 'utf8');
    configured.set(secret, s);
  }
  const g = Buffer.from(given, 'utf8');
  return g.length === s.length && timingSafeEqual(g, s);
}
