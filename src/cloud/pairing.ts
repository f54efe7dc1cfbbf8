/**
 * Pairing: the admin asks for a token bound to a tenant and group; the connector redeems it once,
 * with a CSR, for an identity (connector id + certificate signed by the connector CA).
 *
 * Redemption runs inside one store update (under the cross-process lock), so a token can be used once
 * even if two connectors race with it, and a failed redemption leaves the token as it was.
 */
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../common/clock.js';
import { UemlinkError } from '../common/errors.js';
import { mintPairingToken, parsePairingToken, secretMatches } from '../common/pairing-token.js';
import { MAX_CSR_CHARS } from '../common/pki.js';
import { verifyReplacement } from '../common/replacement.js';
import type { ConnectorCA } from './ca.js';
import { CONNECTOR_ID_RE, GROUP_RE, TENANT_RE, type CloudState, type CloudStore } from './state.js';

export const DEFAULT_TOKEN_TTL_S = 3600;
export const MAX_TOKEN_TTL_S = 7 * 24 * 3600;
/** Used or expired tokens are forgotten after this long (they only serve "already used" answers). */
const TOKEN_RETENTION_MS = 7 * 24 * 3600 * 1000;

export interface TokenRequest {
  tenant: unknown;
  group?: unknown;
  ttlSeconds?: unknown;
}

export interface IssuedToken {
  token: string;
  expiresAt: string;
  tenant: string;
  group: string;
}

export interface PairRequest {
  token: unknown;
  csr: unknown;
  hostname?: unknown;
  version?: unknown;
  /** `{ connectorId, signature }`: the identity this pairing replaces, with proof (common/replacement.ts). */
  replaces?: unknown;
}

/**
 * What became of the identity a re-pairing named. Not retiring it never fails the pairing: the admin
 * wants a working connector, and the answer says which record to revoke by hand.
 */
export type Replacement = { connectorId: string; revoked: true } | { connectorId: string; revoked: false; reason: string };

export interface PairResult {
  connectorId: string;
  tenant: string;
  group: string;
  certificate: string;
  caCertificate: string;
  cloudUrl: string;
  replaces?: Replacement;
}

function invalid(message: string): UemlinkError {
  return new UemlinkError('INVALID_INPUT', message);
}

export function validateTenant(v: unknown, key = 'tenant'): string {
  if (typeof v !== 'string' || !TENANT_RE.test(v)) {
    throw invalid(`${key}: must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit`);
  }
  // The one such name an object already has (tenants are keys of plain objects in the state file,
  // where "constructor" is inherited: the tenant was never recorded).
  if (v in Object.prototype) throw invalid(`${key}: "${v}" is reserved`);
  return v;
}

/** A token request checked, with its defaults (pure: the CLI checks its flags before it reads the config). */
export function checkTokenRequest(req: TokenRequest): { tenant: string; group: string; ttl: number } {
  const tenant = validateTenant(req.tenant);
  const group = req.group === undefined ? 'default' : req.group;
  if (typeof group !== 'string' || !GROUP_RE.test(group)) {
    throw invalid('group: must be 1-63 letters, digits, dots, dashes or underscores');
  }
  const ttl = req.ttlSeconds === undefined ? DEFAULT_TOKEN_TTL_S : req.ttlSeconds;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 60 || ttl > MAX_TOKEN_TTL_S) {
    throw invalid(`ttlSeconds: must be a whole number from 60 to ${MAX_TOKEN_TTL_S} (7 days)`);
  }
  return { tenant, group, ttl };
}

/** Issues a token (used by the API and by `uemlink cloud token create`, through the same store). */
export async function createPairingToken(store: CloudStore, publicUrl: string, req: TokenRequest, clock: Clock = systemClock): Promise<IssuedToken> {
  const { tenant, group, ttl } = checkTokenRequest(req);
  const now = clock.now();
  const minted = mintPairingToken(publicUrl);
  const expiresAt = new Date(now + ttl * 1000).toISOString();
  await store.update((s) => {
    if (!Object.hasOwn(s.tenants, tenant)) s.tenants[tenant] = { createdAt: new Date(now).toISOString() }; // own keys only: a plain object inherits some
    s.pairingTokens = s.pairingTokens.filter((t) => Date.parse(t.usedAt ?? t.expiresAt) + TOKEN_RETENTION_MS > now);
    s.pairingTokens.push({ id: minted.id, hash: minted.hash, tenant, group, createdAt: new Date(now).toISOString(), expiresAt });
  });
  return { token: minted.token, expiresAt, tenant, group };
}

export class PairingService {
  constructor(
    private readonly store: CloudStore,
    private readonly ca: ConnectorCA,
    private readonly publicUrl: string,
    private readonly certificateDays: number,
    private readonly clock: Clock = systemClock,
  ) {}

  createToken(req: TokenRequest): Promise<IssuedToken> {
    return createPairingToken(this.store, this.publicUrl, req, this.clock);
  }

  /**
   * The tenant of a live (unused, unexpired) token with this id, for per-tenant rate limiting of
   * wrong secrets; undefined for an unknown id or a token that can no longer be redeemed.
   */
  async liveTokenTenant(id: string): Promise<string | undefined> {
    const now = this.clock.now();
    const t = (await this.store.read()).pairingTokens.find((x) => x.id === id);
    return t && !t.usedAt && now <= Date.parse(t.expiresAt) ? t.tenant : undefined;
  }

  async redeem(req: PairRequest): Promise<PairResult> {
    if (typeof req.token !== 'string') throw new UemlinkError('PAIR_TOKEN_MALFORMED', 'token: is required');
    const parsed = parsePairingToken(req.token);
    if (typeof req.csr !== 'string' || req.csr.length > MAX_CSR_CHARS) throw new UemlinkError('PAIR_CSR_INVALID', 'csr: must be a PEM certificate request');
    const hostname = typeof req.hostname === 'string' ? req.hostname.slice(0, 255) : '';
    const version = typeof req.version === 'string' ? req.version.slice(0, 64) : '';
    const connectorId = `cn_${randomBytes(10).toString('hex')}`;
    const replaces = replacementRequest(req.replaces);
    return this.store.update((s) => {
      const now = this.clock.now();
      const t = s.pairingTokens.find((x) => x.id === parsed.id);
      // Unknown id and wrong secret answer alike: nothing tells a guesser which part was right.
      if (!t || !secretMatches(parsed.secret, t.hash)) {
        throw new UemlinkError('PAIR_TOKEN_UNKNOWN', 'pairing token not recognised by this cloud; ask for a new one');
      }
      if (t.usedAt) throw new UemlinkError('PAIR_TOKEN_USED', `pairing token was already used at ${t.usedAt}; each token pairs one connector — ask for a new one`);
      if (now > Date.parse(t.expiresAt)) throw new UemlinkError('PAIR_TOKEN_EXPIRED', `pairing token expired at ${t.expiresAt}; ask for a new one`);
      const issued = this.ca.issue(req.csr as string, { connectorId, tenant: t.tenant, group: t.group }, this.certificateDays);
      t.usedAt = new Date(now).toISOString();
      t.usedBy = connectorId;
      if (!Object.hasOwn(s.tenants, t.tenant)) s.tenants[t.tenant] = { createdAt: t.usedAt }; // own keys only: a plain object inherits some
      s.connectors[connectorId] = {
        id: connectorId,
        tenant: t.tenant,
        group: t.group,
        hostname,
        version,
        pairedAt: t.usedAt,
        certificate: issued.certificatePem,
        fingerprint256: issued.info.fingerprint256,
        notAfter: issued.info.notAfter,
        targets: [],
        managedTargets: [],
      };
      const result: PairResult = {
        connectorId,
        tenant: t.tenant,
        group: t.group,
        certificate: issued.certificatePem,
        caCertificate: this.ca.certificatePem,
        cloudUrl: this.publicUrl,
      };
      if (replaces) result.replaces = retire(s, replaces, { tenant: t.tenant, tokenId: parsed.id, csr: req.csr as string, by: connectorId, at: t.usedAt });
      return result;
    });
  }
}

interface ReplacementRequest {
  connectorId: string;
  signature: string;
}

/** The `replaces` field as sent, or undefined when absent; a malformed one is refused (400). */
function replacementRequest(v: unknown): ReplacementRequest | undefined {
  if (v === undefined || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (typeof v !== 'object' || typeof r.connectorId !== 'string' || !CONNECTOR_ID_RE.test(r.connectorId)) {
    throw invalid('replaces.connectorId: must be a connector id (cn_ and 20 hex digits)');
  }
  if (typeof r.signature !== 'string' || r.signature.length > 2048 || !/^[A-Za-z0-9+/]+={0,2}$/.test(r.signature)) {
    throw invalid('replaces.signature: must be a base64 signature');
  }
  return { connectorId: r.connectorId, signature: r.signature };
}

/**
 * Retires the replaced identity inside the pairing's own store update: revoked, its certificates
 * (current and pre-renewal) blocked, and linked to its successor. Only within the token's tenant,
 * and only with a valid proof from that identity's key.
 */
function retire(s: CloudState, r: ReplacementRequest, ctx: { tenant: string; tokenId: string; csr: string; by: string; at: string }): Replacement {
  const old = Object.hasOwn(s.connectors, r.connectorId) ? s.connectors[r.connectorId] : undefined;
  const refuse = (reason: string): Replacement => ({ connectorId: r.connectorId, revoked: false, reason });
  // One answer for "unknown" and "another tenant's": a token of tenant A learns nothing about B.
  if (!old || old.tenant !== ctx.tenant) return refuse(`no connector ${r.connectorId} in tenant ${ctx.tenant}`);
  const certs = [old.certificate, ...(old.previousCertificate ? [old.previousCertificate] : [])];
  if (!verifyReplacement(certs, r.signature, r.connectorId, ctx.tokenId, ctx.csr)) return refuse(`the proof was not made with ${r.connectorId}'s key`);
  // Already revoked (by an admin, or by an earlier pairing): nothing to do, and no successor to
  // record. A key stolen from a connector an admin revoked must not make a rogue connector read as
  // its legitimate replacement ("paired again as …").
  if (old.revokedAt) return { connectorId: old.id, revoked: true };
  old.revokedAt = ctx.at;
  for (const fingerprint256 of [old.fingerprint256, old.previousFingerprint256]) {
    if (fingerprint256 && !s.revokedCertificates.some((x) => x.fingerprint256 === fingerprint256)) s.revokedCertificates.push({ fingerprint256, connectorId: old.id, revokedAt: ctx.at });
  }
  old.replacedBy = ctx.by;
  return { connectorId: old.id, revoked: true };
}
