/**
 * Who is calling a tenant-scoped API: the admin (any tenant) or a tenant API key (its own tenant
 * only). Failures are counted per client address.
 */
import type { IncomingMessage } from 'node:http';
import { bearerToken, limiterKey } from './admin-auth.js';
import { matchesConfiguredSecret } from '../common/safe-equal.js';
import { tenantOfKey } from './api-keys.js';
import { ApiError } from './http-errors.js';
import type { FailureLimiter } from '../common/rate-limit.js';
import type { CloudStore } from './state.js';

export type Principal = { kind: 'admin' } | { kind: 'tenant'; tenant: string; keyId: string };

export interface PrincipalDeps {
  adminToken: string;
  store: CloudStore;
  limiter: FailureLimiter;
}

/** Resolves the caller or throws 401/429; does not check the tenant (see requireTenant). */
export async function principalOf(req: IncomingMessage, deps: PrincipalDeps): Promise<Principal> {
  const ip = limiterKey(req);
  const wait = deps.limiter.retryAfter(ip);
  if (wait > 0) throw new ApiError(429, 'rate_limited', 'too many failed attempts from this address; wait and retry', { 'Retry-After': String(Math.ceil(wait / 1000)) });
  const token = bearerToken(req.headers.authorization);
  if (!token) throw new ApiError(401, 'unauthorized', 'missing "Authorization: Bearer <admin token or tenant API key>" header', { 'WWW-Authenticate': 'Bearer' });
  if (matchesConfiguredSecret(token, deps.adminToken)) return { kind: 'admin' };
  // Counted before the lookup's await, forgiven if the key is good: guesses sent all at once are
  // each judged against the others (counted after, they were all judged against none).
  deps.limiter.fail(ip);
  let k: Awaited<ReturnType<typeof tenantOfKey>>;
  try {
    k = await tenantOfKey(deps.store, token);
  } catch (e) {
    deps.limiter.forgive(ip); // the state could not be read: not a wrong key
    throw e;
  }
  if (k) {
    deps.limiter.forgive(ip);
    return { kind: 'tenant', tenant: k.tenant, keyId: k.keyId };
  }
  throw new ApiError(401, 'unauthorized', 'the token is neither the admin token nor a live tenant API key', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
}

/** A tenant key may act on its own tenant only. */
export function requireTenant(p: Principal, tenant: string): void {
  if (p.kind === 'tenant' && p.tenant !== tenant) {
    throw new ApiError(403, 'forbidden', `this API key belongs to another tenant and cannot reach tenant "${tenant}"`);
  }
}
