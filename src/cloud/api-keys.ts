/**
 * Per-tenant API keys for the relay (and, later, the integrations API): `ulak1.<id>.<secret>`,
 * stored as a SHA-256 hash, compared in constant time, scoped to one tenant for ever.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../common/clock.js';
import { UemlinkError } from '../common/errors.js';
import { hashSecret, secretMatches } from '../common/pairing-token.js';
import type { CloudStore } from './state.js';

const KEY_RE = /^ulak1\.([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{43})$/;

export interface CreatedKey {
  id: string;
  tenant: string;
  key: string;
  createdAt: string;
  label?: string;
}

export async function createApiKey(store: CloudStore, tenant: string, label: string | undefined, clock: Clock): Promise<CreatedKey> {
  const id = randomBytes(9).toString('base64url');
  const secret = randomBytes(32).toString('base64url');
  const key = `ulak1.${id}.${secret}`;
  const createdAt = new Date(clock.now()).toISOString();
  await store.update((s) => {
    if (!Object.hasOwn(s.tenants, tenant)) s.tenants[tenant] = { createdAt }; // own keys only: a plain object inherits some
    s.apiKeys.push({ id, tenant, hash: hashSecret(secret), createdAt, ...(label ? { label } : {}) });
  });
  return { id, tenant, key, createdAt, ...(label ? { label } : {}) };
}

export async function revokeApiKey(store: CloudStore, tenant: string, id: string, clock: Clock): Promise<void> {
  await store.update((s) => {
    const k = s.apiKeys.find((x) => x.id === id && x.tenant === tenant);
    if (!k) throw new UemlinkError('NOT_FOUND', `tenant "${tenant}" has no API key "${id}"`);
    k.revokedAt ??= new Date(clock.now()).toISOString();
  });
}

/** The tenant a key belongs to, or undefined when it is not a valid, live key. */
export async function tenantOfKey(store: CloudStore, presented: string): Promise<{ tenant: string; keyId: string } | undefined> {
  const m = KEY_RE.exec(presented);
  if (!m) return undefined;
  const rec = (await store.read()).apiKeys.find((k) => k.id === m[1]);
  if (!rec || rec.revokedAt || !secretMatches(m[2]!, rec.hash)) return undefined;
  return { tenant: rec.tenant, keyId: rec.id };
}
