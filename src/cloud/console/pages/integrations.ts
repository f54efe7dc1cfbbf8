/**
 * Integrations of one tenant: the status panel of each (UEM Server, Device Sync Status, App Sync
 * Status, Tagging, Policy Groups — green, red or gray, in words as well as colour), its settings and
 * actions (Sync now, Pause / Resume, Verify, Edit, Remove), the edit form and the remove
 * confirmation. Only non-secret fields of an integration are ever rendered.
 */
import type { UemGroup, Vendor } from '../../../uem/adapter.js';
import { shownComponent, type ComponentStatus, type Indicator } from '../../integrations/engine.js';
import { INTERVALS } from '../../integrations/model.js';
import { revisionOf } from '../../integrations/revision.js';
import type { VerifyResult } from '../../integrations/service.js';
import type { IntegrationRecord } from '../../state.js';
import { ago, html, plural, query, type Html } from '../html.js';
import { BASE, actionForm, csrfField, tenantPicker } from '../layout.js';

export const VENDOR_NAMES: Record<Vendor, string> = {
  'workspace-one': 'Workspace ONE UEM',
  'ivanti-epmm': 'Ivanti EPMM',
  hexnode: 'Hexnode UEM',
};

export const COMPONENTS = [
  ['uemServer', 'UEM Server'],
  ['deviceSync', 'Device Sync Status'],
  ['appSync', 'App Sync Status'],
  ['tagging', 'Tagging'],
  ['policyGroups', 'Policy Groups'],
] as const;
export type ComponentKey = (typeof COMPONENTS)[number][0];

const WORDS: Record<Indicator, [string, string]> = {
  green: ['✔', 'OK'],
  red: ['✘', 'Needs attention'],
  gray: ['–', 'Not enabled'],
};

/** What the panel shows: the stored status, with a paused integration's device and app syncs gray "Paused" (as GET …/status). */
export function shownStatus(rec: IntegrationRecord, key: ComponentKey): { status: ComponentStatus; word: string; glyph: string } {
  const s = rec.status[key] as ComponentStatus;
  if (rec.paused && (key === 'deviceSync' || key === 'appSync')) return { status: shownComponent(s, key, true), word: 'Paused', glyph: '⏸' };
  const [glyph, word] = WORDS[s.indicator];
  return { status: s, word, glyph };
}

export function integrationPath(rec: Pick<IntegrationRecord, 'tenant' | 'id'>, action = ''): string {
  return `${BASE}/integrations/${encodeURIComponent(rec.tenant)}/${encodeURIComponent(rec.id)}${action ? `/${action}` : ''}`;
}

function words(key: string): string {
  return key.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

function component(rec: IntegrationRecord, key: ComponentKey, name: string, now: number): Html {
  const { status: s, word, glyph } = shownStatus(rec, key);
  const counts = Object.entries(s.counts);
  return html`<li class="ind-${s.indicator}" data-component="${key}" data-indicator="${s.indicator}"><span class="comp">${name}</span><span class="ind"><span aria-hidden="true">${glyph}</span> ${word}</span>
<p class="msg">${s.message}</p><p class="times">Last run ${ago(s.lastRun, now)} · last success ${ago(s.lastSuccess, now)}</p>${
    counts.length ? html`<p class="counts">${counts.map(([k, n], i) => html`${i ? ' · ' : ''}${words(k)} ${n}`)}</p>` : ''
  }</li>`;
}

function routeText(rec: IntegrationRecord): Html {
  const r = rec.route;
  if (r.via === 'direct') return html`direct from the cloud`;
  if ('target' in r) return html`through a connector of group <strong>${r.group}</strong>, its target <code>${r.target}</code>`;
  return html`through a connector of group <strong>${r.group}</strong>, server details pushed to it`;
}

function groupNames(rec: IntegrationRecord): Html {
  if (rec.sync.groups.length === 0) return html`<span class="warn">none selected: edit the integration to choose them</span>`;
  return html`${rec.sync.groups
    .map((id) => {
      const g = rec.groupsCache.find((x) => x.id === id);
      return g ? `${g.name} (${shownId(id)})` : id;
    })
    .join(', ')}`;
}

function settings(rec: IntegrationRecord, devices: number, now: number): Html {
  const pii = rec.sync.pii;
  const imported = [pii.deviceName ? 'device names' : '', pii.deviceNumber ? 'phone numbers' : '', pii.email ? 'e-mail addresses' : ''].filter(Boolean);
  const t = rec.tagging;
  const tags = [t.deviceStatus ? 'device status' : '', t.deviceRisk ? 'device risk' : '', t.threatFactors ? 'threat factors' : ''].filter(Boolean);
  return html`<dl>
<dt>UEM</dt><dd>${VENDOR_NAMES[rec.vendor]}${rec.serverAddress ? html` at <code>${rec.serverAddress}</code>` : ''}</dd>
<dt>Route</dt><dd>${routeText(rec)}</dd>
<dt>Groups</dt><dd>${groupNames(rec)}</dd>
<dt>Sync intervals</dt><dd>devices every ${rec.sync.deviceSyncIntervalMinutes} min, apps every ${rec.sync.appSyncIntervalMinutes} min</dd>
<dt>Deletion</dt><dd>after ${plural(rec.sync.deviceDeletionAfterSyncs, 'sync')} without the device; at most ${rec.sync.deviceDeletionThresholdPercent}% at once</dd>
<dt>Personal data</dt><dd>${imported.length ? `imports ${imported.join(', ')}` : 'none imported'}</dd>
<dt>Tagging</dt><dd>${tags.length ? html`${tags.join(', ')} (prefix <code>${t.prefix}</code>)` : 'off'}</dd>
<dt>Inventory</dt><dd><a href="${BASE}/devices${query({ tenant: rec.tenant, integration: rec.id })}">${plural(devices, 'device')}</a></dd>
<dt>Changed</dt><dd>${ago(rec.updatedAt, now)} (created ${ago(rec.createdAt, now)})</dd>
</dl>`;
}

function verifyBox(r: VerifyResult): Html {
  const word = { pass: 'PASS', fail: 'FAIL', skip: 'SKIPPED' } as const;
  const cls = { pass: 'good', fail: 'bad', skip: 'muted' } as const;
  return html`<div class="verify" role="status"><h3>Verification ${r.ok ? html`<span class="good">passed</span>` : html`<span class="bad">failed</span>`}</h3><ol class="steps">${r.steps.map(
    (s) => html`<li><strong class="${cls[s.status]}">${word[s.status]}</strong> ${s.title}: ${s.detail}${s.hint && s.status === 'fail' ? html`<br><em>→ ${s.hint}</em>` : ''}</li>`,
  )}</ol></div>`;
}

function panel(rec: IntegrationRecord, devices: number, csrf: string, now: number, verify: VerifyResult | undefined): Html {
  const h = `h-${rec.id}`;
  const named = html`<span class="sr"> ${rec.displayName}</span>`;
  return html`<article class="card integration" id="${rec.id}" aria-labelledby="${h}" data-integration="${rec.id}">
<h2 id="${h}">${rec.displayName}</h2>
<p class="muted">${VENDOR_NAMES[rec.vendor]} · <code>${rec.id}</code> · ${rec.paused ? html`<strong class="warn">Paused</strong>` : html`<strong class="good">Active</strong>`}</p>
<ul class="status" aria-label="Status of ${rec.displayName}">${COMPONENTS.map(([k, n]) => component(rec, k, n, now))}</ul>
${verify ? verifyBox(verify) : ''}
<h3>Settings</h3>${settings(rec, devices, now)}
<div class="actions">
${actionForm(integrationPath(rec, 'sync'), csrf, html`Sync now${named}`)}
${rec.paused ? actionForm(integrationPath(rec, 'resume'), csrf, html`Resume${named}`, { cls: 'secondary' }) : actionForm(integrationPath(rec, 'pause'), csrf, html`Pause${named}`, { cls: 'secondary' })}
${actionForm(integrationPath(rec, 'verify'), csrf, html`Verify${named}`, { cls: 'secondary' })}
<a class="button secondary" href="${integrationPath(rec, 'edit')}">Edit${named}</a>
<a class="button danger" href="${integrationPath(rec, 'remove')}">Remove${named}</a>
</div></article>`;
}

export interface NewForm {
  vendor: string;
  displayName: string;
  group: string;
  target: string;
  error?: string;
}

/** The add form's fields by the API's names for them, as its error messages use them. */
const NEW_FIELDS: Array<[api: string, id: string, label: string]> = [
  ['route.target', 'new-target', 'Connector target id'],
  ['route.group', 'new-group', 'Connector group'],
  ['displayName', 'new-name', 'Display name'],
  ['vendor', 'new-vendor', 'UEM'],
];

function newForm(tenant: string, csrf: string, f: NewForm | undefined): Html {
  const v = f ?? { vendor: 'workspace-one', displayName: '', group: 'default', target: '' };
  // The message in the form's words (its labels, not the API's field names), tied to its field.
  const hit = f?.error ? NEW_FIELDS.find(([api]) => f.error!.includes(`${api}:`)) : undefined;
  const text = f?.error && hit ? f.error.replace(`${hit[0]}:`, `${hit[2]}:`) : f?.error;
  const err = text ? html`<p class="field-error" id="new-error" role="alert">${text}</p>` : '';
  const invalid = (id: string): Html => (hit?.[1] === id ? html` aria-invalid="true" aria-describedby="new-error"` : html``);
  return html`<section class="card" aria-labelledby="h-new"><h2 id="h-new">Add an integration</h2>
<p>Through a connector's own target: the UEM's address and credentials stay in the connector's config. (A direct route or server details pushed to a connector: use the API, <code>POST /api/v1/tenants/${tenant}/integrations</code>.) Choose the groups to sync afterwards, in Edit.</p>
${err}<form class="row" method="post" action="${BASE}/integrations/new">${csrfField(csrf)}<input type="hidden" name="tenant" value="${tenant}">
<div class="field"><label for="new-vendor">UEM</label><select id="new-vendor" name="vendor">${Object.entries(VENDOR_NAMES).map(
    ([k, n]) => html`<option value="${k}"${k === v.vendor ? html` selected` : ''}>${n}</option>`,
  )}</select></div>
<div class="field"><label for="new-name">Display name</label><input id="new-name" name="displayName" value="${v.displayName}" required maxlength="100"${invalid('new-name')}></div>
<div class="field"><label for="new-group">Connector group</label><input id="new-group" name="group" value="${v.group}" required maxlength="63" autocapitalize="off" spellcheck="false"${invalid('new-group')}></div>
<div class="field"><label for="new-target">Connector target id</label><input id="new-target" name="target" value="${v.target}" required maxlength="64" pattern="[A-Za-z0-9_\-]{1,64}" autocapitalize="off" spellcheck="false"${invalid('new-target')}></div>
<button type="submit">Add integration</button></form>
<p class="hint">Connector target id: the <code>id</code> of a target in the connector's config (letters, digits, "-" and "_").</p></section>`;
}

export interface IntegrationsView {
  tenant: string | undefined;
  tenants: string[];
  integrations: IntegrationRecord[];
  deviceCounts: Map<string, number>;
  csrf: string;
  now: number;
  verify?: { id: string; result: VerifyResult };
  newForm?: NewForm;
}

export function integrationsBody(v: IntegrationsView): Html {
  const picker = tenantPicker(`${BASE}/integrations`, v.tenants, v.tenant);
  if (!v.tenant) return html`<h1>Integrations</h1><section class="card">${picker}</section>`;
  const list =
    v.integrations.length === 0
      ? html`<section class="card" aria-labelledby="h-none"><h2 id="h-none">No integrations</h2><p>Tenant ${v.tenant} has no UEM integration yet.</p></section>`
      : v.integrations.map((rec) => panel(rec, v.deviceCounts.get(rec.id) ?? 0, v.csrf, v.now, v.verify?.id === rec.id ? v.verify.result : undefined));
  return html`<h1>Integrations of ${v.tenant}</h1>
<section class="card" aria-label="Tenant picker">${picker}<p class="hint">Green: working. Red: failing, or not complete yet. Gray: not enabled (or paused). Reload the page to see a sync's progress.</p></section>
${list}
${newForm(v.tenant, v.csrf, v.newForm)}`;
}

// ---- edit ------------------------------------------------------------------------------------

export interface EditValues {
  displayName: string;
  groups: string[];
  pii: { deviceName: boolean; deviceNumber: boolean; email: boolean };
  deviceSync: string;
  appSync: string;
  delThreshold: string;
  delAfter: string;
  tagging: { deviceStatus: boolean; deviceRisk: boolean; threatFactors: boolean };
  prefix: string;
}

export function valuesOf(rec: IntegrationRecord): EditValues {
  return {
    displayName: rec.displayName,
    groups: [...rec.sync.groups],
    pii: { ...rec.sync.pii },
    deviceSync: String(rec.sync.deviceSyncIntervalMinutes),
    appSync: String(rec.sync.appSyncIntervalMinutes),
    delThreshold: String(rec.sync.deviceDeletionThresholdPercent),
    delAfter: String(rec.sync.deviceDeletionAfterSyncs),
    tagging: { deviceStatus: rec.tagging.deviceStatus, deviceRisk: rec.tagging.deviceRisk, threatFactors: rec.tagging.threatFactors },
    prefix: rec.tagging.prefix,
  };
}

export type GroupChoice = { listed: true; list: UemGroup[] } | { listed: false; why: string };

/** Field paths of the API's validation messages → the form's control and its label. */
export const FIELDS: Array<[string, string, string]> = [
  ['displayName', 'f-name', 'Display name'],
  ['sync.groups', 'f-groups', 'Groups to sync'],
  ['sync.pii', 'f-pii', 'Personal data to import'],
  ['sync.deviceSyncIntervalMinutes', 'f-device-interval', 'Device sync interval'],
  ['sync.appSyncIntervalMinutes', 'f-app-interval', 'App sync interval'],
  ['sync.deviceDeletionThresholdPercent', 'f-del-threshold', 'Deletion threshold'],
  ['sync.deviceDeletionAfterSyncs', 'f-del-after', 'Delete after'],
  ['tagging.prefix', 'f-prefix', 'Tag prefix'],
  ['tagging', 'f-tagging', 'Tagging'],
];

export interface FieldError {
  /** The control's id, when the message names a field of the form. */
  id: string | undefined;
  label: string | undefined;
  /** The message without its field path. */
  text: string;
}

/** Splits "sync.deviceSyncIntervalMinutes: must be …" into the form's field and the rest. */
export function fieldError(message: string): FieldError {
  const i = message.indexOf(': ');
  const path = i > 0 ? message.slice(0, i) : '';
  for (const [p, id, label] of FIELDS) {
    if (path === p || path.startsWith(`${p}.`) || path.startsWith(`${p}[`)) return { id, label, text: message.slice(i + 2) };
  }
  return { id: undefined, label: undefined, text: message };
}

export interface EditView {
  rec: IntegrationRecord;
  values: EditValues;
  groups: GroupChoice;
  error?: FieldError;
  csrf: string;
  now: number;
}

function depthOf(g: UemGroup, byId: Map<string, UemGroup>): number {
  let d = 0;
  for (let p = g.parentId ? byId.get(g.parentId) : undefined; p && d < 5; p = p.parentId ? byId.get(p.parentId) : undefined) d++;
  return d;
}

/** A group id as the UEM's console shows it: without the kind prefix ids carry to stay apart ("sg:31"). */
function shownId(id: string): string {
  return id.replace(/^[a-z]+:/, '');
}

/** More groups than this get a filter above them. */
const GROUP_FILTER_FROM = 15;

const KIND: Record<string, string> = { organization: 'organization group', smart: 'smart group', label: 'label', device_group: 'device group', policy: 'policy' };

export function editBody(v: EditView): Html {
  const { rec, values: f, error: e } = v;
  const errFor = (id: string): Html => (e?.id === id ? html`<p class="field-error" id="${id}-err">${e.text}</p>` : html``);
  const invalid = (id: string): Html => (e?.id === id ? html` aria-invalid="true"` : html``);
  const describedBy = (id: string, hint: boolean): Html => {
    const ids = [hint ? `${id}-hint` : '', e?.id === id ? `${id}-err` : ''].filter(Boolean).join(' ');
    return ids ? html` aria-describedby="${ids}"` : html``;
  };
  const number = (id: string, name: string, label: string, value: string, r: { min: number; max: number; step?: number }, hint: string): Html =>
    html`<div class="field-block"><label for="${id}">${label}</label><p class="hint" id="${id}-hint">${hint}</p><input id="${id}" name="${name}" type="number" inputmode="numeric" min="${r.min}" max="${r.max}" step="${r.step ?? 1}" value="${value}"${invalid(id)}${describedBy(id, true)}>${errFor(id)}</div>`;
  const check = (id: string, name: string, label: string, on: boolean, cls = '', value = 'on'): Html =>
    html`<label class="check${cls ? ` ${cls}` : ''}" for="${id}"><input type="checkbox" id="${id}" name="${name}" value="${value}"${on ? html` checked` : ''}> <span>${label}</span></label>`;
  const iv = INTERVALS[rec.vendor];
  const stepText = (r: { min: number; max: number; step: number }): string => `${r.min}–${r.max} minutes, in steps of ${r.step}.`;

  let groups: Html;
  if (v.groups.listed) {
    const byId = new Map(v.groups.list.map((g) => [g.id, g]));
    const unknown = f.groups.filter((id) => !byId.has(id));
    groups = html`<fieldset id="f-groups" class="groups-set${e?.id === 'f-groups' ? ' invalid' : ''}"${describedBy('f-groups', true)}><legend>Groups to sync</legend>
<p class="hint" id="f-groups-hint">The UEM's groups, as it lists them now. A parent group does not bring its child groups' devices: select each group to sync. A group (or its parent) already synced by another integration of the same UEM is refused.</p>
<input type="hidden" name="groupsListed" value="1">${
      // A UEM with thousands of groups: a filter (console.js; hidden without JavaScript, where the
      // browser's find-in-page does the same). Selected groups stay shown whatever it says.
      v.groups.list.length > GROUP_FILTER_FROM
        ? html`<div class="field group-filter" hidden><label for="f-groups-filter">Show groups whose name or id contains</label><input id="f-groups-filter" type="search" data-filter="f-groups" autocomplete="off" spellcheck="false" aria-describedby="f-groups-shown"><p class="hint" id="f-groups-shown" role="status"></p></div>`
        : ''
    }
<div class="groups">${v.groups.list.map((g, i) =>
      check(`g-${i}`, 'groups', `${g.name} (${KIND[g.kind] ?? g.kind} ${shownId(g.id)})`, f.groups.includes(g.id), `depth-${Math.min(depthOf(g, byId), 5)}`, g.id),
    )}${unknown.map((id, i) => check(`g-x${i}`, 'groups', `${id} (no longer listed by the UEM)`, true, '', id))}</div>
${v.groups.list.length === 0 ? html`<p>The UEM lists no groups this account can see.</p>` : ''}${errFor('f-groups')}</fieldset>`;
  } else {
    const names = f.groups.map((id) => rec.groupsCache.find((g) => g.id === id)?.name ?? id);
    groups = html`<fieldset id="f-groups"><legend>Groups to sync</legend><p class="flash warn" role="status">The UEM's groups cannot be listed now: ${v.groups.why}. The current selection is kept: ${
      names.length ? names.join(', ') : 'no groups'
    }.</p>${errFor('f-groups')}</fieldset>`;
  }

  const summary = e
    ? html`<p class="flash error" role="alert">Not saved. ${e.label ? html`${e.label}: ` : ''}${e.text}</p>`
    : html``;
  return html`<h1>Edit ${rec.displayName}</h1>
${summary}
<section class="card" aria-labelledby="h-edit"><h2 id="h-edit">Settings of <code>${rec.id}</code></h2>
<p class="muted">${VENDOR_NAMES[rec.vendor]} · tenant ${rec.tenant} · ${routeText(rec)}. Changes apply from the next run.</p>
<form class="stack" method="post" action="${integrationPath(rec, 'edit')}" novalidate>${csrfField(v.csrf)}
<input type="hidden" name="revision" value="${revisionOf(rec)}">
<div class="field-block"><label for="f-name">Display name</label><input id="f-name" name="displayName" value="${f.displayName}" maxlength="100" required${invalid('f-name')}${describedBy('f-name', false)}>${errFor('f-name')}</div>
${groups}
<fieldset id="f-pii"${describedBy('f-pii', true)}><legend>Personal data to import</legend><p class="hint" id="f-pii-hint">Turning a switch off erases what was imported under it.</p>
${check('pii-deviceName', 'pii_deviceName', 'Device names', f.pii.deviceName)}${check('pii-deviceNumber', 'pii_deviceNumber', 'Phone numbers', f.pii.deviceNumber)}${check('pii-email', 'pii_email', 'E-mail addresses and owner names', f.pii.email)}${errFor('f-pii')}</fieldset>
${number('f-device-interval', 'deviceSyncIntervalMinutes', 'Device sync interval (minutes)', f.deviceSync, iv.device, stepText(iv.device))}
${number('f-app-interval', 'appSyncIntervalMinutes', 'App sync interval (minutes)', f.appSync, iv.app, stepText(iv.app))}
${number('f-del-threshold', 'deviceDeletionThresholdPercent', 'Deletion threshold (%)', f.delThreshold, { min: 0, max: 100 }, 'A sync that would delete more than this share of the devices at once deletes none (0–100; 100 turns the check off).')}
${number('f-del-after', 'deviceDeletionAfterSyncs', 'Delete after (syncs)', f.delAfter, { min: 1, max: 100 }, 'A device the UEM no longer lists is deleted after this many complete syncs without it (1–100).')}
<fieldset id="f-tagging"${describedBy('f-tagging', true)}><legend>Tagging</legend><p class="hint" id="f-tagging-hint">Tags written back to the UEM: device status, risk level, threat factors.</p>
${check('tag-deviceStatus', 'tag_deviceStatus', 'Tag device status', f.tagging.deviceStatus)}${check('tag-deviceRisk', 'tag_deviceRisk', 'Tag device risk', f.tagging.deviceRisk)}${check('tag-threatFactors', 'tag_threatFactors', 'Tag threat factors', f.tagging.threatFactors)}
<label for="f-prefix">Tag prefix</label><input id="f-prefix" name="prefix" value="${f.prefix}" maxlength="31" autocapitalize="off" spellcheck="false"${invalid('f-prefix')}${describedBy('f-prefix', false)}>${errFor('f-prefix')}${errFor('f-tagging')}</fieldset>
<div class="actions"><button type="submit">Save changes</button><a class="button secondary" href="${BASE}/integrations${query({ tenant: rec.tenant })}#${rec.id}">Cancel</a></div>
</form></section>`;
}

export function removeBody(rec: IntegrationRecord, devices: number, csrf: string): Html {
  return html`<h1>Remove ${rec.displayName}</h1><section class="card" aria-labelledby="h-rm"><h2 id="h-rm">Remove <code>${rec.id}</code>?</h2>
<p>${VENDOR_NAMES[rec.vendor]} · tenant ${rec.tenant} · ${routeText(rec)}</p>
<p class="flash warn">Removing stops its syncs (a running one is aborted) and deletes its ${plural(devices, 'device')} and their apps from the inventory. Tags already written to the UEM stay there. This cannot be undone.</p>
<div class="actions">${actionForm(integrationPath(rec, 'remove'), csrf, 'Remove integration', { cls: 'danger', hidden: { confirm: 'yes' } })}<a class="button secondary" href="${BASE}/integrations${query({ tenant: rec.tenant })}#${rec.id}">Cancel</a></div></section>`;
}
