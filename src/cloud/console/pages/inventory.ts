/** Devices and apps of a tenant: paged tables (50 a page) with a search box, all plain GET forms. */
import { DEVICE_SORTS, type DeviceFilter, type DeviceRow, type DeviceSort } from '../../inventory/db.js';

/** The risk levels a device can have (the integrations API's verdicts). */
const RISKS = ['none', 'low', 'medium', 'high'] as const;
import type { IntegrationRecord } from '../../state.js';
import { ago, count, html, type Html } from '../html.js';
import { BASE, pager } from '../layout.js';

export const PAGE_SIZE = 50;

function searchForm(path: string, tenants: string[], tenant: string, search: string, extra: Html, what: string): Html {
  return html`<form class="row" method="get" action="${path}" role="search" aria-label="Search ${what}">
<div class="field"><label for="q-tenant">Tenant</label><select id="q-tenant" name="tenant">${tenants.map((t) => html`<option value="${t}"${t === tenant ? html` selected` : ''}>${t}</option>`)}</select></div>
${extra}
<div class="field"><label for="q-search">Search</label><input id="q-search" name="search" type="search" value="${search}" maxlength="100" autocomplete="off"></div>
<button type="submit">Search</button></form>`;
}

export interface DevicesView {
  tenants: string[];
  tenant: string;
  integrations: IntegrationRecord[];
  integration: string | undefined;
  search: string;
  filter: DeviceFilter;
  sort: DeviceSort;
  /** The values the tenant's devices have, offered by the filters. */
  facets: { compliance: string[]; platform: string[] };
  page: number;
  devices: DeviceRow[];
  total: number;
  now: number;
}

const SORT_NAMES: Record<DeviceSort, string> = { integration: 'By integration', name: 'Name', lastSeen: 'Last seen, oldest first' };

const DEVICE_COLUMNS = ['Platform', 'Model', 'Serial number', 'Owner', 'Compliance', 'Last seen', 'Integration', 'Risk'];

export function devicesBody(v: DevicesView): Html {
  const names = new Map(v.integrations.map((i) => [i.id, i.displayName]));
  const filter = html`<div class="field"><label for="q-integration">Integration</label><select id="q-integration" name="integration"><option value="">All integrations</option>${v.integrations.map(
    (i) => html`<option value="${i.id}"${i.id === v.integration ? html` selected` : ''}>${i.displayName}</option>`,
  )}</select></div>`;
  // The value filtered on is offered even when it is not among those listed (at most 50 are), or
  // the form would show "Any" while the list is filtered, and a second search would drop it.
  const choice = (id: string, name: keyof DeviceFilter, label: string, listed: readonly string[]): Html => {
    const current = v.filter[name];
    const values = current !== undefined && !listed.includes(current) ? [...listed, current] : listed;
    return html`<div class="field"><label for="${id}">${label}</label><select id="${id}" name="${name}"><option value="">Any</option>${values.map(
      (x) => html`<option value="${x}"${x === current ? html` selected` : ''}>${x}</option>`,
    )}</select></div>`;
  };
  const order = html`<div class="field"><label for="q-sort">Order</label><select id="q-sort" name="sort">${DEVICE_SORTS.map(
    (s) => html`<option value="${s === 'integration' ? '' : s}"${s === v.sort ? html` selected` : ''}>${SORT_NAMES[s]}</option>`,
  )}</select></div>`;
  const filters = html`${filter}${choice('q-compliance', 'compliance', 'Compliance', v.facets.compliance)}${choice('q-risk', 'risk', 'Risk', RISKS)}${choice('q-platform', 'platform', 'Platform', v.facets.platform)}${order}`;
  const params = { tenant: v.tenant, integration: v.integration, search: v.search || undefined, ...v.filter, sort: v.sort === 'integration' ? undefined : v.sort };
  const rows = v.devices.map((d) => {
    const cells: Html[] = [
      html`${d.platform}${d.os ? html` <span class="muted">${d.os}</span>` : ''}`,
      html`${d.model ?? '—'}`,
      html`${d.serial ?? '—'}`,
      html`${d.ownerEmail ?? '—'}${d.ownerName ? html`<br><small class="muted">${d.ownerName}</small>` : ''}`,
      html`${d.compliance ?? '—'}`,
      ago(d.lastSeen, v.now, 'unknown'),
      html`${names.get(d.integrationId) ?? d.integrationId}`,
      html`${d.risk}`,
    ];
    return html`<tr><th scope="row" class="wrap">${d.name ?? html`<span class="muted">(no name)</span>`}<br><small class="muted mono">${d.udid ?? d.id}</small></th>${cells.map(
      (c, i) => html`<td data-label="${DEVICE_COLUMNS[i]}" class="wrap">${c}</td>`,
    )}</tr>`;
  });
  const table =
    v.total === 0
      ? html`<p>${v.search || Object.keys(v.filter).length > 0 ? html`No device matches${v.search ? html` “${v.search}”` : ''}${Object.keys(v.filter).length > 0 ? ' the filters' : ''}.` : 'No devices yet: they appear after an integration\'s first device sync.'}</p>`
      : html`${pager(`${BASE}/devices`, params, v.page, PAGE_SIZE, v.total, 'device')}<div class="scroll"><table class="cards devices"><caption class="sr">Devices of ${v.tenant}</caption><thead><tr><th scope="col">Device</th>${DEVICE_COLUMNS.map(
          (c) => html`<th scope="col">${c}</th>`,
        )}</tr></thead><tbody>${rows}</tbody></table></div>${pager(`${BASE}/devices`, params, v.page, PAGE_SIZE, v.total, 'device', 'Pages (end of the list)')}`;
  return html`<h1>Devices of ${v.tenant}</h1>
<section class="card" aria-label="Filters">${searchForm(`${BASE}/devices`, v.tenants, v.tenant, v.search, filters, 'devices')}<p class="hint">Searches names, serial numbers, UDIDs, owners' e-mail addresses and models.</p></section>
<section class="card" aria-label="Device list">${table}</section>`;
}

export interface AppsView {
  tenants: string[];
  tenant: string;
  search: string;
  page: number;
  apps: Array<{ id: string; name: string; versions: string[]; devices: number }>;
  total: number;
}

export function appsBody(v: AppsView): Html {
  const params = { tenant: v.tenant, search: v.search || undefined };
  const COLS = ['Identifier', 'Versions', 'Devices'];
  const rows = v.apps.map(
    (a) =>
      html`<tr><th scope="row" class="wrap">${a.name}</th><td data-label="${COLS[0]}" class="wrap"><code>${a.id}</code></td><td data-label="${COLS[1]}" class="wrap">${a.versions.join(', ') || '—'}</td><td data-label="${COLS[2]}" class="num">${count(a.devices)}</td></tr>`,
  );
  const table =
    v.total === 0
      ? html`<p>${v.search ? html`No app matches “${v.search}”.` : 'No apps yet: they appear after an integration\'s first app sync.'}</p>`
      : html`${pager(`${BASE}/apps`, params, v.page, PAGE_SIZE, v.total, 'app')}<div class="scroll"><table class="cards apps"><caption class="sr">Apps of ${v.tenant}</caption><thead><tr><th scope="col">App</th>${COLS.map(
          (c, i) => html`<th scope="col"${i === 2 ? html` class="num"` : ''}>${c}</th>`,
        )}</tr></thead><tbody>${rows}</tbody></table></div>${pager(`${BASE}/apps`, params, v.page, PAGE_SIZE, v.total, 'app', 'Pages (end of the list)')}`;
  return html`<h1>Apps of ${v.tenant}</h1>
<section class="card" aria-label="Filters">${searchForm(`${BASE}/apps`, v.tenants, v.tenant, v.search, html``, 'apps')}<p class="hint">Searches app names and identifiers (bundle ids, package names). Devices: how many devices have the app.</p></section>
<section class="card" aria-label="App list">${table}</section>`;
}
