/**
 * The pairing string an admin pastes: one line that carries the cloud's URL and a single-use secret.
 *
 *   ulpt1.<base64url(cloud URL)>.<id: 12 chars>.<secret: 43 chars = 256 random bits>
 *
 * The id lets the cloud find the token without comparing secrets; the secret is stored only as its
 * SHA-256 and compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { UemlinkError } from './errors.js';

const PREFIX = 'ulpt1';
const ID_RE = /^[A-Za-z0-9_-]{12}$/;
const SECRET_RE = /^[A-Za-z0-9_-]{43}$/;

export interface PairingToken {
  cloudUrl: string;
  id: string;
  secret: string;
}

export function mintPairingToken(cloudUrl: string): { token: string; id: string; hash: string } {
  const id = randomBytes(9).toString('base64url');
  const secret = randomBytes(32).toString('base64url');
  const token = `${PREFIX}.${Buffer.from(cloudUrl, 'utf8').toString('base64url')}.${id}.${secret}`;
  return { token, id, hash: hashSecret(secret) };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Parses a pasted token; whitespace and line breaks around it are forgiven. */
export function parsePairingToken(input: string): PairingToken {
  const s = input.trim();
  const bad = (why: string) => new UemlinkError('PAIR_TOKEN_MALFORMED', `malformed pairing token: ${why}`);
  const parts = s.split('.');
  if (parts[0] !== PREFIX) throw bad(`it should start with "${PREFIX}."; copy the whole string the cloud issued`);
  if (parts.length !== 4) throw bad('it has missing or extra parts; copy the whole string, on one line');
  const [, urlPart, id, secret] = parts as [string, string, string, string];
  if (!ID_RE.test(id) || !SECRET_RE.test(secret)) throw bad('it is truncated or altered');
  let cloudUrl: string;
  try {
    cloudUrl = Buffer.from(urlPart, 'base64url').toString('utf8');
    const u = new URL(cloudUrl);
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) throw new Error('scheme');
  } catch {
    throw bad('the cloud address inside it is not a valid URL');
  }
  return { cloudUrl, id, secret };
}
