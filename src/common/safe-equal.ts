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
 * safeEqual for a long-lived configured secret (the admin token) checked on every request: its digest
 * is computed once and kept, halving the hashing per call (8 % of the cloud's CPU per small relayed
 * call, docs/performance.md). Only a handful of such secrets exist; the cache is bounded anyway.
 */
const configured = new Map<string, Buffer>();
export function matchesConfiguredSecret(given: string, secret: string): boolean {
  let h = configured.get(secret);
  if (!h) {
    if (configured.size >= 16) configured.clear();
    h = hash('sha256', secret, 'buffer');
    configured.set(secret, h);
  }
  // crypto.hash (one shot) rather than createHash(): no Hash object per call on the relay's hot path.
  return timingSafeEqual(hash('sha256', given, 'buffer'), h);
}
