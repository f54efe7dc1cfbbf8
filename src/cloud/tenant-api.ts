/**
 * Tenant-scoped admin API: tenant API keys (admin only) and cloud-managed targets (admin or the
 * tenant's own key).
 */
import express, { type RequestHandler, type Router } from 'express';
import type { Clock } from '../common/clock.js';
import { requireAdmin } from './admin-auth.js';
import { createApiKey, revokeApiKey } from './api-keys.js';
import type { FailureLimiter } from '../common/rate-limit.js';
import { ApiError } from './http-errors.js';
import type { ManagedTargetsService } from './managed-targets.js';
import { validateTenant } from './pairing.js';
import { principalOf, requireTenant, type Principal, type PrincipalDeps } from './principal.js';
import { TARGET_ID_RE } from '../connector/targets/schema.js';
import type { CloudStore } from './state.js';

export interface TenantApiDeps extends PrincipalDeps {
  store: CloudStore;
  managed: ManagedTargetsService;
  adminLimiter: FailureLimiter;
  clock: Clock;
}


export function tenantApi(deps: TenantApiDeps): Router {
  const r = express.Router();
  const json = express.json({ limit: '256kb' });
  const admin = requireAdmin(deps.adminToken, deps.adminLimiter);
  const tenantOf = (v: unknown): string => validateTenant(v, 'tenant (in the path)');
  const targetOf = (v: unknown): string => {
    if (typeof v !== 'string' || !TARGET_ID_RE.test(v)) throw new ApiError(400, 'bad_request', 'target id: must be 1-64 letters, digits, "-" or "_"');
    return v;
  };

  /** Authenticates before the body is parsed: an anonymous caller gets 401, never a parse error. */
  const authenticated: RequestHandler = (req, res, next) => {
    principalOf(req, deps)
      .then((p) => {
        res.locals.principal = p;
      })
      .then(() => next(), next);
  };

  r.post('/api/v1/tenants/:tenant/api-keys', admin, json, async (req, res) => {
    const tenant = tenantOf(req.params.tenant);
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (body.label !== undefined && typeof body.label !== 'string') throw new ApiError(400, 'bad_request', 'label: must be a string');
    const label = typeof body.label === 'string' ? body.label.slice(0, 100) : undefined;
    res.status(201).json(await createApiKey(deps.store, tenant, label, deps.clock));
  });

  r.delete('/api/v1/tenants/:tenant/api-keys/:id', admin, async (req, res) => {
    await revokeApiKey(deps.store, tenantOf(req.params.tenant), String(req.params.id), deps.clock);
    res.status(204).end();
  });

  r.get('/api/v1/tenants/:tenant/managed-targets', async (req, res) => {
    const principal = await principalOf(req, deps);
    const tenant = tenantOf(req.params.tenant);
    requireTenant(principal, tenant);
    res.json({ managedTargets: await deps.managed.list(tenant) });
  });

  r.put('/api/v1/tenants/:tenant/managed-targets/:id', authenticated, json, async (req, res) => {
    const tenant = tenantOf(req.params.tenant);
    requireTenant(res.locals.principal as Principal, tenant);
    const body = req.body as unknown;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'bad_request', 'the body must be a JSON object with the target definition');
    res.json(await deps.managed.put(tenant, targetOf(req.params.id), body as Record<string, unknown>));
  });

  r.delete('/api/v1/tenants/:tenant/managed-targets/:id', async (req, res) => {
    const principal = await principalOf(req, deps);
    const tenant = tenantOf(req.params.tenant);
    requireTenant(principal, tenant);
    await deps.managed.remove(tenant, targetOf(req.params.id));
    res.status(204).end();
  });

  return r;
}
