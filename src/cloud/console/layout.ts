/**
 * The console's page shell and shared pieces: header (status badge, navigation, sign-out), flash
 * messages, form helpers, the tenant picker and paging links. Server-rendered; works without JS.
 */
import { count, html, plural, query, type Html } from './html.js';

export const BASE = '/console';

export type NavKey = 'connectors' | 'integrations' | 'devices' | 'apps';

export interface Flash {
  kind: 'ok' | 'error' | 'warn';
  text: string | Html;
}

export interface ShellView {
  title: string;
  /** Signed-in pages get navigation and the sign-out form. */
  signedIn?: { csrf: string; connected: number; tenant?: string | undefined };
  active?: NavKey;
  flash?: Flash | undefined;
  body: Html;
  now: number;
  /** The answer refuses what was sent (4xx): the title says so first. */
  refused?: boolean;
}

export function flashBox(f: Flash | undefined): Html {
  if (!f) return html``;
  // An error can take the focus (console.js moves it there on load when no field is marked).
  return html`<p class="flash ${f.kind}" role="${f.kind === 'error' ? 'alert' : 'status'}"${f.kind === 'error' ? html` tabindex="-1"` : ''}>${f.text}</p>`;
}

export function csrfField(csrf: string): Html {
  return html`<input type="hidden" name="csrf" value="${csrf}">`;
}

/** A one-button form (an action): the CSRF token, optional hidden fields, the button. */
export function actionForm(action: string, csrf: string, button: Html | string, opts: { cls?: string; hidden?: Record<string, string> } = {}): Html {
  const hidden = Object.entries(opts.hidden ?? {}).map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`);
  return html`<form class="inline" method="post" action="${action}">${csrfField(csrf)}${hidden}<button type="submit"${opts.cls ? html` class="${opts.cls}"` : ''}>${button}</button></form>`;
}

const NAV: Array<[NavKey, string, boolean]> = [
  ['connectors', 'Connectors', false],
  ['integrations', 'Integrations', true],
  ['devices', 'Devices', true],
  ['apps', 'Apps', true],
];

export function shell(v: ShellView): string {
  const s = v.signedIn;
  const badge = s
    ? // Green only when something is connected: "0 connectors connected" in green read as all well.
      html`<p class="badge${s.connected === 0 ? ' off' : ''}" role="status">${plural(s.connected, 'connector')} connected</p>`
    : html`<p class="badge off" role="status">Signed out</p>`;
  const nav = s
    ? html`<nav class="main" aria-label="Console">${NAV.map(
        ([k, label, perTenant]) => html`<a href="${BASE}/${k}${perTenant ? query({ tenant: s.tenant }) : ''}"${v.active === k ? html` aria-current="page"` : ''}>${label}</a>`,
      )}</nav><form method="post" action="${BASE}/logout">${csrfField(s.csrf)}<button type="submit" class="secondary">Sign out</button></form>`
    : html``;
  const doc = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${v.refused ? 'Error: ' : ''}${v.title} · uemlink cloud console</title>
<link rel="stylesheet" href="${BASE}/assets/console.css"><script src="${BASE}/assets/console.js" defer></script></head>
<body><header class="top"><p class="brand">uemlink cloud</p>${badge}${nav}</header>
<main id="main">${flashBox(v.flash)}${v.body}</main>
<footer><p>Rendered <time datetime="${new Date(v.now).toISOString()}">${new Date(v.now).toISOString().slice(0, 19).replace('T', ' ')} UTC</time>. Reload the page to update it.</p></footer>
</body></html>`;
  return doc.value;
}

/** The tenant picker: a GET form to `action` keeping `keep` fields (e.g. the search). */
export function tenantPicker(action: string, tenants: string[], current: string | undefined, id = 'tenant'): Html {
  if (tenants.length === 0) return html`<p class="muted">No tenants yet: create a pairing token or an integration first.</p>`;
  return html`<form class="row" method="get" action="${action}" aria-label="Choose a tenant"><div class="field"><label for="${id}">Tenant</label><select id="${id}" name="tenant">${tenants.map(
    (t) => html`<option value="${t}"${t === current ? html` selected` : ''}>${t}</option>`,
  )}</select></div><button type="submit" class="secondary">Show</button></form>`;
}

/** "Page 2 of 3 (51–100 of 120 devices)" with Previous / Next links keeping the other parameters. */
export function pager(path: string, params: Record<string, string | undefined>, page: number, pageSize: number, total: number, noun: string, label = 'Pages'): Html {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const first = total === 0 ? 0 : (page - 1) * pageSize + 1;
  const last = Math.min(total, page * pageSize);
  const link = (p: number, label: string, rel: string): Html => html`<a href="${path}${query({ ...params, page: p > 1 ? p : undefined })}" rel="${rel}">${label}</a>`;
  return html`<nav class="pages" aria-label="${label}"><span>Page ${count(page)} of ${count(pages)} (${count(first)}–${count(last)} of ${plural(total, noun)})</span>${page > 1 ? link(page - 1, '← Previous page', 'prev') : ''}${
    page < pages ? link(page + 1, 'Next page →', 'next') : ''
  }</nav>`;
}
