/**
 * Constant-time comparison of secrets (tokens, passwords, CSRF tokens) given as strings.
 *
 * Both sides are hashed first, so the comparison takes the same time whatever their lengths and
 * wherever they differ, and it never throws: comparing Buffer.from() of two strings directly throws
 * when their UTF-8 byte lengths differ even if their string lengths are equal (e.g. "é" vs "ab").
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}
