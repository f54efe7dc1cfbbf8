/**
 * The cloud's admin HTTP API (docs/api.md): pairing tokens, connectors, revocation, and the public
 * pairing endpoint that connectors call with their token.
 */
import express, { type Router } from 'express';
import type { Clock } from '../common/clock.js';
import { UemlinkError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { clientAddress, limiterKey, requireAdmin } from './admin-auth.js';
import { ApiError, sendError } from './http-errors.js';
import type { PairingService } from './pairing.js';
import type { PresenceBook } from './presence-book.js';
import type { FailureLimiter } from '../common/rate-limit.js';
import type { SessionRegistry } from './registry.js';
import { CONNECTOR_ID_RE, type CloudStore, type ConnectorRecord } from './state.js';
import { validateTenant } from './pairing.js';
import { parsePairingToken } from '../common/pairing-token.js';

export interface AdminApiDeps {
  adminToken: string;
  store: CloudStore;
  pairing: PairingService;
  registry: SessionRegistry;
  book: PresenceBook;
  adminLimiter: FailureLimiter;
  pairLimiter: FailureLimiter;
  /** Wrong secrets for live tokens, per tenant (keyed by tenant name), across all addresses. */
  pairTenantLimiter: FailureLimiter;
  logger: Logger;
  clock: Clock;
}

export interface ConnectorView {
  id: string;
  tenant: string;
  group: string;
  hostname: string;
  version: string;
  connected: boolean;
  connectedAt: string | null;
  lastSeen: string | null;
  targets: string[];
  pairedAt: string;
  revoked: boolean;
  revokedAt: string | null;
  replacedBy: string | null;
  certificate: { notAfter: string; fingerprint256: string };
  session: null | { epoch: number; remoteAddress: string; rttMs: number | null; protocol: number; activeStreams: number; draining: boolean };
}

export function connectorView(rec: ConnectorRecord, deps: Pick<AdminApiDeps, 'registry' | 'book'>): ConnectorView {
  const live = deps.registry.get(rec.id);
  const noted = deps.book.peek(rec.id);
  return {
    id: rec.id,
    tenant: rec.tenant,
    group: rec.group,
    hostname: live?.hostname ?? noted?.hostname ?? rec.hostname,
    version: live?.version ?? noted?.version ?? rec.version,
    connected: live !== undefined && live.session.state !== 'closed',
    connectedAt: live ? new Date(live.connectedAt).toISOString() : null,
    lastSeen: live ? new Date(live.session.lastHeardAt).toISOString() : (noted?.lastSeen ?? rec.lastSeen ?? null),
    targets: live?.targets ?? noted?.targets ?? rec.targets,
    pairedAt: rec.pairedAt,
    revoked: rec.revokedAt !== undefined,
    revokedAt: rec.revokedAt ?? null,
    replacedBy: rec.replacedBy ?? null,
    certificate: { notAfter: rec.notAfter, fingerprint256: rec.fingerprint256 },
    session: live
      ? {
          epoch: live.epoch,
          remoteAddress: live.remoteAddress,
          rttMs: live.session.rttMs ?? null,
          protocol: live.session.version,
          activeStreams: live.session.activeStreams,
          draining: !live.session.acceptsStreams,
        }
      : null,
  };
}

/**
 * Revokes a connector (the API's DELETE and the console): marks it revoked, blocks its certificate
 * for good, ends its session. Idempotent; undefined when there is no such connector.
 */
export async function revokeConnector(
  deps: Pick<AdminApiDeps, 'store' | 'registry' | 'logger' | 'clock'>,
  id: string,
  via?: string,
): Promise<{ wasConnected: boolean } | undefined> {
  if (!CONNECTOR_ID_RE.test(id)) return undefined;
  const now = new Date(deps.clock.now()).toISOString();
  const found = await deps.store.update((s) => {
    const c = s.connectors[id];
    if (!c) return false;
    if (!c.revokedAt) {
      c.revokedAt = now;
      // The certificate before its last renewal is still accepted until the connector uses the
      // new one: blocked too, as pairing again does.
      for (const fingerprint256 of [c.fingerprint256, c.previousFingerprint256]) {
        if (fingerprint256 && !s.revokedCertificates.some((x) => x.fingerprint256 === fingerprint256)) s.revokedCertificates.push({ fingerprint256, connectorId: id, revokedAt: now });
      }
    }
    return true;
  });
  if (!found) return undefined;
  const wasConnected = deps.registry.disconnect(id, 'REVOKED', 'this connector was revoked by an administrator');
  deps.logger.warn('connector revoked', { connectorId: id, wasConnected, ...(via ? { via } : {}) });
  return { wasConnected };
}

export function adminApi(deps: AdminApiDeps): Router {
  const r = express.Router();
  const json = express.json({ limit: '64kb' });
  const admin = requireAdmin(deps.adminToken, deps.adminLimiter);

  r.post('/api/v1/pairing-tokens', admin, json, async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const t = await deps.pairing.createToken({ tenant: body.tenant, group: body.group, ttlSeconds: body.ttlSeconds });
    deps.logger.info('pairing token issued', { tenant: t.tenant, group: t.group, expiresAt: t.expiresAt });
    res.status(201).json(t);
  });

  r.get('/api/v1/connectors', admin, async (req, res) => {
    const tenant = req.query.tenant === undefined ? undefined : validateTenant(singleQuery(req.query.tenant, 'tenant'), 'tenant (query)');
    const s = await deps.store.read();
    const list = Object.values(s.connectors)
      .filter((c) => !tenant || c.tenant === tenant)
      .sort((a, b) => a.pairedAt.localeCompare(b.pairedAt))
      .map((c) => connectorView(c, deps));
    res.json({ connectors: list });
  });

  r.get('/api/v1/connectors/:id', admin, async (req, res) => {
    const id = req.params.id as string;
    // Checked as an id first: the store's map is an object, and "constructor" is no connector.
    const rec = CONNECTOR_ID_RE.test(id) ? (await deps.store.read()).connectors[id] : undefined;
    if (!rec) throw new ApiError(404, 'unknown_connector', `no connector with id "${id.slice(0, 64)}"`);
    res.json(connectorView(rec, deps));
  });

  r.delete('/api/v1/connectors/:id', admin, async (req, res) => {
    const id = req.params.id as string;
    if (!(await revokeConnector(deps, id))) throw new ApiError(404, 'unknown_connector', `no connector with id "${id.slice(0, 64)}"`);
    res.status(204).end();
  });

  // Public: connectors redeem their token here. Failures are rate limited per address.
  r.post('/api/v1/pair', json, async (req, res) => {
    const remote = clientAddress(req);
    const ip = limiterKey(req);
    const wait = deps.pairLimiter.retryAfter(ip);
    if (wait > 0) {
      throw new ApiError(429, 'rate_limited', 'too many failed pairing attempts from this address; wait and retry', {
        'Retry-After': String(Math.ceil(wait / 1000)),
      });
    }
    // Each limit counts the attempt as soon as it is judged, before any await, and forgives it if it
    // was not a failure: attempts sent all at once were otherwise each judged against the count
    // from before any of them failed (90 concurrent guesses all judged against a limit of 30).
    deps.pairLimiter.fail(ip);
    const body = (req.body ?? {}) as Record<string, unknown>;
    // Fix (issue 7): guessing was limited per address only, so guesses spread over many addresses
    // were not limited at all. Wrong secrets for a live token also count against its tenant. Only a
    // token id that exists and can still be redeemed names a tenant, so guesses at random ids cannot
    // lock anybody out, and guesses at tenant A's token cannot lock out tenant B.
    let tenant: string | undefined;
    if (typeof body.token === 'string') {
      try {
        tenant = await deps.pairing.liveTokenTenant(parsePairingToken(body.token).id);
      } catch {
        tenant = undefined; // malformed: refused by redeem() below, counted per address only
      }
    }
    const tenantWait = tenant === undefined ? 0 : deps.pairTenantLimiter.retryAfter(tenant);
    if (tenantWait > 0) {
      deps.pairLimiter.forgive(ip); // refused before any try: not this address's failure
      deps.logger.warn('pairing refused: tenant rate limit', { tenant, remote });
      throw new ApiError(429, 'rate_limited', "too many failed pairing attempts for this token's tenant; wait and retry", {
        'Retry-After': String(Math.ceil(tenantWait / 1000)),
      });
    }
    if (tenant !== undefined) deps.pairTenantLimiter.fail(tenant);
    try {
      const result = await deps.pairing.redeem({ token: body.token, csr: body.csr, hostname: body.hostname, version: body.version, replaces: body.replaces });
      deps.pairLimiter.forgive(ip);
      if (tenant !== undefined) deps.pairTenantLimiter.forgive(tenant);
      deps.logger.info('connector paired', { connectorId: result.connectorId, tenant: result.tenant, group: result.group, remote, ...(result.replaces ? { replaces: result.replaces } : {}) });
      if (result.replaces?.revoked) {
        const old = result.replaces.connectorId;
        const wasConnected = deps.registry.disconnect(old, 'REVOKED', `this connector was paired again as ${result.connectorId}`);
        deps.logger.warn('connector revoked', { connectorId: old, wasConnected, via: 'pairing again', replacedBy: result.connectorId });
      }
      res.status(201).json(result);
    } catch (e) {
      const counted = e instanceof UemlinkError && e.code.startsWith('PAIR_');
      if (!counted) deps.pairLimiter.forgive(ip);
      if (tenant !== undefined && !(counted && e.code === 'PAIR_TOKEN_UNKNOWN')) deps.pairTenantLimiter.forgive(tenant);
      if (counted) deps.logger.warn('pairing refused', { code: e.code, remote, reason: e.message });
      throw e;
    }
  });

  return r;
}

/**
 * A query parameter given once. Given twice (`?tenant=a&tenant=b`) Express makes it an array, and
 * reading that as "absent" answered with every tenant's records: a wider answer than asked for.
 */
export function singleQuery(v: unknown, name: string): string {
  if (typeof v !== 'string') throw new ApiError(400, 'bad_request', `${name} (query): give it once, as a single value`);
  return v;
}

export function notFound(): express.RequestHandler {
  return (req, res) => sendError(res, new ApiError(404, 'not_found', `no such endpoint: ${req.method} ${req.path}`));
}
