/** The inventory pages: a tenant's devices and its app catalogue. */
import type { Response, Router } from 'express';
import { DEVICE_SORTS, type DeviceFilter, type DeviceSort } from '../../inventory/db.js';
import { html } from '../html.js';
import type { NavKey } from '../layout.js';
import { PAGE_SIZE, appsBody, devicesBody } from '../pages/inventory.js';
import { pageParam, searchParam, type ConsoleContext } from './context.js';

/** Page `asked` of a listing, or its last page when it has fewer (an old link, rows deleted since). */
function clampedPage<T extends { total: number }>(asked: number, fetch: (page: number) => T): { pageNo: number; result: T } {
  const result = fetch(asked);
  const last = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
  return asked > last ? { pageNo: last, result: fetch(last) } : { pageNo: asked, result };
}

export function register(r: Router, ctx: ConsoleContext): void {
  const { deps, page, tenants, pickTenant, now } = ctx;
  const svc = deps.integrations;

  function noTenant(res: Response, title: string, active: NavKey): void {
    page(res, 200, { title, active, body: html`<h1>${title}</h1><section class="card"><p>No tenants yet: create a pairing token or an integration first.</p></section>` });
  }

  r.get('/devices', async (req, res) => {
    const all = await tenants();
    const tenant = pickTenant(req.query.tenant, all);
    if (!tenant) return noTenant(res, 'Devices', 'devices');
    const list = await svc.list(tenant);
    const asked = typeof req.query.integration === 'string' && req.query.integration ? req.query.integration : undefined;
    const integration = list.find((i) => i.id === asked)?.id;
    const search = searchParam(req.query.search);
    const filter: DeviceFilter = {};
    for (const k of ['compliance', 'risk', 'platform'] as const) {
      const v = req.query[k];
      if (typeof v === 'string' && v !== '') filter[k] = v.slice(0, 100);
    }
    // An order the form does not offer (an old bookmark) is the default, not an error page.
    const sort: DeviceSort = (DEVICE_SORTS as readonly unknown[]).includes(req.query.sort) ? (req.query.sort as DeviceSort) : 'integration';
    const { pageNo, result } = clampedPage(pageParam(req.query.page), (p) =>
      deps.inventory.listDevices(tenant, { page: p - 1, pageSize: PAGE_SIZE, ...(integration ? { integrationId: integration } : {}), ...(search ? { search } : {}), ...filter, sort }),
    );
    page(res, 200, {
      title: `Devices of ${tenant}`,
      active: 'devices',
      tenant,
      // An integration of another tenant is what the form still held when the tenant was switched:
      // dropped without a word. Only an id no tenant has is worth a warning.
      flash: asked && !integration && !(await deps.store.read()).integrations.some((i) => i.id === asked) ? { kind: 'warn', text: `Tenant ${tenant} has no integration ${asked}: showing all its devices.` } : undefined,
      body: devicesBody({ tenants: all.includes(tenant) ? all : [...all, tenant], tenant, integrations: list, integration, search, filter, sort, facets: deps.inventory.deviceFacets(tenant), page: pageNo, devices: result.devices, total: result.total, now: now() }),
    });
  });

  r.get('/apps', async (req, res) => {
    const all = await tenants();
    const tenant = pickTenant(req.query.tenant, all);
    if (!tenant) return noTenant(res, 'Apps', 'apps');
    const search = searchParam(req.query.search);
    const { pageNo, result } = clampedPage(pageParam(req.query.page), (p) => deps.inventory.catalogue(tenant, { page: p - 1, pageSize: PAGE_SIZE, ...(search ? { search } : {}) }));
    page(res, 200, {
      title: `Apps of ${tenant}`,
      active: 'apps',
      tenant,
      body: appsBody({ tenants: all.includes(tenant) ? all : [...all, tenant], tenant, search, page: pageNo, apps: result.apps, total: result.total }),
    });
  });
}
