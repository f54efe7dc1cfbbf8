/**
 * The integrations API (docs/integrations.md), per tenant, for the admin token or the tenant's own
 * API key: integrations and their actions, the device and app inventory, device verdicts (risk,
 * status, threat factors — what tagging writes back) and app policies (what policy groups hold).
 */
import express, { type RequestHandler, type Router } from 'express';
import { X509Certificate } from 'node:crypto';
import { ApiError } from '../http-errors.js';
import { singleQuery } from '../admin-api.js';
import { DEVICE_SORTS, type DeviceFilter, type DeviceRow, type DeviceSort, type InventoryDb } from '../inventory/db.js';
import { validateTenant } from '../pairing.js';
import { principalOf, requireTenant, type PrincipalDeps } from '../principal.js';
import type { IntegrationRecord } from '../state.js';
import type { IntegrationsService } from './service.js';
import { revisionOf } from './revision.js';
import { shownComponent } from './engine.js';

export interface IntegrationsApiDeps extends PrincipalDeps {
  integrations: IntegrationsService;
  db: InventoryDb;
}

const RISKS = ['none', 'low', 'medium', 'high'];
const STATUSES = ['provisioned', 'active', 'inactive'];

/** What the API shows of an integration: never a secret. */
export function integrationView(rec: IntegrationRecord): Record<string, unknown> {
  const v: Record<string, unknown> = {
    id: rec.id,
    tenant: rec.tenant,
    vendor: rec.vendor,
    displayName: rec.displayName,
    serverAddress: rec.serverAddress ?? null,
    route: rec.route,
    auth: rec.auth ? { ...rec.auth, secretsSet: Boolean(rec.authSealed) } : null,
    sync: rec.sync,
    tagging: rec.tagging,
    paused: rec.paused,
    status: rec.status,
    createdAt: rec.createdAt,
    updatedAt: rec.updatedAt,
    revision: revisionOf(rec),
  };
  if (rec.selfSignedCertPem) {
    try {
      const x = new X509Certificate(rec.selfSignedCertPem);
      v.selfSignedCert = { subject: x.subject.replace(/\n/g, ', '), notAfter: new Date(x.validTo).toISOString(), fingerprint256: x.fingerprint256 };
    } catch {
      v.selfSignedCert = null;
    }
  }
  return v;
}

export function deviceView(d: DeviceRow, apps?: Array<{ id: string; name: string; version: string | null }>): Record<string, unknown> {
  const v: Record<string, unknown> = {
    id: `${d.integrationId}:${d.id}`,
    integration: d.integrationId,
    udid: d.udid,
    serial: d.serial,
    name: d.name,
    phone: d.phone,
    ownerEmail: d.ownerEmail,
    ownerName: d.ownerName,
    platform: d.platform,
    os: d.os,
    model: d.model,
    enrollment: d.enrollment,
    compliance: d.compliance,
    groups: d.groups,
    lastSeen: d.lastSeen,
    risk: d.risk,
    status: d.status,
    threatFactors: d.threatFactors,
    missingSyncs: d.missing,
  };
  if (apps) v.apps = apps;
  return v;
}

function intParam(v: unknown, name: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  // Digits only: Number() also reads "" and " " as 0 and "0x10" or "1e3" as numbers.
  const n = typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new ApiError(400, 'bad_request', `${name}: must be a whole number from ${min} to ${max}`);
  return n;
}

export function integrationsApi(deps: IntegrationsApiDeps): Router {
  const r = express.Router();
  const json = express.json({ limit: '1mb' });
  const svc = deps.integrations;

  /** Authenticates first (anonymous callers get 401, never a validation error), then the tenant. */
  const tenantAuth: RequestHandler = (req, res, next) => {
    principalOf(req, deps)
      .then((p) => {
        const tenant = validateTenant(req.params.tenant, 'tenant (in the path)');
        requireTenant(p, tenant);
        res.locals.tenant = tenant;
      })
      // (a throw inside then() must reach the error handler too, or the request hangs)
      .then(() => next(), next);
  };
  /** A handler given the tenant that tenantAuth checked. */
  const wrap =
    (fn: (req: express.Request, res: express.Response, tenant: string) => Promise<void>): RequestHandler =>
    (req, res) =>
      fn(req, res, res.locals.tenant as string);
  const base = '/api/v1/tenants/:tenant';

  r.post(`${base}/integrations`, tenantAuth, json, wrap(async (req, res, tenant) => {
    res.status(201).json(integrationView(await svc.create(tenant, req.body)));
  }));
  r.get(`${base}/integrations`, tenantAuth, wrap(async (_req, res, tenant) => {
    res.json({ integrations: (await svc.list(tenant)).map(integrationView) });
  }));
  r.get(`${base}/integrations/:id`, tenantAuth, wrap(async (req, res, tenant) => {
    res.json(integrationView(await svc.get(tenant, String(req.params.id))));
  }));
  r.put(`${base}/integrations/:id`, tenantAuth, json, wrap(async (req, res, tenant) => {
    res.json(integrationView(await svc.update(tenant, String(req.params.id), req.body, { ifMatch: req.get('if-match') })));
  }));
  r.delete(`${base}/integrations/:id`, tenantAuth, wrap(async (req, res, tenant) => {
    await svc.remove(tenant, String(req.params.id), { ifMatch: req.get('if-match') });
    res.status(204).end();
  }));
  r.post(`${base}/integrations/:id/verify`, tenantAuth, wrap(async (req, res, tenant) => {
    res.json(await svc.verify(tenant, String(req.params.id)));
  }));
  r.get(`${base}/integrations/:id/groups`, tenantAuth, wrap(async (req, res, tenant) => {
    res.json({ groups: await svc.groups(tenant, String(req.params.id)) });
  }));
  r.get(`${base}/integrations/:id/status`, tenantAuth, wrap(async (req, res, tenant) => {
    const rec = await svc.get(tenant, String(req.params.id));
    const s = rec.status;
    res.json({ uemServer: s.uemServer, deviceSync: shownComponent(s.deviceSync, 'deviceSync', rec.paused), appSync: shownComponent(s.appSync, 'appSync', rec.paused), tagging: s.tagging, policyGroups: s.policyGroups });
  }));
  r.post(`${base}/integrations/:id/sync`, tenantAuth, wrap(async (req, res, tenant) => {
    const id = String(req.params.id);
    if (req.query.wait === '1') await svc.syncAndWait(tenant, id);
    else await svc.syncNow(tenant, id);
    res.status(202).json({ id, sync: req.query.wait === '1' ? 'done' : 'started' });
  }));
  r.post(`${base}/integrations/:id/pause`, tenantAuth, wrap(async (req, res, tenant) => {
    res.json(integrationView(await svc.setPaused(tenant, String(req.params.id), true)));
  }));
  r.post(`${base}/integrations/:id/resume`, tenantAuth, wrap(async (req, res, tenant) => {
    res.json(integrationView(await svc.setPaused(tenant, String(req.params.id), false)));
  }));

  r.get(`${base}/devices`, tenantAuth, wrap(async (req, res, tenant) => {
    const integration = req.query.integration === undefined ? undefined : singleQuery(req.query.integration, 'integration');
    if (integration) await svc.get(tenant, integration);
    const page = intParam(req.query.page, 'page', 0, 0, 1_000_000);
    const pageSize = intParam(req.query.pageSize, 'pageSize', 100, 1, 1000);
    const search = req.query.search === undefined ? undefined : singleQuery(req.query.search, 'search').slice(0, 100) || undefined;
    const withApps = req.query.apps === '1';
    // The console's filters and orders, for scripts: exact values; an unknown order or risk is refused.
    const filter: DeviceFilter = {};
    for (const k of ['compliance', 'risk', 'platform'] as const) {
      if (req.query[k] !== undefined) filter[k] = singleQuery(req.query[k], k).slice(0, 100);
    }
    if (filter.risk !== undefined && !RISKS.includes(filter.risk)) throw new ApiError(400, 'bad_request', `risk: must be one of ${RISKS.join(', ')}`);
    const sort = req.query.sort === undefined ? undefined : singleQuery(req.query.sort, 'sort');
    if (sort !== undefined && !(DEVICE_SORTS as readonly string[]).includes(sort)) throw new ApiError(400, 'bad_request', `sort: must be one of ${DEVICE_SORTS.join(', ')}`);
    const r2 = deps.db.listDevices(tenant, { page, pageSize, ...(integration ? { integrationId: integration } : {}), ...(search ? { search } : {}), ...filter, ...(sort ? { sort: sort as DeviceSort } : {}) });
    res.json({ devices: r2.devices.map((d) => deviceView(d, withApps ? deps.db.appsOf(d.integrationId, d.id) : undefined)), total: r2.total, page, pageSize });
  }));
  r.put(`${base}/devices/:id/risk`, tenantAuth, json, wrap(async (req, res, tenant) => {
    const full = String(req.params.id);
    const i = full.indexOf(':');
    const integrationId = full.slice(0, i);
    const deviceId = full.slice(i + 1);
    const rec = i > 0 ? await svc.get(tenant, integrationId).catch(() => undefined) : undefined;
    if (!rec) throw new ApiError(404, 'unknown_device', `tenant "${tenant}" has no device "${full}"`);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const v: { risk?: string; status?: string; threatFactors?: string[] } = {};
    if (b.risk !== undefined) {
      if (typeof b.risk !== 'string' || !RISKS.includes(b.risk)) throw new ApiError(400, 'bad_request', `risk: must be one of ${RISKS.join(', ')}`);
      v.risk = b.risk;
    }
    if (b.status !== undefined) {
      if (typeof b.status !== 'string' || !STATUSES.includes(b.status)) throw new ApiError(400, 'bad_request', `status: must be one of ${STATUSES.join(', ')}`);
      v.status = b.status;
    }
    if (b.threatFactors !== undefined) {
      if (!Array.isArray(b.threatFactors) || !b.threatFactors.every((f) => typeof f === 'string' && /^[A-Za-z0-9_-]{1,40}$/.test(f))) {
        throw new ApiError(400, 'bad_request', 'threatFactors: must be a list of names (letters, digits, "_", "-")');
      }
      v.threatFactors = [...new Set(b.threatFactors as string[])];
    }
    if (!deps.db.setVerdict(integrationId, deviceId, v, new Date().toISOString())) throw new ApiError(404, 'unknown_device', `tenant "${tenant}" has no device "${full}"`);
    svc.retag(integrationId);
    res.json(deviceView(deps.db.device(integrationId, deviceId)!));
  }));
  r.get(`${base}/apps`, tenantAuth, wrap(async (req, res, tenant) => {
    const page = intParam(req.query.page, 'page', 0, 0, 1_000_000);
    const pageSize = intParam(req.query.pageSize, 'pageSize', 100, 1, 1000);
    const search = req.query.search === undefined ? undefined : singleQuery(req.query.search, 'search').slice(0, 100) || undefined;
    res.json({ ...deps.db.catalogue(tenant, { page, pageSize, ...(search ? { search } : {}) }), page, pageSize });
  }));

  r.get(`${base}/app-policies`, tenantAuth, wrap(async (_req, res, tenant) => {
    res.json({ policies: await svc.policies(tenant) });
  }));
  r.put(`${base}/app-policies/:name`, tenantAuth, json, wrap(async (req, res, tenant) => {
    res.json(await svc.putPolicy(tenant, String(req.params.name), req.body));
  }));
  r.delete(`${base}/app-policies/:name`, tenantAuth, wrap(async (req, res, tenant) => {
    await svc.deletePolicy(tenant, String(req.params.name));
    res.status(204).end();
  }));
  return r;
}
