/**
 * The cloud console in a real browser (Debian's chromium through playwright-core), against real
 * processes on loopback: `uemlink cloud run`, `uemlink connector run` with a target `ws1` pointing
 * at the Workspace ONE simulator (in this process), an integration created through the HTTP API.
 * Sign-in (wrong and right token), connectors, a pairing token shown once and used to pair a second
 * connector, revoking it behind a confirmation, the integration's status panel before and after Sync
 * Now, Pause / Resume, Edit (a refused value shown next to its field, then saved), devices and apps
 * with paging and search, Remove, CSRF and Origin refusals, sign-out. DOM, contrast and overflow
 * checks on every page, at 1280 px and 390 px. Screenshots go to test-results/console/.
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import type { Clock } from '../../src/common/clock.js';
import { createTestPki } from '../../src/common/pki.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { html } from '../../src/cloud/console/html.js';
import { SessionStore, safeNext } from '../../src/cloud/console/session.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { a11yProblems, contrastProblems, launchBrowser, overflowProblems, recordedPage, shotsDir, type PageRecorder } from '../helpers/browser.js';
import { startInprocCloud } from '../helpers/inproc.js';
import { ADMIN_TOKEN, connectorEntry, makeConnector, sleep, startCloud, tempDir, until, type Cloud, type Connector } from '../helpers/procs.js';

const SHOTS = shotsDir('console');
const TENANT = 'acme';
const COLOURS = { green: 'rgb(17, 99, 41)', red: 'rgb(164, 14, 38)', gray: 'rgb(87, 96, 106)' };

describe('console building blocks', () => {
  it('sessions end after 8 hours without use, and each use restarts the wait', () => {
    let t = 1_000_000;
    const clock = { now: () => t } as unknown as Clock;
    const store = new SessionStore(clock);
    const { id, session } = store.create('127.0.0.1');
    expect(id).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(session.csrf).to.match(/^[A-Za-z0-9_-]{43}$/).and.not.equal(id);
    t += 8 * 3600_000 - 1;
    expect(store.get(id)).to.equal(session);
    t += 8 * 3600_000 - 1;
    expect(store.get(id), 'used just before the end: still alive').to.equal(session);
    t += 8 * 3600_000;
    expect(store.get(id), '8 h idle').to.equal(undefined);
    expect(store.size).to.equal(0);
    const other = store.create('127.0.0.1');
    store.destroy(other.id);
    expect(store.get(other.id)).to.equal(undefined);
    expect(store.get('not-a-session')).to.equal(undefined);
    expect(store.get(undefined)).to.equal(undefined);
  });

  it('escapes every interpolated value; redirects after sign-in stay inside the console', () => {
    const v = `<script>alert("x")</script>'&`;
    expect(html`<p title="${v}">${v}</p>`.value).to.equal('<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;</p>');
    expect(html`${[v, html`<b>${v}</b>`, null, undefined, false, 0]}`.value).to.equal(`${'&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;'}<b>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;</b>0`);
    expect(safeNext('/console/devices?tenant=acme&page=2')).to.equal('/console/devices?tenant=acme&page=2');
    for (const bad of ['https://evil.example/console/', '//evil.example/console/x', '/console//evil', '/console/login', '/api/v1/connectors', '/console\\x', '/console/x\n', 42]) {
      expect(safeNext(bad), String(bad)).to.equal(undefined);
    }
  });
});

describe('e2e: the cloud console in a real browser (chromium, real processes)', function () {
  this.timeout(180_000);
  let browser: Browser;
  let ctx: BrowserContext;
  let cloud: Cloud;
  let sim: RunningSimulator<WorkspaceOneState>;
  let main: Connector;
  let mainId: string;
  let edge: Connector | undefined;
  let edgeId: string;
  let integrationId: string;
  let pairingToken = '';
  const recorders: PageRecorder[] = [];
  /** Every page's HTML, checked at the end for secrets. */
  const seen: Array<{ url: string; html: string }> = [];

  before(async () => {
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-console-sim-'), devices: 150, seed: 7 });
    // The integration's first scheduled run comes within the hour: the test presses Sync Now itself.
    cloud = await startCloud({ extra: { tunnel: { heartbeatSeconds: 2 }, integrations: { firstRunWithinSeconds: 3600, retryBaseMs: 20 } } });
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cloud.url });
    const c = sim.credentials;
    ({ c: main, id: mainId } = await startConnector('main', TENANT, 'default', [
      { id: 'ws1', baseUrl: sim.baseUrl, auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey }, tls: { caFile: 'uem-ca.pem' } },
    ]));
  });

  after(async () => {
    await ctx?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await edge?.proc?.stop();
    await main?.proc?.stop();
    await cloud?.proc?.stop();
    await sim?.close();
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    process.stderr.write(`--- cloud ---\n${cloud?.proc.raw.slice(-6000)}${cloud?.proc.stderr}\n`);
  });

  // ---- helpers ------------------------------------------------------------------------------

  /** Pairs (with `token`, or a new one from the API) and starts a connector; waits until the cloud sees it. */
  async function startConnector(label: string, tenant: string, group: string, targets: unknown[], token?: string): Promise<{ c: Connector; id: string }> {
    const dir = tempDir(`uemlink-console-${label}-`);
    writeFileSync(join(dir, 'uem-ca.pem'), sim.caPem, { mode: 0o600 });
    const c = await makeConnector({ dir, config: { targets } });
    let t = token;
    if (!t) {
      const r = await cloud.api('POST', '/api/v1/pairing-tokens', { tenant, group });
      expect(r.status, JSON.stringify(r.body)).to.equal(201);
      t = r.body.token as string;
    }
    const paired = await c.pair(t);
    expect(paired.code, paired.stderr).to.equal(0);
    const id = paired.stdout.trim();
    await c.start();
    await until(async () => (await connectorEntry(cloud, id))?.connected, 20_000, `connector ${label} connected`);
    return { c, id };
  }

  async function open(path: string, context: BrowserContext = ctx): Promise<Page> {
    const { page, rec } = await recordedPage(context);
    recorders.push(rec);
    await page.goto(`${cloud.url}${path}`);
    return page;
  }

  async function remember(page: Page): Promise<void> {
    seen.push({ url: page.url(), html: await page.content() });
  }

  async function shot(page: Page, name: string): Promise<void> {
    await remember(page);
    await page.screenshot({ path: join(SHOTS, name), fullPage: true });
  }

  async function expectAccessible(page: Page, where: string): Promise<void> {
    expect(await a11yProblems(page), `accessibility problems on ${where}`).to.deep.equal([]);
    expect(await contrastProblems(page), `contrast problems on ${where}`).to.deep.equal([]);
    expect(await overflowProblems(page), `overflow on ${where}`).to.deep.equal([]);
  }

  /** Clicks `button` (in a form posting to `path`); the POST's status and the Origin it carried. */
  async function submit(page: Page, button: Locator, path: string): Promise<{ status: number; origin: string | undefined }> {
    const answered = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === path);
    await button.click();
    const r = await answered;
    await page.waitForLoadState('load');
    return { status: r.status(), origin: (await r.request().allHeaders()).origin };
  }

  async function flash(page: Page): Promise<string> {
    return (await page.locator('main .flash').first().innerText()).trim();
  }

  function panel(page: Page): Locator {
    return page.locator(`article[data-integration="${integrationId}"]`);
  }

  function indicator(page: Page, component: string): Locator {
    return panel(page).locator(`li[data-component="${component}"]`);
  }

  async function indicators(page: Page): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const k of ['uemServer', 'deviceSync', 'appSync', 'tagging', 'policyGroups']) out[k] = (await indicator(page, k).getAttribute('data-indicator')) ?? '';
    return out;
  }

  /** The indicator's colour and words agree with its state. */
  async function expectIndicator(page: Page, component: string, state: 'green' | 'red' | 'gray', word: string, message: RegExp): Promise<void> {
    const li = indicator(page, component);
    expect(await li.getAttribute('data-indicator'), component).to.equal(state);
    expect((await li.locator('.ind').innerText()).trim(), `${component} in words`).to.match(new RegExp(`${word}$`));
    expect(await li.locator('.ind').evaluate((el) => (globalThis as any).getComputedStyle(el).color), `${component} colour`).to.equal(COLOURS[state]);
    expect(await li.evaluate((el) => (globalThis as any).getComputedStyle(el).borderLeftColor), `${component} bar colour`).to.equal(COLOURS[state]);
    expect(await li.locator('.msg').innerText(), `${component} message`).to.match(message);
  }

  /** Reloads until `ok` holds (every state is rendered by the server). */
  async function reloadUntil(page: Page, ok: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const start = Date.now();
    for (;;) {
      await page.reload();
      if (await ok()) return;
      if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${(await page.locator('main').innerText()).slice(0, 3000)}`);
      await sleep(500);
    }
  }

  async function phoneContext(): Promise<BrowserContext> {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await phone.addCookies(await ctx.cookies(`${cloud.url}/console/`));
    return phone;
  }

  async function onPhone(path: string, name: string, check?: (p: Page) => Promise<void>): Promise<void> {
    const phone = await phoneContext();
    try {
      const p = await open(path, phone);
      expect(new URL(p.url()).pathname).to.equal(path.split('?')[0]);
      await expectAccessible(p, `${path} at 390 px`);
      await check?.(p);
      await shot(p, name);
    } finally {
      await phone.close();
    }
  }

  // ---- 1. sign-in ------------------------------------------------------------------------------

  it('every page but sign-in needs a session; without one, pages send you to sign in and posts change nothing', async () => {
    for (const path of ['/console/', '/console/connectors', `/console/integrations?tenant=${TENANT}`, '/console/devices', '/console/apps', `/console/connectors/${mainId}/revoke`, '/console/nope']) {
      const res = await fetch(`${cloud.url}${path}`, { redirect: 'manual' });
      expect(res.status, path).to.equal(303);
      expect(res.headers.get('location'), path).to.match(/^\/console\/login(\?|$)/);
    }
    const post = await fetch(`${cloud.url}/console/connectors/${mainId}/revoke`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'confirm=yes' });
    expect(post.status).to.equal(303);
    expect(post.headers.get('location')).to.equal('/console/login');
    expect((await connectorEntry(cloud, mainId)).revoked).to.equal(false);
    // A bearer token is not a session: the console is for browsers.
    const bearer = await fetch(`${cloud.url}/console/connectors`, { redirect: 'manual', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(bearer.status).to.equal(303);
  });

  it('sign-in: a wrong admin token is refused, the right one opens a session (HttpOnly, SameSite=Strict cookie)', async () => {
    const page = await open('/console/connectors');
    expect(new URL(page.url()).pathname).to.equal('/console/login');
    expect(new URL(page.url()).searchParams.get('next')).to.equal('/console/connectors');
    expect((await page.locator('header .badge').innerText()).trim()).to.equal('Signed out');
    expect(await page.locator('nav.main').count(), 'no navigation before sign-in').to.equal(0);
    await expectAccessible(page, 'the sign-in page');
    await shot(page, 'login.png');

    await page.getByLabel('Admin token').fill('not-the-admin-token-at-all');
    const wrong = await submit(page, page.getByRole('button', { name: 'Sign in' }), '/console/login');
    expect(wrong.status).to.equal(401);
    expect(wrong.origin, 'the form post carries our Origin (Referrer-Policy: same-origin)').to.equal(cloud.url);
    // Said at the field (aria-invalid, aria-describedby), which takes the focus.
    expect(await page.locator('#token-error').innerText()).to.equal('The admin token is not valid.');
    expect(await page.locator('#token').getAttribute('aria-invalid')).to.equal('true');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).to.equal('token');
    expect(await page.title()).to.match(/^Error: Sign in/);
    expect((await ctx.cookies(`${cloud.url}/console/`)).some((c) => c.name === 'uemlink_console'), 'no session').to.equal(false);
    await expectAccessible(page, 'the refused sign-in');
    await shot(page, 'login-refused.png');

    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    const ok = await submit(page, page.getByRole('button', { name: 'Sign in' }), '/console/login');
    expect(ok.status).to.equal(303);
    expect(new URL(page.url()).pathname, 'back where it was going').to.equal('/console/connectors');
    const cookies = await ctx.cookies(`${cloud.url}/console/`);
    const session = cookies.find((c) => c.name === 'uemlink_console')!;
    expect(session, 'session cookie').to.not.equal(undefined);
    expect(session.value).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(session).to.include({ httpOnly: true, sameSite: 'Strict', path: '/console', secure: false, expires: -1 });
    const csrf = cookies.find((c) => c.name === 'uemlink_console_csrf')!;
    expect(csrf).to.include({ httpOnly: true, sameSite: 'Strict', path: '/console' });
    await page.close();
  });

  // ---- 2. connectors ---------------------------------------------------------------------------

  it('connectors page: state, tenant, group, host name, version, last seen and targets of the connector', async () => {
    const page = await open('/console/connectors');
    expect((await page.locator('h1').innerText()).trim()).to.equal('Connectors');
    expect((await page.locator('header .badge').innerText()).trim()).to.equal('1 connector connected');
    expect(await page.locator('header .badge').getAttribute('class')).to.equal('badge');
    expect(await page.locator('nav.main a[aria-current="page"]').innerText()).to.equal('Connectors');
    const row = page.locator(`tr[data-connector="${mainId}"]`);
    const cell = async (label: string): Promise<string> => (await row.locator(`td[data-label="${label}"]`).innerText()).trim();
    expect(await row.locator('th').innerText()).to.equal(mainId);
    expect(await cell('State')).to.equal('● Connected');
    expect(await row.locator('td[data-label="State"] .state').evaluate((el) => (globalThis as any).getComputedStyle(el).color)).to.equal(COLOURS.green);
    expect(await cell('Tenant')).to.equal(TENANT);
    expect(await cell('Group')).to.equal('default');
    expect(await cell('Host name')).to.equal(hostname());
    expect(await cell('Version')).to.match(/^\d+\.\d+\.\d+/);
    expect(await cell('Last seen')).to.match(/^(just now|\d+ s ago)\nconnected (just now|\d+ s ago|\d+ min ago)$/);
    expect(await cell('Targets')).to.equal('ws1');
    expect(await row.getByRole('link', { name: `Revoke connector ${mainId}` }).count()).to.equal(1);
    await expectAccessible(page, 'the connectors page');
    await shot(page, 'connectors.png');
    await page.close();
  });

  it('pairing token: created by the form, shown once (read-only field and a copy button), it pairs a second connector', async () => {
    const page = await open('/console/connectors');
    const form = page.locator('section[aria-labelledby="h-pair"]');
    await form.getByLabel('Tenant').fill(TENANT);
    await form.getByLabel('Connector group').fill('edge');
    await form.getByLabel('Valid for').selectOption({ label: '1 hour' });
    const r = await submit(page, form.getByRole('button', { name: 'Create pairing token' }), '/console/connectors/pairing-token');
    expect(r.status).to.equal(201);
    const field = page.getByLabel('Pairing token', { exact: true });
    pairingToken = await field.inputValue();
    expect(pairingToken).to.match(/^ulpt1\./);
    expect(await field.getAttribute('readonly')).to.not.equal(null);
    expect(await page.locator('#h-issued + .flash').innerText(), 'the issued flash').to.match(/^Pairing token created for tenant acme, group edge\. It expires in (59 min|60 min|1 h) \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\) and pairs one connector\.$/);
    const copy = page.getByRole('button', { name: 'Copy the token' });
    expect(await copy.isVisible(), 'the copy button (JavaScript on)').to.equal(true);
    await copy.click();
    await until(async () => (await page.locator('#new-token-copied').innerText()) === 'Copied to the clipboard.', 5000, 'the copy confirmation');
    expect(await page.evaluate(() => (globalThis as any).navigator.clipboard.readText() as Promise<string>)).to.equal(pairingToken);
    await expectAccessible(page, 'the new pairing token');
    await shot(page, 'pairing-token.png');

    // Shown once: the next visit of the page does not carry it.
    await page.goto(`${cloud.url}/console/connectors`);
    expect(await page.content()).to.not.contain(pairingToken);
    expect(await page.locator('#new-token').count()).to.equal(0);
    await page.close();

    // Without JavaScript the token is still there to select, and the copy button is not shown.
    const noJs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1024, height: 800 } });
    try {
      await noJs.addCookies(await ctx.cookies(`${cloud.url}/console/`));
      const p = await open('/console/connectors', noJs);
      const f = p.locator('section[aria-labelledby="h-pair"]');
      await f.getByLabel('Tenant').fill('acme-nojs');
      const made = await submit(p, f.getByRole('button', { name: 'Create pairing token' }), '/console/connectors/pairing-token');
      expect(made.status).to.equal(201);
      expect(await p.getByLabel('Pairing token', { exact: true }).inputValue()).to.match(/^ulpt1\./);
      expect(await p.getByRole('button', { name: 'Copy the token' }).isVisible()).to.equal(false);
      await shot(p, 'pairing-token-nojs.png');
    } finally {
      await noJs.close();
    }

    ({ c: edge, id: edgeId } = await startConnector('edge', TENANT, 'edge', [], pairingToken));
    const again = await open('/console/connectors');
    const row = again.locator(`tr[data-connector="${edgeId}"]`);
    expect((await row.locator('td[data-label="State"]').innerText()).trim()).to.equal('● Connected');
    expect((await row.locator('td[data-label="Group"]').innerText()).trim()).to.equal('edge');
    expect((await again.locator('header .badge').innerText()).trim()).to.equal('2 connectors connected');
    await again.close();
  });

  it('revoke: a confirmation page first, then the connector is revoked and disconnected', async () => {
    const page = await open('/console/connectors');
    await page.getByRole('link', { name: `Revoke connector ${edgeId}` }).click();
    await page.waitForLoadState('load');
    expect(new URL(page.url()).pathname).to.equal(`/console/connectors/${edgeId}/revoke`);
    expect((await page.locator('h1').innerText()).trim()).to.equal('Revoke connector');
    expect(await page.locator('main').innerText()).to.contain('its certificate can never connect again');
    // Nothing happened yet.
    expect((await connectorEntry(cloud, edgeId)).revoked).to.equal(false);
    await expectAccessible(page, 'the revoke confirmation');
    await shot(page, 'revoke-confirm.png');
    // Cancel goes back and changes nothing.
    await page.getByRole('link', { name: 'Cancel' }).click();
    await page.waitForLoadState('load');
    expect(new URL(page.url()).pathname).to.equal('/console/connectors');
    expect((await connectorEntry(cloud, edgeId)).revoked).to.equal(false);

    await page.getByRole('link', { name: `Revoke connector ${edgeId}` }).click();
    await page.waitForLoadState('load');
    const r = await submit(page, page.getByRole('button', { name: 'Revoke connector' }), `/console/connectors/${edgeId}/revoke`);
    expect(r.status).to.equal(303);
    expect(await flash(page)).to.equal(`Connector ${edgeId} revoked: it was disconnected and cannot connect again.`);
    const row = page.locator(`tr[data-connector="${edgeId}"]`);
    expect((await row.locator('td[data-label="State"]').innerText()).trim()).to.equal('✘ Revoked');
    expect(await row.locator('td[data-label="State"] .state').evaluate((el) => (globalThis as any).getComputedStyle(el).color)).to.equal(COLOURS.red);
    expect(await row.locator('td[data-label="Action"]').innerText()).to.match(/^revoked (just now|\d+ s ago)$/);
    const entry = await connectorEntry(cloud, edgeId);
    expect(entry).to.include({ revoked: true, connected: false });
    // The same revocation as the API's: the cloud logged it and the connector was told.
    await cloud.proc.waitLog((l) => l.message === 'connector revoked' && l.connectorId === edgeId && l.via === 'console', 5000, 'the revocation');
    await until(() => /REVOKED/.test(edge!.proc.raw), 10_000, 'the connector told it was revoked');
    // The first connector is untouched.
    expect((await row.page().locator(`tr[data-connector="${mainId}"] td[data-label="State"]`).innerText()).trim()).to.equal('● Connected');
    await expectAccessible(page, 'the connectors page after revoking');
    await shot(page, 'revoked.png');
    await page.close();
  });

  // ---- 3. integrations -------------------------------------------------------------------------

  it('integrations page: the five indicators before any sync (red / gray), in words and in colour', async () => {
    const created = await cloud.api('POST', `/api/v1/tenants/${TENANT}/integrations`, {
      vendor: 'workspace-one',
      displayName: 'WS1 Lab <Main>',
      route: { via: 'connector', group: 'default', target: 'ws1' },
    });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    integrationId = created.body.id as string;
    const page = await open(`/console/integrations?tenant=${TENANT}`);
    expect((await page.locator('h1').innerText()).trim()).to.equal(`Integrations of ${TENANT}`);
    expect(await page.getByLabel('Tenant', { exact: true }).inputValue()).to.equal(TENANT);
    const p = panel(page);
    // The name is shown as text, escaped.
    expect((await p.locator('h2').innerText()).trim()).to.equal('WS1 Lab <Main>');
    expect(await p.locator('.status > li .comp').allInnerTexts()).to.deep.equal(['UEM Server', 'Device Sync Status', 'App Sync Status', 'Tagging', 'Policy Groups']);
    await expectIndicator(page, 'uemServer', 'red', 'Needs attention', /^not verified yet$/);
    await expectIndicator(page, 'deviceSync', 'red', 'Needs attention', /^not synced yet$/);
    await expectIndicator(page, 'appSync', 'red', 'Needs attention', /^not synced yet$/);
    await expectIndicator(page, 'tagging', 'gray', 'Not enabled', /^tagging is off$/);
    await expectIndicator(page, 'policyGroups', 'gray', 'Not enabled', /^no app policies$/);
    expect(await indicator(page, 'deviceSync').locator('.times').innerText()).to.equal('Last run never · last success never');
    expect(await p.innerText()).to.contain('through a connector of group default, its target ws1');
    expect(await p.innerText()).to.contain('none selected: edit the integration to choose them');
    for (const name of ['Sync now', 'Pause', 'Verify']) expect(await p.getByRole('button', { name: `${name} WS1 Lab <Main>` }).count(), name).to.equal(1);
    for (const name of ['Edit', 'Remove']) expect(await p.getByRole('link', { name: `${name} WS1 Lab <Main>` }).count(), name).to.equal(1);
    await expectAccessible(page, 'the integrations page');
    await shot(page, 'integrations-before-sync.png');
    await page.close();
  });

  it('edit: groups from the UEM as checkboxes; a bad interval is refused next to its field; good values are saved', async () => {
    const page = await open(`/console/integrations?tenant=${TENANT}`);
    await panel(page).getByRole('link', { name: /^Edit/ }).click();
    await page.waitForLoadState('load');
    expect(new URL(page.url()).pathname).to.equal(`/console/integrations/${TENANT}/${integrationId}/edit`);
    const groups = page.locator('#f-groups');
    expect(await groups.locator('legend').innerText()).to.equal('Groups to sync');
    const labels = await groups.locator('label.check').allInnerTexts();
    expect(labels).to.include.members(['Acme Corp (organization group 570)', 'Sales (organization group 572)', 'All Devices (smart group 31)']);
    expect(labels.length).to.equal(sim.state.data.groups.length + sim.state.data.smartGroups.length);
    expect(await page.getByLabel('Device sync interval (minutes)').inputValue()).to.equal('60');
    expect(await page.getByLabel('Device names').isChecked()).to.equal(true);
    // A long list has a filter (by name or id, any case); a selected group stays shown.
    const visible = (): Promise<string[]> => groups.locator('label.check:visible').allInnerTexts();
    await page.getByLabel('All Devices (smart group 31)').check();
    const filter = page.getByLabel('Show groups whose name or id contains');
    await filter.fill('SALES');
    expect(await visible()).to.deep.equal(labels.filter((l) => /sales/i.test(l) || l === 'All Devices (smart group 31)'));
    expect(await page.locator('#f-groups-shown').innerText()).to.equal(`${(await visible()).length} of ${labels.length} groups shown (selected ones always)`);
    await filter.press('Enter');
    expect(new URL(page.url()).pathname, 'Enter in the filter does not send the form').to.equal(`/console/integrations/${TENANT}/${integrationId}/edit`);
    await filter.fill('');
    expect((await visible()).length).to.equal(labels.length);
    await page.getByLabel('All Devices (smart group 31)').uncheck();
    await expectAccessible(page, 'the edit form');
    await shot(page, 'edit.png');

    // A value outside the guides' range: the API's message, next to the field, nothing saved.
    await page.getByLabel('Device sync interval (minutes)').fill('15');
    await page.getByLabel('All Devices (smart group 31)').check();
    const bad = await submit(page, page.getByRole('button', { name: 'Save changes' }), `/console/integrations/${TENANT}/${integrationId}/edit`);
    expect(bad.status).to.equal(400);
    expect(await page.getByRole('alert').innerText()).to.equal('Not saved. Device sync interval: must be a whole number from 10 to 1440 in steps of 10 (got 15)');
    const field = page.getByLabel('Device sync interval (minutes)');
    expect(await field.getAttribute('aria-invalid')).to.equal('true');
    expect(await field.inputValue(), 'what was typed is kept').to.equal('15');
    expect(await page.locator('#f-device-interval-err').innerText()).to.equal('must be a whole number from 10 to 1440 in steps of 10 (got 15)');
    expect(await field.getAttribute('aria-describedby')).to.contain('f-device-interval-err');
    expect(await page.getByLabel('All Devices (smart group 31)').isChecked(), 'the selection is kept').to.equal(true);
    expect((await cloud.api('GET', `/api/v1/tenants/${TENANT}/integrations/${integrationId}`)).body.sync.deviceSyncIntervalMinutes).to.equal(60);
    await expectAccessible(page, 'the refused edit');
    await shot(page, 'edit-refused.png');

    await field.fill('30');
    await page.getByLabel('Tag device status').check();
    await page.getByLabel('Phone numbers').uncheck();
    const ok = await submit(page, page.getByRole('button', { name: 'Save changes' }), `/console/integrations/${TENANT}/${integrationId}/edit`);
    expect(ok.status).to.equal(303);
    expect(new URL(page.url()).pathname).to.equal('/console/integrations');
    expect(await flash(page)).to.equal('Saved WS1 Lab <Main>. The changes apply from the next run.');
    const settings = await panel(page).locator('dl').innerText();
    expect(settings).to.contain('devices every 30 min, apps every 60 min');
    expect(settings).to.contain('All Devices (31)');
    expect(settings).to.contain('imports device names, e-mail addresses');
    expect(settings).to.contain('device status (prefix uemlink)');
    const api = (await cloud.api('GET', `/api/v1/tenants/${TENANT}/integrations/${integrationId}`)).body;
    expect(api.sync).to.deep.include({ groups: ['sg:31'], deviceSyncIntervalMinutes: 30, pii: { deviceName: true, deviceNumber: false, email: true } });
    expect(api.tagging).to.include({ deviceStatus: true, deviceRisk: false });

    // The UEM unreachable: the form says why and keeps the current selection (no checkboxes to lose).
    sim.state.faults = { serverErrors: true };
    try {
      await panel(page).getByRole('link', { name: /^Edit/ }).click();
      await page.waitForLoadState('load');
      const notice = await page.locator('#f-groups .flash.warn').innerText();
      expect(notice).to.match(/^The UEM's groups cannot be listed now: .*500.*\. The current selection is kept: All Devices\.$/s);
      expect(await page.locator('#f-groups input[type="checkbox"]').count()).to.equal(0);
      expect(await page.locator('input[name="groupsListed"]').count()).to.equal(0);
      await expectAccessible(page, 'the edit form without the UEM');
      await shot(page, 'edit-uem-unreachable.png');
      // Saving re-checks the selected groups with the UEM, so it is refused while the UEM is down.
      await page.getByLabel('Device sync interval (minutes)').fill('40');
      const down = await submit(page, page.getByRole('button', { name: 'Save changes' }), `/console/integrations/${TENANT}/${integrationId}/edit`);
      expect(down.status).to.equal(502);
      expect(await page.getByRole('alert').innerText()).to.match(/^Not saved\. cannot list the UEM's groups to check the selection: /);
      expect(await page.getByLabel('Device sync interval (minutes)').inputValue()).to.equal('40');
    } finally {
      sim.state.faults = {};
    }
    expect((await cloud.api('GET', `/api/v1/tenants/${TENANT}/integrations/${integrationId}`)).body.sync).to.deep.include({ groups: ['sg:31'], deviceSyncIntervalMinutes: 30 });
    await page.close();
  });

  it('verify and Sync now: the checks pass, then every indicator turns green (reloading until it does)', async () => {
    const policy = await cloud.api('PUT', `/api/v1/tenants/${TENANT}/app-policies/Blocked%20apps`, { apps: ['com.example.blocked'] });
    expect(policy.status, JSON.stringify(policy.body)).to.equal(200);
    const page = await open(`/console/integrations?tenant=${TENANT}`);
    const v = await submit(page, panel(page).getByRole('button', { name: /^Verify/ }), `/console/integrations/${TENANT}/${integrationId}/verify`);
    expect(v.status).to.equal(200);
    expect(await panel(page).locator('.verify h3').innerText()).to.equal('Verification passed');
    expect(await panel(page).locator('.verify li').allInnerTexts()).to.have.length(4);
    await expectIndicator(page, 'uemServer', 'green', 'OK', /^verified: reachable, trusted, credentials accepted$/);
    await shot(page, 'verified.png');

    const r = await submit(page, panel(page).getByRole('button', { name: /^Sync now/ }), `/console/integrations/${TENANT}/${integrationId}/sync`);
    expect(r.status).to.equal(303);
    expect(await flash(page)).to.equal('Sync started for WS1 Lab <Main>: a device sync, then an app sync. Reload this page to follow it.');
    const allGreen = { uemServer: 'green', deviceSync: 'green', appSync: 'green', tagging: 'green', policyGroups: 'green' };
    await reloadUntil(page, async () => JSON.stringify(await indicators(page)) === JSON.stringify(allGreen), 60_000, 'five green indicators');
    await expectIndicator(page, 'uemServer', 'green', 'OK', /^connected$/);
    await expectIndicator(page, 'deviceSync', 'green', 'OK', /^synced \d+ devices of All Devices: \d+ added, 0 updated, 0 deleted$/);
    await expectIndicator(page, 'appSync', 'green', 'OK', /^read the apps of \d+ devices/);
    await expectIndicator(page, 'tagging', 'green', 'OK', /tags? up to date/);
    await expectIndicator(page, 'policyGroups', 'green', 'OK', /^1 policy group up to date/);
    expect(await indicator(page, 'deviceSync').locator('.times').innerText()).to.match(/^Last run (just now|\d+ s ago) · last success (just now|\d+ s ago)$/);
    expect(await indicator(page, 'deviceSync').locator('.counts').innerText()).to.match(/^devices \d+ · added \d+ · updated 0 · deleted 0 · pending deletion 0$/);
    await expectAccessible(page, 'the synced integration');
    await shot(page, 'integrations-synced.png');
    await page.close();
    await onPhone(`/console/integrations?tenant=${TENANT}`, 'integrations-phone.png', async (p) => {
      expect(await p.locator(`article[data-integration="${integrationId}"] li[data-indicator="green"]`).count()).to.equal(5);
    });
  });

  it('Pause shows the device sync as paused (gray); Resume makes it active again', async () => {
    const page = await open(`/console/integrations?tenant=${TENANT}`);
    const r = await submit(page, panel(page).getByRole('button', { name: /^Pause/ }), `/console/integrations/${TENANT}/${integrationId}/pause`);
    expect(r.status).to.equal(303);
    expect(await flash(page)).to.equal('WS1 Lab <Main> is paused: no scheduled device or app syncs until you resume it (Sync Now still runs one).');
    await expectIndicator(page, 'deviceSync', 'gray', 'Paused', /^paused \(last: synced \d+ devices of All Devices/);
    await expectIndicator(page, 'appSync', 'gray', 'Paused', /^paused \(last: /);
    expect(await panel(page).locator('p.muted strong').innerText()).to.equal('Paused');
    expect(await panel(page).getByRole('button', { name: /^Resume/ }).count()).to.equal(1);
    expect(await panel(page).getByRole('button', { name: /^Pause/ }).count()).to.equal(0);
    // The API agrees.
    const st = (await cloud.api('GET', `/api/v1/tenants/${TENANT}/integrations/${integrationId}/status`)).body;
    expect(st.deviceSync.indicator).to.equal('gray');
    expect(st.appSync.indicator).to.equal('gray');
    expect((await cloud.api('GET', `/api/v1/tenants/${TENANT}/integrations/${integrationId}`)).body.paused).to.equal(true);
    await expectAccessible(page, 'the paused integration');
    await shot(page, 'paused.png');

    const back = await submit(page, panel(page).getByRole('button', { name: /^Resume/ }), `/console/integrations/${TENANT}/${integrationId}/resume`);
    expect(back.status).to.equal(303);
    expect(await flash(page)).to.equal('WS1 Lab <Main> resumed: a device sync starts now.');
    await expectIndicator(page, 'deviceSync', 'green', 'OK', /^synced \d+ devices/);
    expect(await panel(page).locator('p.muted strong').innerText()).to.equal('Active');
    expect((await cloud.api('GET', `/api/v1/tenants/${TENANT}/integrations/${integrationId}`)).body.paused).to.equal(false);
    await page.close();
  });

  // ---- 4. inventory ----------------------------------------------------------------------------

  it('devices: 50 a page, Previous / Next, search, the integration filter, escaped search text', async () => {
    const total = (await cloud.api('GET', `/api/v1/tenants/${TENANT}/devices?pageSize=1`)).body.total as number;
    expect(total, 'devices synced').to.be.greaterThan(100);
    const pages = Math.ceil(total / 50);
    const page = await open(`/console/devices?tenant=${TENANT}`);
    expect((await page.locator('h1').innerText()).trim()).to.equal(`Devices of ${TENANT}`);
    const rows = page.locator('table.devices tbody tr');
    const pager = page.locator('nav.pages').first();
    expect(await rows.count()).to.equal(50);
    expect(await pager.locator('span').innerText()).to.equal(`Page 1 of ${pages} (1–50 of ${total} devices)`);
    expect(await pager.getByRole('link', { name: '← Previous page' }).count()).to.equal(0);
    expect(await rows.first().locator('td[data-label="Integration"]').innerText()).to.equal('WS1 Lab <Main>');
    // E-mail addresses are imported (switched on in Edit).
    expect(await rows.first().locator('td[data-label="Owner"]').innerText()).to.match(/@/);
    await expectAccessible(page, 'the devices page');
    await shot(page, 'devices.png');

    await pager.getByRole('link', { name: 'Next page →' }).click();
    await page.waitForLoadState('load');
    expect(new URL(page.url()).searchParams.get('page')).to.equal('2');
    expect(await rows.count()).to.equal(50);
    expect(await page.locator('nav.pages').first().locator('span').innerText()).to.equal(`Page 2 of ${pages} (51–100 of ${total} devices)`);
    await page.goto(`${cloud.url}/console/devices?tenant=${TENANT}&page=${pages}`);
    expect(await rows.count()).to.equal(total - (pages - 1) * 50);
    expect(await page.locator('nav.pages').first().getByRole('link', { name: 'Next page →' }).count()).to.equal(0);
    await page.locator('nav.pages').first().getByRole('link', { name: '← Previous page' }).click();
    await page.waitForLoadState('load');
    expect(new URL(page.url()).searchParams.get('page')).to.equal(String(pages - 1));
    // A page past the end shows the last one.
    await page.goto(`${cloud.url}/console/devices?tenant=${TENANT}&page=999`);
    expect(await page.locator('nav.pages').first().locator('span').innerText()).to.match(new RegExp(`^Page ${pages} of ${pages} `));

    // Search by a serial number: the GET form, the filter kept in the box.
    const serial = (await rows.locator('td[data-label="Serial number"]').allInnerTexts()).map((x) => x.trim()).find((x) => x !== '—')!;
    expect(serial, 'a device with a serial number').to.match(/\w{4,}/);
    await page.getByLabel('Search', { exact: true }).fill(serial);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState('load');
    expect(new URL(page.url()).searchParams.get('search')).to.equal(serial);
    expect(await rows.count()).to.be.at.least(1);
    for (const s of await page.locator('table.devices td[data-label="Serial number"]').allInnerTexts()) expect(s).to.contain(serial);
    expect(await page.getByLabel('Search', { exact: true }).inputValue()).to.equal(serial);

    // The integration filter.
    await page.goto(`${cloud.url}/console/devices?tenant=${TENANT}`);
    await page.getByLabel('Integration').selectOption({ label: 'WS1 Lab <Main>' });
    await page.getByLabel('Search', { exact: true }).fill('');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState('load');
    expect(new URL(page.url()).searchParams.get('integration')).to.equal(integrationId);
    expect(await page.locator('nav.pages').first().locator('span').innerText()).to.contain(`of ${total} devices`);

    // Markup in the search box comes back as text.
    const evil = `<img src=x onerror="document.title='pwned'">"'&`;
    await page.goto(`${cloud.url}/console/devices?tenant=${TENANT}&search=${encodeURIComponent(evil)}`);
    expect(await page.getByLabel('Search', { exact: true }).inputValue()).to.equal(evil);
    expect(await page.locator('main img').count()).to.equal(0);
    expect(await page.locator('section[aria-label="Device list"] p').innerText()).to.equal(`No device matches “${evil}”.`);
    expect(await page.title()).to.not.contain('pwned');
    await page.close();

    await onPhone(`/console/devices?tenant=${TENANT}`, 'devices-phone.png', async (p) => {
      expect(await p.locator('table.devices tbody tr').count()).to.equal(50);
      // Rows are cards on a phone: the header row is hidden and each cell says what it is.
      const before = await p.locator('table.devices td[data-label="Serial number"]').first().evaluate((el) => (globalThis as any).getComputedStyle(el, '::before').content);
      expect(before).to.match(/Serial number/);
    });
  });

  it('apps: the tenant catalogue with versions and device counts, paged and searchable', async () => {
    const page = await open(`/console/apps?tenant=${TENANT}`);
    expect((await page.locator('h1').innerText()).trim()).to.equal(`Apps of ${TENANT}`);
    const rows = page.locator('table.apps tbody tr');
    const n = await rows.count();
    expect(n).to.be.greaterThan(0).and.at.most(50);
    const info = await page.locator('nav.pages').first().locator('span').innerText();
    const total = Number(/of (\d+) apps?\)$/.exec(info)![1]);
    expect(n).to.equal(Math.min(50, total));
    const name = (await rows.first().locator('th').innerText()).trim();
    const count = Number(await rows.first().locator('td[data-label="Devices"]').innerText());
    expect(count).to.be.greaterThan(0);
    await expectAccessible(page, 'the apps page');
    await shot(page, 'apps.png');
    await page.getByLabel('Search', { exact: true }).fill(name);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState('load');
    expect(await rows.count()).to.be.at.least(1);
    expect(await rows.locator('th').allInnerTexts()).to.include(name);
    if (total > 50) {
      await page.goto(`${cloud.url}/console/apps?tenant=${TENANT}&page=2`);
      expect(await page.locator('nav.pages').first().locator('span').innerText()).to.match(/^Page 2 of /);
    }
    await page.close();
    await onPhone(`/console/apps?tenant=${TENANT}`, 'apps-phone.png');
    await onPhone('/console/connectors', 'connectors-phone.png');
  });

  // ---- 5. removal, CSRF, sign-out --------------------------------------------------------------

  it('Remove: a confirmation page first, then the integration and its inventory are gone; Add an integration', async () => {
    const devices = (await cloud.api('GET', `/api/v1/tenants/${TENANT}/devices?pageSize=1`)).body.total as number;
    const page = await open(`/console/integrations?tenant=${TENANT}`);
    await panel(page).getByRole('link', { name: /^Remove/ }).click();
    await page.waitForLoadState('load');
    expect(new URL(page.url()).pathname).to.equal(`/console/integrations/${TENANT}/${integrationId}/remove`);
    expect(await page.locator('main').innerText()).to.contain(`deletes its ${devices} devices and their apps from the inventory`);
    expect((await cloud.api('GET', `/api/v1/tenants/${TENANT}/integrations`)).body.integrations).to.have.length(1);
    await expectAccessible(page, 'the remove confirmation');
    await shot(page, 'remove-confirm.png');
    const r = await submit(page, page.getByRole('button', { name: 'Remove integration' }), `/console/integrations/${TENANT}/${integrationId}/remove`);
    expect(r.status).to.equal(303);
    expect(await flash(page)).to.equal('The integration was removed, with its inventory.');
    expect(await panel(page).count()).to.equal(0);
    expect(await page.locator('#h-none').innerText()).to.equal('No integrations');
    expect((await cloud.api('GET', `/api/v1/tenants/${TENANT}/integrations`)).body.integrations).to.deep.equal([]);
    expect((await cloud.api('GET', `/api/v1/tenants/${TENANT}/devices?pageSize=1`)).body.total).to.equal(0);
    await page.goto(`${cloud.url}/console/devices?tenant=${TENANT}`);
    expect(await page.locator('section[aria-label="Device list"]').innerText()).to.contain('No devices yet');

    // The simple "Add an integration" form (a connector's own target): a refused value, then one added.
    await page.goto(`${cloud.url}/console/integrations?tenant=${TENANT}`);
    const add = page.locator('section[aria-labelledby="h-new"]');
    await add.getByLabel('Display name').fill('WS1 Again');
    await add.getByLabel('Connector target id').fill('not a target!');
    const bad = await submit(page, add.getByRole('button', { name: 'Add integration' }), '/console/integrations/new');
    expect(bad.status).to.equal(400);
    expect(await page.locator('#new-error').innerText()).to.match(/^Not added\. Connector target id: must be the id of a target defined on the connector/);
    expect(await add.getByLabel('Display name').inputValue()).to.equal('WS1 Again');
    await add.getByLabel('Connector target id').fill('ws1');
    const made = await submit(page, add.getByRole('button', { name: 'Add integration' }), '/console/integrations/new');
    expect(made.status).to.equal(303);
    expect(new URL(page.url()).pathname).to.match(new RegExp(`^/console/integrations/${TENANT}/int_[0-9a-f]{16}/edit$`));
    expect(await flash(page)).to.equal('Integration WS1 Again added. Choose the groups to sync and save.');
    expect(await page.locator('#f-groups label.check').count()).to.be.greaterThan(10);
    const list = (await cloud.api('GET', `/api/v1/tenants/${TENANT}/integrations`)).body.integrations as Array<Record<string, unknown>>;
    expect(list.map((i) => [i.displayName, i.route])).to.deep.equal([['WS1 Again', { via: 'connector', group: 'default', target: 'ws1' }]]);
    await page.close();
  });

  it('a form post without the CSRF token, or from another origin, is refused and changes nothing', async () => {
    const page = await open('/console/connectors');
    const csrf = await page.locator('header form input[name="csrf"]').inputValue();
    // In the browser: the revoke form with its token removed.
    await page.goto(`${cloud.url}/console/connectors/${mainId}/revoke`);
    await page.locator('main form input[name="csrf"]').evaluate((el) => el.remove());
    const r = await submit(page, page.getByRole('button', { name: 'Revoke connector' }), `/console/connectors/${mainId}/revoke`);
    expect(r.status).to.equal(403);
    expect(await page.getByRole('alert').innerText()).to.match(/^The form was made for an earlier sign-in, or not by this console \(missing or wrong CSRF token\)/);
    await expectAccessible(page, 'the CSRF refusal');
    await shot(page, 'csrf-refused.png');
    // With the session cookie but a wrong token; with the right token but from another origin.
    const post = (form: Record<string, string>, headers: Record<string, string> = {}) =>
      ctx.request.post(`${cloud.url}/console/connectors/${mainId}/revoke`, { form, headers, maxRedirects: 0 });
    expect((await post({ confirm: 'yes', csrf: 'x'.repeat(43) })).status()).to.equal(403);
    const foreign = await post({ confirm: 'yes', csrf }, { origin: 'http://evil.example' });
    expect(foreign.status()).to.equal(403);
    expect(await foreign.text()).to.contain('The request came from another site and was refused.');
    expect((await post({ confirm: 'yes', csrf }, { origin: 'null' })).status()).to.equal(403);
    expect((await post({ confirm: 'yes', csrf }, { 'sec-fetch-site': 'cross-site' })).status()).to.equal(403);
    const entry = await connectorEntry(cloud, mainId);
    expect(entry).to.include({ revoked: false, connected: true });
    await page.close();
  });

  it('sign-out ends the session: the old cookie opens nothing afterwards', async () => {
    const page = await open('/console/connectors');
    const old = (await ctx.cookies(`${cloud.url}/console/`)).find((c) => c.name === 'uemlink_console')!;
    const r = await submit(page, page.getByRole('button', { name: 'Sign out' }), '/console/logout');
    expect(r.status).to.equal(303);
    expect(new URL(page.url()).pathname).to.equal('/console/login');
    expect(await flash(page)).to.equal('Signed out.');
    expect((await ctx.cookies(`${cloud.url}/console/`)).some((c) => c.name === 'uemlink_console'), 'the cookie is cleared').to.equal(false);
    await shot(page, 'signed-out.png');
    // The session is gone on the server: putting the old cookie back does not help.
    await ctx.addCookies([old]);
    await page.goto(`${cloud.url}/console/connectors`);
    expect(new URL(page.url()).pathname).to.equal('/console/login');
    expect(await flash(page)).to.match(/^Your session has ended/);
    await page.close();
  });

  // ---- 6. across every page ----------------------------------------------------------------------

  it('security headers: strict CSP, no framing, same-origin referrer, no caching; the JSON API is unchanged', async () => {
    const res = await fetch(`${cloud.url}/console/login`);
    expect(res.status).to.equal(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).to.match(/(^|;)\s*default-src 'self'(;|$)/);
    expect(csp).to.contain("script-src 'self'");
    expect(csp).to.contain("style-src 'self'");
    expect(csp).to.contain("frame-ancestors 'none'");
    expect(csp).to.contain("form-action 'self'");
    expect(csp).to.not.contain('unsafe-inline');
    expect(res.headers.get('referrer-policy')).to.equal('same-origin');
    expect(res.headers.get('x-frame-options')).to.equal('DENY');
    expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(res.headers.get('content-type')).to.match(/^text\/html; charset=utf-8/);
    expect(res.headers.get('x-powered-by')).to.equal(null);
    expect(res.headers.get('set-cookie')).to.match(/^uemlink_console_csrf=[A-Za-z0-9_-]{43}; Path=\/console; HttpOnly; SameSite=Strict$/);
    const css = await fetch(`${cloud.url}/console/assets/console.css`);
    expect(css.headers.get('content-type')).to.match(/^text\/css/);
    // The API around the console keeps its own answers.
    const api = await fetch(`${cloud.url}/api/v1/connectors`);
    expect(api.status).to.equal(401);
    expect(await api.json()).to.include({ error: 'unauthorized' });
    const missing = await fetch(`${cloud.url}/consolex`);
    expect(missing.status).to.equal(404);
    expect(await missing.json()).to.include({ error: 'not_found' });
  });

  it('no page loaded anything from elsewhere, broke its CSP or showed a secret', () => {
    const base = new URL(cloud.url).origin;
    for (const rec of recorders) {
      expect(rec.requests.filter((u) => !u.startsWith('data:') && new URL(u).origin !== base), 'requests to another origin').to.deep.equal([]);
      expect(rec.violations, 'CSP violations or script errors').to.deep.equal([]);
    }
    const paths = new Set(recorders.flatMap((rec) => rec.requests.map((u) => new URL(u).pathname)));
    for (const p of paths) expect(p).to.match(/^\/(console(\/.*)?|favicon\.ico)$/);
    const c = sim.credentials;
    const secrets = [ADMIN_TOKEN, c.password, c.apiKey, c.clientSecret, c.controlToken];
    expect(seen.length).to.be.greaterThan(10);
    for (const { url, html: body } of seen) {
      for (const s of secrets) expect(body.includes(s), `${url} shows a secret (${s.slice(0, 4)}…)`).to.equal(false);
      // The pairing token only on the answer that created it.
      if (!/pairing-token$/.test(new URL(url).pathname)) expect(body.includes(pairingToken), `${url} shows the pairing token`).to.equal(false);
    }
  });
});

describe('e2e: the console over TLS, and the sign-in rate limit (in-process cloud)', function () {
  this.timeout(60_000);
  let cloud: CloudServer;
  let ca: string;

  before(async () => {
    const pki = createTestPki(['127.0.0.1', 'localhost']);
    ca = pki.caCertPem;
    cloud = await startInprocCloud({ tls: { cert: pki.certPem, key: pki.keyPem } });
  });
  after(async () => {
    await cloud?.shutdown();
  });

  /** One HTTPS request trusting the test CA; the answer's status, headers and body. */
  function call(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: cloud.port, method, path, ca, agent: false, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('cookies are Secure and HSTS is sent when the cloud has TLS', async () => {
    const r = await call('GET', '/console/login');
    expect(r.status).to.equal(200);
    expect(r.headers['set-cookie']).to.deep.equal([`${String(r.headers['set-cookie']![0]!).split(';')[0]}; Path=/console; HttpOnly; SameSite=Strict; Secure`]);
    expect(r.headers['strict-transport-security']).to.match(/max-age=\d+/);
  });

  it('wrong tokens are rate limited per address, sharing the admin API\'s budget', async () => {
    const first = await call('GET', '/console/login');
    const csrf = /uemlink_console_csrf=([^;]+)/.exec(String(first.headers['set-cookie']))![1]!;
    const origin = cloud.config.publicUrl;
    const signIn = (token: string) =>
      call('POST', '/console/login', { cookie: `uemlink_console_csrf=${csrf}`, origin, 'content-type': 'application/x-www-form-urlencoded' }, new URLSearchParams({ csrf, token }).toString());
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await signIn(`wrong-${i}`)).status);
    expect(statuses).to.deep.equal(new Array(20).fill(401));
    const limited = await signIn(ADMIN_TOKEN);
    expect(limited.status, 'even the right token waits').to.equal(429);
    expect(Number(limited.headers['retry-after'])).to.be.within(1, 60);
    expect(limited.body).to.contain('Too many failed attempts from this address.');
    expect(limited.headers['set-cookie'] ?? []).to.not.satisfy((c: string[]) => c.some((x) => x.startsWith('uemlink_console=')));
    const api = await call('GET', '/api/v1/connectors', { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(api.status, 'the admin API from the same address').to.equal(429);
  });
});
