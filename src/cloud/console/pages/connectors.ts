/**
 * Connectors: who is paired, connected, offline or revoked; pairing tokens (shown once, on the
 * answer to the form that created them); revocation behind a confirmation page.
 */
import { randomBytes } from 'node:crypto';
import type { ConnectorView } from '../../admin-api.js';
import type { IssuedToken } from '../../pairing.js';
import { ago, count, html, plural, query, utc, type Html } from '../html.js';
import { BASE, actionForm, csrfField, pager } from '../layout.js';

export type ConnectorState = 'connected' | 'offline' | 'revoked';

export function stateOf(c: ConnectorView): ConnectorState {
  return c.revoked ? 'revoked' : c.connected ? 'connected' : 'offline';
}

const STATE: Record<ConnectorState, [string, string]> = {
  connected: ['●', 'Connected'],
  offline: ['○', 'Offline'],
  revoked: ['✘', 'Revoked'],
};

export function stateLabel(c: ConnectorView): Html {
  const s = stateOf(c);
  const [glyph, word] = STATE[s];
  return html`<span class="state state-${s}" data-state="${s}"><span aria-hidden="true">${glyph}</span> ${word}</span>`;
}

/** Pairing token lifetimes offered by the form (seconds). */
export const TTL_CHOICES: Array<[number, string]> = [
  [600, '10 minutes'],
  [3600, '1 hour'],
  [8 * 3600, '8 hours'],
  [24 * 3600, '24 hours'],
  [3 * 24 * 3600, '3 days'],
  [7 * 24 * 3600, '7 days'],
];

export interface TokenForm {
  tenant: string;
  group: string;
  ttl: string;
  error?: string;
}

export interface ConnectorsView {
  connectors: ConnectorView[];
  tenants: string[];
  filter: string | undefined;
  /** Matched against id, host name, tenant, group and version (any case). */
  search?: string;
  state?: ConnectorState | undefined;
  /** 1-based; past the last page shows the last. */
  page?: number;
  csrf: string;
  now: number;
  issued?: IssuedToken;
  /** The form was sent again (a reload) and `issued` is the token its first sending made. */
  issuedAgain?: boolean;
  form?: TokenForm;
}

const COLUMNS = ['State', 'Tenant', 'Group', 'Host name', 'Version', 'Last seen', 'Targets', 'Action'];

function row(c: ConnectorView, now: number, filtered: boolean): Html {
  const seen = c.connected ? html`${ago(c.lastSeen, now)}<br><small class="muted">connected ${ago(c.connectedAt, now)}</small>` : ago(c.lastSeen, now);
  const action = c.revoked
    ? c.replacedBy
      ? html`<span class="muted">revoked ${ago(c.revokedAt, now)}, paired again as <code>${c.replacedBy}</code></span>`
      : html`<span class="muted">revoked ${ago(c.revokedAt, now)}</span>`
    : html`<a href="${BASE}/connectors/${c.id}/revoke${filtered ? '?filtered=1' : ''}">Revoke<span class="sr"> connector ${c.id}</span></a>`;
  const cells: Html[] = [
    stateLabel(c),
    html`${c.tenant}`,
    html`${c.group}`,
    c.hostname ? html`${c.hostname}` : html`<span class="muted">unknown</span>`,
    c.version ? html`${c.version}` : html`<span class="muted">unknown</span>`,
    seen,
    c.targets.length ? html`${c.targets.join(', ')}` : html`<span class="muted">none</span>`,
    action,
  ];
  return html`<tr data-connector="${c.id}"><th scope="row" class="wrap"><code>${c.id}</code></th>${cells.map((v, i) => html`<td data-label="${COLUMNS[i]}" class="wrap">${v}</td>`)}</tr>`;
}

function issuedBox(t: IssuedToken, now: number, again: boolean): Html {
  return html`<section class="card" aria-labelledby="h-issued"><h2 id="h-issued">New pairing token</h2>
${again ? html`<p class="flash warn" role="status">This form was sent again (a reload): no second token was made; this is the one it issued.</p>` : ''}
<p class="flash ok" role="status">Pairing token created for tenant <strong>${t.tenant}</strong>, group <strong>${t.group}</strong>. It expires ${ago(t.expiresAt, now)} (${utc(t.expiresAt)}) and pairs one connector.</p>
<p><strong>This is the only time the token is shown.</strong> Copy it now and hand it to whoever installs the connector: <code>uemlink connector pair --token-file FILE</code>, or paste it into the connector's local page.</p>
<label for="new-token">Pairing token</label>
<textarea id="new-token" class="token" rows="3" readonly spellcheck="false" autocomplete="off">${t.token}</textarea>
<div class="actions"><button type="button" class="secondary js-only" data-copy="new-token">Copy the token</button><span id="new-token-copied" role="status" aria-live="polite"></span></div>
</section>`;
}

function tokenForm(v: ConnectorsView): Html {
  const f = v.form ?? { tenant: v.filter ?? '', group: 'default', ttl: '3600' };
  const err = f.error ? html`<p class="field-error" id="pt-error" role="alert">${f.error}</p>` : '';
  // The refusal names its field ("group: must be …"): only that one is marked; one that names
  // none marks both.
  const named = f.error ? /^(?:Not created\. )?(tenant|group|ttlSeconds):/.exec(f.error)?.[1] : undefined;
  const mark = (field: string): Html | string => (f.error && (named === undefined || named === field) ? html` aria-invalid="true" aria-describedby="pt-error"` : '');
  return html`<section class="card" aria-labelledby="h-pair"><h2 id="h-pair">Create a pairing token</h2>
<p>A token pairs one connector with a tenant and a connector group. Integrations reach their UEM through a connector of their group.</p>
${err}
<form class="row" method="post" action="${BASE}/connectors/pairing-token">${csrfField(v.csrf)}<input type="hidden" name="once" value="${randomBytes(12).toString('base64url')}">
<div class="field"><label for="pt-tenant">Tenant</label><input id="pt-tenant" name="tenant" value="${f.tenant}" required maxlength="63" pattern="[a-z0-9][a-z0-9\\-]{0,62}" list="pt-tenants" autocomplete="off" spellcheck="false" autocapitalize="off"${mark('tenant')}>
<datalist id="pt-tenants">${v.tenants.map((t) => html`<option value="${t}"></option>`)}</datalist></div>
<div class="field"><label for="pt-group">Connector group</label><input id="pt-group" name="group" value="${f.group}" required maxlength="63" autocomplete="off" spellcheck="false" autocapitalize="off"${mark('group')}></div>
<div class="field"><label for="pt-ttl">Valid for</label><select id="pt-ttl" name="ttlSeconds"${named === 'ttlSeconds' ? mark('ttlSeconds') : ''}>${TTL_CHOICES.map(
    ([s, label]) => html`<option value="${s}"${String(s) === f.ttl ? html` selected` : ''}>${label}</option>`,
  )}</select></div>
<button type="submit">Create pairing token</button></form>
<p class="hint">Tenant: lower-case letters, digits and dashes. Group: letters, digits, dots, dashes, underscores.</p></section>`;
}

/** Connectors a page shows: an MSP has hundreds, and one table of them all was 800 KB. */
export const CONNECTORS_PAGE_SIZE = 50;

/** Problems first (offline), then connected, then revoked; newest pairing first within each. */
const STATE_ORDER: Record<ConnectorState, number> = { offline: 0, connected: 1, revoked: 2 };

export function connectorsBody(v: ConnectorsView): Html {
  const q = (v.search ?? '').toLowerCase();
  const matches = (c: ConnectorView): boolean =>
    !q || [c.id, c.hostname, c.tenant, c.group, c.version].some((f) => f.toLowerCase().includes(q));
  const inScope = v.connectors.filter((c) => (!v.filter || c.tenant === v.filter) && matches(c));
  const counts = { connected: 0, offline: 0, revoked: 0 };
  for (const c of inScope) counts[stateOf(c)]++;
  const list = (v.state ? inScope.filter((c) => stateOf(c) === v.state) : inScope).sort(
    (a, b) => STATE_ORDER[stateOf(a)] - STATE_ORDER[stateOf(b)] || b.pairedAt.localeCompare(a.pairedAt) || a.id.localeCompare(b.id),
  );
  const pages = Math.max(1, Math.ceil(list.length / CONNECTORS_PAGE_SIZE));
  const pageNo = Math.min(Math.max(1, v.page ?? 1), pages);
  const shown = list.slice((pageNo - 1) * CONNECTORS_PAGE_SIZE, pageNo * CONNECTORS_PAGE_SIZE);
  const params = { tenant: v.filter, state: v.state, search: v.search || undefined };
  const filter = html`<form class="row" method="get" action="${BASE}/connectors" aria-label="Filter connectors" role="search"><div class="field"><label for="cf-tenant">Show tenant</label><select id="cf-tenant" name="tenant"><option value="">All tenants</option>${v.tenants.map(
    (t) => html`<option value="${t}"${t === v.filter ? html` selected` : ''}>${t}</option>`,
  )}</select></div><div class="field"><label for="cf-state">State</label><select id="cf-state" name="state"><option value="">Any state</option>${(['offline', 'connected', 'revoked'] as const).map(
    (st) => html`<option value="${st}"${st === v.state ? html` selected` : ''}>${STATE[st][1]}</option>`,
  )}</select></div><div class="field"><label for="cf-search">Search</label><input id="cf-search" name="search" type="search" value="${v.search ?? ''}" maxlength="100" autocomplete="off" spellcheck="false" aria-describedby="cf-hint"></div><button type="submit" class="secondary">Filter</button></form><p class="hint" id="cf-hint">Searches connector ids, host names, tenants, groups and versions. Offline connectors are listed first.</p>`;
  const where = html`${v.filter ? html` in tenant ${v.filter}` : ''}${v.search ? html` matching “${v.search}”` : ''}`;
  const table =
    list.length === 0
      ? v.connectors.some((c) => !v.filter || c.tenant === v.filter)
        ? html`<p>No ${v.state ? STATE[v.state][1].toLowerCase() : ''} connectors${where}.</p>`
        : html`<p>No connectors${v.filter ? html` in tenant ${v.filter}` : ''} yet. Create a pairing token below and pair one.</p>`
      : html`${pager(`${BASE}/connectors`, params, pageNo, CONNECTORS_PAGE_SIZE, list.length, 'connector')}<div class="scroll"><table class="cards connectors"><caption>${plural(inScope.length, 'connector')}${where}: ${count(counts.connected)} connected, ${count(counts.offline)} offline, ${count(counts.revoked)} revoked</caption><thead><tr><th scope="col">Connector</th>${COLUMNS.map(
          (c) => html`<th scope="col">${c}</th>`,
        )}</tr></thead><tbody>${shown.map((c) => row(c, v.now, v.filter !== undefined))}</tbody></table></div>${pager(`${BASE}/connectors`, params, pageNo, CONNECTORS_PAGE_SIZE, list.length, 'connector', 'Pages (end of the list)')}`;
  return html`<h1>Connectors</h1>
${v.issued ? issuedBox(v.issued, v.now, v.issuedAgain === true) : ''}
<section class="card" aria-labelledby="h-list"><h2 id="h-list">Paired connectors</h2>${filter}${table}</section>
${tokenForm(v)}`;
}

/** `filtered`: the admin came from the list of this connector's tenant, and goes back to it. */
export function revokeBody(c: ConnectorView, csrf: string, now: number, filtered = false): Html {
  const details = html`<dl><dt>State</dt><dd>${stateLabel(c)}</dd><dt>Tenant</dt><dd>${c.tenant}</dd><dt>Group</dt><dd>${c.group}</dd><dt>Host name</dt><dd>${c.hostname || '—'}</dd><dt>Paired</dt><dd>${ago(c.pairedAt, now)}</dd><dt>Last seen</dt><dd>${ago(c.lastSeen, now)}</dd><dt>Targets</dt><dd>${c.targets.join(', ') || 'none'}</dd></dl>`;
  if (c.revoked) {
    return html`<h1>Revoke connector</h1><section class="card" aria-labelledby="h-rv"><h2 id="h-rv"><code>${c.id}</code></h2>${details}<p>This connector is already revoked.</p><p><a href="${BASE}/connectors">Back to the connectors</a></p></section>`;
  }
  return html`<h1>Revoke connector</h1><section class="card" aria-labelledby="h-rv"><h2 id="h-rv">Revoke <code>${c.id}</code>?</h2>${details}
<p class="flash warn">Revoking disconnects this connector now, and its certificate can never connect again. Integrations of tenant ${c.tenant} that use group ${c.group} lose this route. To use the machine again, pair it with a new token.</p>
<div class="actions">${actionForm(`${BASE}/connectors/${c.id}/revoke`, csrf, 'Revoke connector', { cls: 'danger', hidden: filtered ? { confirm: 'yes', filtered: '1' } : { confirm: 'yes' } })}<a class="button secondary" href="${BASE}/connectors${query({ tenant: c.tenant })}">Cancel</a></div></section>`;
}
