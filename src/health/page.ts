/**
 * The local page, rendered on the server: it works with JavaScript off (every action is a plain form)
 * and loads nothing from outside (the customer network may be offline). Every value is escaped.
 */
import { esc } from '../common/web.js';
import type { Diagnosis } from '../connector/diagnose.js';
import type { CertView, ConnectorStatus, TargetStatus } from '../connector/status.js';

export interface PageView {
  status: ConnectorStatus;
  csrf: string;
  /** A message after an action: success or error. */
  flash?: { kind: 'ok' | 'error'; text: string };
  diagnosis?: Diagnosis;
  /** A refused "Pair again": its form is shown open. */
  repair?: boolean;
  /** Where the local admin password is kept. */
  passwordFile?: string;
  /** false: the answer to a form (at /actions/…), which does not refresh itself. */
  live?: boolean;
  /** The id of the password field whose form was refused for a wrong password: marked there. */
  wrongPassword?: string;
}

const STATE_TEXT: Record<ConnectorStatus['tunnel']['state'], string> = {
  connected: 'Connected',
  connecting: 'Connecting…',
  draining: 'Draining (finishing requests, taking no new ones)',
  disconnected: 'Disconnected',
  refused: 'Refused by the cloud',
  stopped: 'Stopped',
  unpaired: 'Not paired',
};

function ago(iso: string | null): string {
  if (!iso) return '—';
  const d = Math.round((Date.now() - Date.parse(iso)) / 1000);
  // A time ahead of this machine's clock (the cloud's, skewed) reads "just now", not "-5 s ago".
  const s = Math.max(0, d);
  const rel = s < 60 ? `${s} s` : s < 3600 ? `${Math.round(s / 60)} min` : s < 86400 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
  // The exact time on hover (and for screen readers' "title"): "3 h ago" alone cannot be matched to a log line.
  const exact = `${iso.slice(0, 19).replace('T', ' ')} UTC`;
  return `<time datetime="${esc(iso)}" title="${esc(exact)}">${d < 5 ? 'just now' : `${esc(rel)} ago`}</time>`;
}

function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

/** Rows of [term, html]; a third element `true` gives a long value the full width, under its term. */
function dl(rows: Array<[string, string] | [string, string, true]>): string {
  return `<dl>${rows.map(([k, v, wide]) => `<dt${wide ? ' class="wide"' : ''}>${esc(k)}</dt><dd${wide ? ' class="wide"' : ''}>${v}</dd>`).join('')}</dl>`;
}

function passwordField(id: string, v: PageView): string {
  const file = v.passwordFile;
  const hint = file ? `<small id="${id}-hint" class="muted">In ${esc(file)} on the connector's machine (root and the service user can read it).</small>` : '';
  return `<label for="${id}">Local admin password</label><input id="${id}" name="password" type="password" autocomplete="current-password" required${passwordState(id, v, Boolean(file))}>${wrongPasswordText(id, v)}${hint}`;
}

/** aria-invalid and the error's id on the password field the refused form sent; its hint in any case. */
function passwordState(id: string, v: PageView, hinted: boolean): string {
  const ids = [...(v.wrongPassword === id ? [`${id}-error`] : []), ...(hinted ? [`${id}-hint`] : [])];
  return `${v.wrongPassword === id ? ' aria-invalid="true"' : ''}${ids.length ? ` aria-describedby="${ids.join(' ')}"` : ''}`;
}

function wrongPasswordText(id: string, v: PageView): string {
  return v.wrongPassword === id ? `<p class="field-error" id="${id}-error">Wrong local admin password: nothing was done.</p>` : '';
}

function form(action: string, csrf: string, inner: string, button: string): string {
  return `<form method="post" action="${esc(action)}"><input type="hidden" name="csrf" value="${esc(csrf)}">${inner}<button type="submit">${esc(button)}</button></form>`;
}

function cert(c: CertView | null): string {
  if (!c) return '—';
  const warn = c.daysLeft < 0 ? `<strong class="bad">expired</strong>` : c.expiringSoon ? `<strong class="warn">expires in ${c.daysLeft} days</strong>` : `${c.daysLeft} days left`;
  return `<span class="cert">${esc(c.subject)}<br><small>issuer ${esc(c.issuer)}<br>until ${esc(c.notAfter.slice(0, 10))} (${warn})</small></span>`;
}

/**
 * The targets table. On a phone its rows stack into cards (CSS), each cell labelled by data-label;
 * explicit roles keep it a table for assistive technology once `display` is changed.
 */
const TARGET_COLUMNS = ['Address', 'Reachable', 'Latency', 'Last status', 'TLS certificate', 'Problem'] as const;

function targetRow(t: TargetStatus): string {
  const reach =
    t.reachable === null
      ? '<span class="muted">not checked yet</span>'
      : !t.reachable
        ? '<span class="bad">✘ unreachable</span>'
        : t.checkStatus === 401 || t.checkStatus === 403
          ? `<span class="bad">✘ credentials rejected (HTTP ${esc(t.checkStatus)})</span>`
          : '<span class="good">✔ reachable</span>';
  const problem = t.error ? `<span class="bad">${esc(t.error.code)}</span>: ${esc(t.error.message)}` : t.lastStatus !== null && t.lastStatus >= 400 ? `<span class="warn">HTTP ${t.lastStatus}</span>` : '';
  const cells = [esc(t.baseUrl), reach, t.latencyMs === null ? '—' : `${t.latencyMs} ms`, String(t.lastStatus ?? '—'), cert(t.tls), problem];
  return `<tr role="row"><th role="rowheader" scope="row">${esc(t.id)}${t.origin === 'cloud' ? ' <small>(cloud-managed)</small>' : ''}</th>${cells
    .map((c, i) => `<td role="cell" data-label="${TARGET_COLUMNS[i]}"${i === 0 || i === 5 ? ' class="wrap"' : ''}>${c}</td>`)
    .join('')}</tr>`;
}

export function renderPage(v: PageView): string {
  const s = v.status;
  const t = s.tunnel;
  const state = t.state;
  const parts: string[] = [];

  if (v.flash) parts.push(`<p class="flash ${v.flash.kind}" role="${v.flash.kind === 'error' ? 'alert' : 'status'}"${v.flash.kind === 'error' ? ' tabindex="-1"' : ''}>${esc(v.flash.text)}</p>`);
  if (!s.ready && s.paired) parts.push(`<p class="flash warn" role="status">Not ready: ${esc(s.notReadyReason ?? '')}</p>`);

  // Identity and pairing
  if (s.paired) {
    parts.push(
      `<section aria-labelledby="h-id"><h2 id="h-id">Identity</h2>${dl([
        ['Connector id', `<code>${esc(s.connectorId)}</code>`],
        ['Tenant', esc(s.tenant)],
        ['Group', esc(s.group)],
        ['Cloud', esc(s.cloudUrl)],
        ['Paired', ago(s.pairedAt)],
        ['Certificate', cert(s.certificate)],
        ['Version', esc(s.version)],
      ])}<details${v.repair ? ' open' : ''}><summary>Pair again (replaces this identity)</summary>${form(
        '/actions/pair',
        v.csrf,
        `<label for="token2">New pairing string</label><textarea id="token2" name="token" rows="3" required spellcheck="false" autocomplete="off"></textarea><input type="hidden" name="force" value="1">${passwordField('pw-repair', v)}`,
        'Pair again',
      )}</details></section>`,
    );
  } else {
    parts.push(
      `<section aria-labelledby="h-pair"><h2 id="h-pair">Pair this connector</h2><p>Paste the pairing string issued by the cloud (it starts with <code>ulpt1.</code>).</p>${form(
        '/actions/pair',
        v.csrf,
        `<label for="token">Pairing string</label><textarea id="token" name="token" rows="3" required spellcheck="false" autocomplete="off"></textarea>${passwordField('pw-pair', v)}`,
        'Pair',
      )}<p class="muted">Version ${esc(s.version)}</p></section>`,
    );
  }

  // Tunnel
  const err = t.lastError ? `<span class="bad">${esc(t.lastError.code)}</span>: ${esc(t.lastError.message)} (${ago(t.lastError.at)})` : '—';
  parts.push(
    `<section aria-labelledby="h-tunnel"><h2 id="h-tunnel">Tunnel</h2>${dl([
      ['State', `<span class="state-text state-${state}">${esc(STATE_TEXT[state])}</span>`],
      ['Since', ago(t.since)],
      ['Round trip', t.rttMs === null ? '—' : `${t.rttMs} ms`],
      ['Reconnects', String(t.reconnects)],
      ['Requests in flight', String(t.activeStreams)],
      ['Next attempt', t.retryAt ? `<time datetime="${esc(t.retryAt)}">${esc(t.retryAt.slice(11, 19))} UTC</time>` : '—'],
      t.lastError ? ['Last error', err, true] : ['Last error', err],
    ])}</section>`,
  );

  // System
  const sys = s.system;
  parts.push(
    `<section aria-labelledby="h-sys"><h2 id="h-sys">System</h2>${dl([
      ['Host', esc(sys.hostname)],
      ['OS', esc(sys.os)],
      ['CPU load', sys.cpuLoadPercent === null ? '—' : `${sys.cpuLoadPercent} %`],
      ['Memory', sys.memory ? `${bytes(sys.memory.usedBytes)} of ${bytes(sys.memory.totalBytes)} used` : '—'],
      ['Free disk (state dir)', bytes(sys.stateDirFreeBytes)],
      ['Host uptime', `${Math.round(sys.uptimeSeconds / 3600)} h`],
      ['Connector uptime', `${Math.round(sys.processUptimeSeconds / 60)} min`],
      ['Node.js', esc(sys.node)],
    ])}</section>`,
  );

  // Targets
  parts.push(
    `<section aria-labelledby="h-targets"><h2 id="h-targets">UEM targets</h2>${
      s.targets.length === 0
        ? '<p>No targets are configured.</p>'
        : `<div class="scroll"><table class="targets" role="table"><caption class="sr">UEM targets and their last health check</caption><thead role="rowgroup"><tr role="row">${['Target', ...TARGET_COLUMNS]
            .map((h) => `<th role="columnheader" scope="col">${h}</th>`)
            .join('')}</tr></thead><tbody role="rowgroup">${s.targets.map(targetRow).join('')}</tbody></table></div>`
    }</section>`,
  );

  // Pending cloud-managed targets
  if (s.pendingTargets.length > 0 || s.managedTargets.length > 0) {
    // One form per target: one password field, Approve and Reject as its buttons (Reject posts to its
    // own action through formaction), so no two fields on the page share the same label.
    const rows = s.managedTargets.map((m) => {
      const base = `/actions/targets/${encodeURIComponent(m.id)}`;
      const pw = `pw-mt-${esc(m.id)}`;
      const approve = m.state !== 'accepted';
      const reject = m.state !== 'refused';
      // A disabled, hidden first submit button is the form's default button, so Enter in the password
      // field submits nothing (HTML's implicit submission clicks the default button unless it is
      // disabled): accepting credentials the cloud pushed, or refusing a live target, takes a click
      // on the named button, not a keystroke meant to finish typing the password.
      const noImplicit = '<button type="submit" disabled hidden>Choose Approve or Reject</button>';
      const buttons = `${noImplicit}${approve ? '<button type="submit">Approve</button>' : ''}${reject ? `<button type="submit"${approve ? ` formaction="${esc(base)}/reject" class="secondary"` : ''}>Reject</button>` : ''}`;
      const decide = `<form method="post" action="${esc(base)}/${approve ? 'approve' : 'reject'}"><input type="hidden" name="csrf" value="${esc(v.csrf)}"><input type="hidden" name="offeredAt" value="${esc(m.offeredAt)}"><label for="${pw}">Local admin password<span class="sr"> for ${esc(m.id)}</span></label><input id="${pw}" name="password" type="password" autocomplete="current-password" required${passwordState(pw, v, false)}>${wrongPasswordText(pw, v)}<div class="buttons">${buttons}</div></form>`;
      const others = m.contacts.filter((h) => h !== m.host);
      const also = others.length > 0 ? `<p><small>Also contacts: ${others.map((h) => `<span class="url">${esc(h)}</span>`).join(', ')} (OAuth2 token endpoint)</small></p>` : '';
      return `<li><p><strong>${esc(m.id)}</strong> → <span class="url">${esc(m.baseUrl)}</span> <span class="tag ${esc(m.state)}">${esc(m.state)}</span></p>${also}${m.reason ? `<p><small>${esc(m.reason)}</small></p>` : ''}${decide}</li>`;
    });
    parts.push(`<section aria-labelledby="h-managed"><h2 id="h-managed">Targets offered by the cloud</h2><ul class="managed">${rows.join('')}</ul></section>`);
  }

  // Diagnostics
  const diag = v.diagnosis
    ? `<ol class="checks">${v.diagnosis.checks
        .map((c) => `<li class="check ${esc(c.status)}"><span class="tag ${esc(c.status)}">${esc(c.status.toUpperCase())}</span> <strong>${esc(c.title)}</strong><br>${esc(c.detail)}${c.hint && c.status !== 'pass' ? `<br><em>→ ${esc(c.hint)}</em>` : ''}</li>`)
        .join('')}</ol><p>${v.diagnosis.ok ? '<span class="good">All checks passed.</span>' : '<span class="bad">Some checks failed; the hints say what to do.</span>'}</p>`
    : '<p>Checks DNS, proxy, TLS, the clock, the tunnel and an authenticated request to each UEM.</p>';
  parts.push(`<section aria-labelledby="h-diag"><h2 id="h-diag">Diagnostics</h2>${diag}${form('/actions/diagnose', v.csrf, '', 'Run diagnostics')}</section>`);

  // Recent problems
  parts.push(
    `<section aria-labelledby="h-problems"><h2 id="h-problems">Recent warnings and errors</h2>${
      s.recentProblems.length === 0
        ? '<p>None.</p>'
        : `<ol class="problems" reversed>${[...s.recentProblems]
            .reverse()
            .map((p) => `<li><time datetime="${esc(p.time)}">${esc(p.time.slice(0, 19).replace('T', ' '))} UTC</time> <span class="tag ${esc(p.level)}">${esc(p.level)}</span> ${esc(p.message)}${p.code ? ` <code>${esc(p.code)}</code>` : ''}</li>`)
            .join('')}</ol>`
    }</section>`,
  );

  parts.push(
    `<section aria-labelledby="h-support"><h2 id="h-support">Support bundle</h2><p>A .tar.gz with status, diagnostics, the redacted config and recent logs, for support staff. Secrets are removed.</p>${form('/actions/support-bundle', v.csrf, passwordField('pw-bundle', v), 'Download support bundle')}</section>`,
  );

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${v.flash?.kind === 'error' ? 'Error: ' : ''}${esc(STATE_TEXT[state])} · uemlink connector${s.connectorId ? ` ${esc(s.connectorId)}` : ''}</title>
<link rel="stylesheet" href="/assets/page.css"><script src="/assets/page.js" defer></script></head>
<body><header><h1>uemlink connector</h1><p class="badge state-${state}" role="status" aria-live="polite">${esc(STATE_TEXT[state])}${s.ready ? ' · ready' : ''}</p></header>
<main>${parts.join('\n')}</main>
<footer><p>Updated <time datetime="${new Date().toISOString()}">${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC</time>. ${
    v.live === false
      ? 'This page shows the result of an action and does not refresh itself: <a href="/">back to the live status</a>.'
      : '<noscript>Reload the page to update it.</noscript><span class="js-only">The page refreshes itself every 10 s (not while you type, a form is open, the page is scrolled down or something on it has the focus). <button type="button" class="secondary" id="refresh-toggle" aria-pressed="false">Pause auto-refresh</button></span>'
  } Machine-readable: <a href="/api/status">/api/status</a>, <a href="/metrics">/metrics</a>, <a href="/readyz">/readyz</a>.</p></footer>
</body></html>`;
}
