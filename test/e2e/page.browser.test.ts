/**
 * The connector's local page in a real browser (Debian's chromium through playwright-core), against
 * real processes on loopback: `uemlink cloud run`, `uemlink connector run`, HTTPS upstreams standing
 * in for UEMs. Pairing through the form (wrong password, CSRF), the tunnel states, target health and
 * certificates, approving a cloud-managed target, accessibility and robustness basics, the machine
 * endpoints. Full-page screenshots of each state go to test-results/page/.
 */
import { expect } from 'chai';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createTestPki } from '../../src/common/pki.js';
import { a11yProblems, contrastProblems, launchBrowser, overflowProblems, recordedPage, shotsDir, type PageRecorder } from '../helpers/browser.js';
import { ADMIN_TOKEN, connectorEntry, freePort, makeConnector, sleep, startCloud, tempDir, until, type Cloud, type Connector } from '../helpers/procs.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const SHOTS = shotsDir('page');
/** A UEM password configured for a target: it must never show on the page or in /api/status. */
const UEM_PASSWORD = 'Uem-Pa55word-never-shown-7d1f';

interface Live {
  label: string;
  c: Connector;
  base: string;
  password: string;
  id?: string;
}

describe('e2e: the local page in a real browser (chromium, real processes)', function () {
  this.timeout(120_000);
  let browser: Browser;
  let ctx: BrowserContext;
  let cloud: Cloud;
  let up: Upstream;
  let upSoon: Upstream;
  const clouds: Cloud[] = [];
  const lives: Live[] = [];
  const recorders: Array<{ base: string; rec: PageRecorder }> = [];
  const pairingTokens: string[] = [];

  before(async () => {
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    cloud = await startCloud({ extra: { tunnel: { heartbeatSeconds: 2 } } });
    clouds.push(cloud);
    up = await startUpstream({ pki: createTestPki(['localhost', '127.0.0.1'], { caName: 'Page Test Root CA' }) });
    upSoon = await startUpstream({ pki: createTestPki(['localhost', '127.0.0.1'], { caName: 'Page Test Root CA', days: 10 }) });
  });

  after(async () => {
    await ctx?.close().catch(() => {});
    await browser?.close().catch(() => {});
    for (const l of lives) await l.c.proc?.stop();
    for (const c of clouds) await c.proc?.stop();
    await up?.close();
    await upSoon?.close();
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    const last = lives[lives.length - 1];
    process.stderr.write(`--- cloud ---\n${cloud.proc.raw.slice(-3000)}${cloud.proc.stderr}\n--- connector ${last?.label ?? ''} ---\n${last?.c.proc?.raw.slice(-4000) ?? ''}${last?.c.proc?.stderr ?? ''}\n`);
  });

  // ---- helpers ------------------------------------------------------------------------------

  async function token(tenant: string, on: Cloud = cloud): Promise<string> {
    const r = await on.api('POST', '/api/v1/pairing-tokens', { tenant });
    expect(r.status, JSON.stringify(r.body)).to.equal(201);
    pairingTokens.push(r.body.token as string);
    return r.body.token as string;
  }

  /**
   * Starts `uemlink connector run` (paired first through the CLI when a token is given) with its page
   * on a free loopback port and health checks every 5 s; waits for the page and the admin password file.
   */
  async function startConnector(label: string, opts: { targets?: unknown[]; files?: Record<string, string>; pairWith?: string; beforeStart?: () => Promise<void> } = {}): Promise<Live> {
    const dir = tempDir(`uemlink-page-${label}-`);
    for (const [n, v] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, n), v, { mode: 0o600 });
    const port = await freePort();
    const c = await makeConnector({ dir, config: { health: { listen: `127.0.0.1:${port}`, checkIntervalSeconds: 5 }, targets: opts.targets ?? [] } });
    const l: Live = { label, c, base: `http://127.0.0.1:${port}`, password: '' };
    lives.push(l);
    if (opts.pairWith) {
      const r = await c.pair(opts.pairWith);
      expect(r.code, r.stderr).to.equal(0);
      l.id = r.stdout.trim();
    }
    await opts.beforeStart?.();
    await c.start();
    await until(
      async () => {
        if (c.proc.exitCode !== undefined) throw new Error(`connector ${label} exited (${c.proc.exitCode}): ${c.proc.stderr}${c.proc.raw.slice(-2000)}`);
        return (await fetch(`${l.base}/healthz`)).ok;
      },
      20_000,
      `the local page of connector ${label}`,
    );
    const pwFile = join(dir, 'state', 'admin-password');
    await until(() => existsSync(pwFile), 5000, 'the generated admin password file');
    l.password = readFileSync(pwFile, 'utf8').trim();
    expect(l.password.length).to.be.at.least(16);
    return l;
  }

  async function connected(on: Cloud, id: string): Promise<void> {
    await until(async () => (await connectorEntry(on, id))?.connected, 20_000, `connector ${id} connected in the cloud`);
  }

  async function open(l: Live, context: BrowserContext = ctx): Promise<Page> {
    const { page, rec } = await recordedPage(context);
    recorders.push({ base: l.base, rec });
    const res = await page.goto(`${l.base}/`);
    expect(res?.status()).to.equal(200);
    return page;
  }

  async function badge(page: Page): Promise<string> {
    return (await page.locator('header .badge').innerText()).trim();
  }

  async function section(page: Page, heading: string): Promise<string> {
    return page.locator(`section[aria-labelledby="${heading}"]`).innerText();
  }

  /** Reloads until `ok` holds (the server renders every state; no waiting for scripts). */
  async function reloadUntil(page: Page, base: string, ok: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const start = Date.now();
    for (;;) {
      await page.goto(`${base}/`);
      if (await ok()) return;
      if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for the page to show ${what}; badge "${await badge(page)}"\n${(await page.locator('main').innerText()).slice(0, 3000)}`);
      await sleep(500);
    }
  }

  function targetRow(page: Page, id: string): ReturnType<Page['locator']> {
    return page.locator('section[aria-labelledby="h-targets"] tbody tr').filter({ has: page.locator('th', { hasText: new RegExp(`^${id}(\\s|$)`) }) });
  }

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SHOTS, name), fullPage: true });
  }

  async function expectAccessible(page: Page, where: string): Promise<void> {
    expect(await a11yProblems(page), `accessibility problems on the ${where} page`).to.deep.equal([]);
    expect(await contrastProblems(page), `contrast problems on the ${where} page`).to.deep.equal([]);
    expect(await overflowProblems(page), `overflow on the ${where} page`).to.deep.equal([]);
  }

  /** Submits the form holding `button` and returns the answer to its POST. */
  async function submit(page: Page, button: ReturnType<Page['locator']>, path: string): Promise<{ status: number; url: string; origin: string | undefined }> {
    const answered = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === path);
    await button.click();
    const r = await answered;
    await page.waitForLoadState('load');
    return { status: r.status(), url: r.url(), origin: (await r.request().allHeaders()).origin };
  }

  // ---- 1. unpaired ----------------------------------------------------------------------------

  let unpaired: Live;

  it('unpaired: shows the pairing form (labelled textarea and password), says "Not paired", /readyz is 503', async () => {
    unpaired = await startConnector('unpaired');
    const page = await open(unpaired);
    expect(await badge(page)).to.equal('Not paired');
    expect(await page.title()).to.match(/^Not paired · uemlink connector/);
    expect(await page.locator('h2#h-pair').innerText()).to.equal('Pair this connector');

    // Found by their labels, as a screen reader user would.
    const tokenBox = page.getByLabel('Pairing string');
    expect(await tokenBox.evaluate((el) => el.tagName)).to.equal('TEXTAREA');
    expect(await tokenBox.getAttribute('required')).to.not.equal(null);
    const pw = page.locator('section[aria-labelledby="h-pair"]').getByLabel('Local admin password');
    expect(await pw.getAttribute('type')).to.equal('password');
    expect(await page.getByRole('button', { name: 'Pair', exact: true }).isVisible()).to.equal(true);
    expect(await section(page, 'h-tunnel')).to.match(/State\s+Not paired/);
    // No identity yet.
    expect(await page.locator('#h-id').count()).to.equal(0);
    await expectAccessible(page, 'unpaired');
    await shot(page, 'unpaired.png');

    const rz = await fetch(`${unpaired.base}/readyz`);
    expect(rz.status).to.equal(503);
    expect(await rz.json()).to.deep.equal({ error: 'not_ready', message: 'not paired' });
    await page.close();
  });

  // ---- 2. pairing through the form --------------------------------------------------------------

  it('pairs through the form: wrong password → 401, bad or missing CSRF → 403 (nothing changes), right password → Connected', async () => {
    const tok = await token('acme-form');
    const page = await open(unpaired);
    const form = page.locator('section[aria-labelledby="h-pair"] form');

    // Wrong password: refused, said so, still unpaired.
    await page.getByLabel('Pairing string').fill(tok);
    await form.getByLabel('Local admin password').fill('not-the-password');
    const wrong = await submit(page, form.getByRole('button', { name: 'Pair', exact: true }), '/actions/pair');
    // The browser must send the page's own origin (not "null", which the Origin check refuses: a
    // Referrer-Policy of no-referrer makes chromium send "Origin: null" on form POSTs).
    expect(wrong.origin).to.equal(unpaired.base);
    expect(wrong.status).to.equal(401);
    expect(await page.getByRole('alert').innerText()).to.match(/^Wrong local admin password\. It is in .*admin-password on the connector's machine/);
    expect(await badge(page)).to.equal('Not paired');

    // CSRF, always with the right password so that only the CSRF protection can be what refuses.
    const csrf = await page.locator('section[aria-labelledby="h-pair"] input[name=csrf]').inputValue();
    expect(csrf).to.match(/^[A-Za-z0-9_-]{43}$/);
    const cookie = (await ctx.cookies(unpaired.base)).find((c) => c.name === 'uemlink_csrf');
    expect(cookie, 'the CSRF cookie').to.not.equal(undefined);
    expect(cookie!.value).to.equal(csrf);
    expect(cookie!.httpOnly).to.equal(true);
    expect(cookie!.sameSite).to.equal('Strict');
    const fields = { token: tok, password: unpaired.password };
    //  a) another client without the cookie, with the page's field (e.g. a token read from a page).
    const noCookie = await fetch(`${unpaired.base}/actions/pair`, { method: 'POST', body: new URLSearchParams({ ...fields, csrf }), redirect: 'manual' });
    expect(noCookie.status).to.equal(403);
    expect(await noCookie.text()).to.contain('missing or wrong CSRF token');
    //  b) the browser's cookie but a forged field.
    const forged = await page.request.post(`${unpaired.base}/actions/pair`, { form: { ...fields, csrf: 'A'.repeat(43) }, maxRedirects: 0 });
    expect(forged.status()).to.equal(403);
    //  c) cookie and field right, but posted from another site.
    const cross = await fetch(`${unpaired.base}/actions/pair`, {
      method: 'POST',
      headers: { cookie: `uemlink_csrf=${csrf}`, origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...fields, csrf }),
      redirect: 'manual',
    });
    expect(cross.status).to.equal(403);
    expect(await cross.text()).to.contain('the request came from another site');
    //  d) in the browser, the cookie gone (expired, other profile): the form itself is refused.
    await page.goto(`${unpaired.base}/`);
    await ctx.clearCookies();
    await page.getByLabel('Pairing string').fill(tok);
    await form.getByLabel('Local admin password').fill(unpaired.password);
    const noCookieForm = await submit(page, form.getByRole('button', { name: 'Pair', exact: true }), '/actions/pair');
    expect(noCookieForm.status).to.equal(403);
    expect(await page.getByRole('alert').innerText()).to.match(/CSRF token.*open the page again/);
    // Nothing changed: still unpaired, and the token was not spent (it pairs below).
    expect(await badge(page)).to.equal('Not paired');
    const st = (await (await fetch(`${unpaired.base}/api/status`)).json()) as { paired: boolean };
    expect(st.paired).to.equal(false);
    expect((await cloud.api('GET', '/api/v1/connectors?tenant=acme-form')).body.connectors).to.deep.equal([]);

    // The right password on a fresh page: redirected, then Connected.
    await page.goto(`${unpaired.base}/`);
    await page.getByLabel('Pairing string').fill(tok);
    await form.getByLabel('Local admin password').fill(unpaired.password);
    const ok = await submit(page, form.getByRole('button', { name: 'Pair', exact: true }), '/actions/pair');
    expect(ok.status).to.equal(303);
    expect(new URL(page.url()).search).to.equal('?done=paired');
    expect(await page.getByRole('status').filter({ hasText: 'Paired' }).first().innerText()).to.equal('Paired. The tunnel is starting.');

    await reloadUntil(page, unpaired.base, async () => (await badge(page)).startsWith('Connected'), 15_000, '"Connected"');
    const list = (await cloud.api('GET', '/api/v1/connectors?tenant=acme-form')).body.connectors as Array<{ id: string; connected: boolean; tenant: string }>;
    expect(list).to.have.length(1);
    expect(list[0]!.connected).to.equal(true);
    unpaired.id = list[0]!.id;
    expect(await badge(page)).to.equal('Connected · ready');
    const identity = await section(page, 'h-id');
    expect(identity).to.contain(unpaired.id);
    expect(identity).to.match(/Tenant\s+acme-form/);
    expect(identity).to.contain(cloud.url);
    expect(await page.title()).to.equal(`Connected · uemlink connector ${unpaired.id}`);
    // The pairing form is gone; only "Pair again" (folded) remains.
    expect(await page.locator('#h-pair').count()).to.equal(0);
    expect(await page.locator('details summary').innerText()).to.match(/Pair again/);
    expect((await fetch(`${unpaired.base}/readyz`)).status).to.equal(200);
    await expectAccessible(page, 'paired through the form');

    // "Pair again": the cloud revokes the identity it replaces, and the page says so.
    const oldId = unpaired.id;
    await page.locator('details summary').click();
    await page.getByLabel('New pairing string').fill(await token('acme-form'));
    const again = page.locator('details form');
    await again.getByLabel('Local admin password').fill(unpaired.password);
    const re = await submit(page, again.getByRole('button', { name: 'Pair again' }), '/actions/pair');
    expect(re.status).to.equal(303);
    expect(new URL(page.url()).search).to.equal('?done=repaired');
    expect(await page.locator('.flash.ok').innerText()).to.equal('Paired again. The tunnel is starting; the cloud revoked the previous identity.');
    const after = (await cloud.api('GET', '/api/v1/connectors?tenant=acme-form')).body.connectors as Array<{ id: string; revoked: boolean; replacedBy: string | null }>;
    const newRecord = after.find((x) => x.id !== oldId)!;
    expect(after.find((x) => x.id === oldId)).to.include({ revoked: true, replacedBy: newRecord.id });
    unpaired.id = newRecord.id;
    await reloadUntil(page, unpaired.base, async () => (await section(page, 'h-id')).includes(newRecord.id) && (await badge(page)).startsWith('Connected'), 20_000, 'connected as the new identity');
    await page.close();
  });

  // ---- 3. connecting --------------------------------------------------------------------------

  it('a paired connector whose cloud is down says "Connecting…" or "Disconnected" and why, in words', async () => {
    const down = await startCloud();
    clouds.push(down);
    const tok = await token('acme-down', down);
    const l = await startConnector('cloud-down', { pairWith: tok, beforeStart: () => down.proc.stop() });
    const page = await open(l);
    await reloadUntil(page, l.base, async () => /Last error\s+TUNNEL_/.test(await section(page, 'h-tunnel')), 20_000, 'the last tunnel error');
    expect(await badge(page)).to.match(/^(Connecting…|Disconnected)$/);
    const tunnel = await section(page, 'h-tunnel');
    expect(tunnel).to.match(/State\s+(Connecting…|Disconnected)/);
    // Names what failed (the cloud's tunnel address) and why. The "why" is Node's wording today
    // ("connect ECONNREFUSED 127.0.0.1:port", src/transport/ws.ts); "connection refused" is accepted too.
    expect(tunnel).to.match(new RegExp(`Last error\\s+TUNNEL_DIAL_FAILED: cannot reach ws://127\\.0\\.0\\.1:${down.port}/api/v1/tunnel: .*(connection refused|ECONNREFUSED)`, 'i'));
    // The "not ready" banner says why too.
    expect(await page.locator('.flash.warn').innerText()).to.match(/^Not ready: tunnel (connecting|disconnected)/);
    // Identity is known even though the cloud is unreachable.
    expect(await section(page, 'h-id')).to.contain(l.id!);
    await expectAccessible(page, 'connecting');
    await shot(page, 'connecting.png');

    const rz = await fetch(`${l.base}/readyz`);
    expect(rz.status).to.equal(503);
    const body = (await rz.json()) as { error: string; message: string };
    expect(body.error).to.equal('not_ready');
    expect(body.message).to.match(/^tunnel (connecting|disconnected)/);
    await page.close();
  });

  // ---- 4. connected, with targets ------------------------------------------------------------------

  let healthy: Live;

  it('connected with a healthy target: reachable, latency, last status, TLS subject, issuer and expiry; also on a phone', async () => {
    healthy = await startConnector('connected', {
      pairWith: await token('acme-up'),
      files: { 'uem.pass': `${UEM_PASSWORD}\n`, 'uem-ca.pem': up.caPem },
      targets: [{ id: 'ws1', baseUrl: `${up.baseUrl}/API`, auth: { type: 'basic', username: 'svc-uem', passwordFile: 'uem.pass' }, tls: { caFile: 'uem-ca.pem' } }],
    });
    await connected(cloud, healthy.id!);
    const page = await open(healthy);
    await reloadUntil(page, healthy.base, async () => (await badge(page)) === 'Connected · ready' && /reachable/.test(await targetRow(page, 'ws1').innerText()), 15_000, 'Connected and ws1 checked');
    // Relative times ("3 min ago") carry the exact time, to match them with log lines.
    const titles = await page.locator('main time[title]').evaluateAll((els) => els.map((e) => e.getAttribute('title')));
    expect(titles.length, 'relative times with an exact title').to.be.greaterThan(0);
    for (const t of titles) expect(t).to.match(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    const cells = await targetRow(page, 'ws1').locator('td').allInnerTexts();
    expect(cells[0]).to.equal(`${up.baseUrl}/API`);
    expect(cells[1]).to.equal('✔ reachable');
    expect(cells[2]).to.match(/^\d+ ms$/);
    expect(cells[3]).to.equal('200');
    expect(cells[4]).to.contain('CN=localhost');
    expect(cells[4]).to.contain('issuer CN=Page Test Root CA');
    expect(cells[4]).to.match(/until \d{4}-\d\d-\d\d \((36[45]) days left\)/);
    expect(cells[5]).to.equal('');
    expect(await section(page, 'h-tunnel')).to.match(/Round trip\s+\d+ ms/);
    expect(await page.locator('.flash.warn').count(), 'no "not ready" banner').to.equal(0);
    await expectAccessible(page, 'connected');
    await shot(page, 'connected.png');
    await page.close();

    // A 390 px phone: nothing sticks out, the badge and the targets are still there.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    try {
      const p = await open(healthy, phone);
      expect(await badge(p)).to.equal('Connected · ready');
      expect(await overflowProblems(p), 'horizontal overflow at 390 px').to.deep.equal([]);
      expect(await a11yProblems(p)).to.deep.equal([]);
      await shot(p, 'connected-phone.png');
    } finally {
      await phone.close();
    }
  });

  it('target down: a target whose port is closed shows "unreachable" with the error in words', async () => {
    const closed = await freePort();
    const l = await startConnector('target-down', {
      pairWith: await token('acme-tdown'),
      files: { 'uem-ca.pem': up.caPem },
      targets: [{ id: 'gone', baseUrl: `https://127.0.0.1:${closed}`, auth: { type: 'none' }, tls: { caFile: 'uem-ca.pem' } }],
    });
    await connected(cloud, l.id!);
    const page = await open(l);
    await reloadUntil(page, l.base, async () => /unreachable/.test(await targetRow(page, 'gone').innerText()), 15_000, 'the target checked');
    const cells = await targetRow(page, 'gone').locator('td').allInnerTexts();
    expect(cells[1]).to.equal('✘ unreachable');
    expect(cells[2]).to.match(/^(—|\d+ ms)$/); // the time the failed check took
    expect(cells[3]).to.equal('—');
    expect(cells[4]).to.equal('—');
    expect(cells[5]).to.equal(`upstream_unreachable: 127.0.0.1:${closed}: connection refused`);
    // The tunnel is fine; readiness does not require targets by default.
    expect(await badge(page)).to.equal('Connected · ready');
    await expectAccessible(page, 'target down');
    await shot(page, 'target-down.png');
    await page.close();
  });

  it('cert expiring: a UEM with a 10-day certificate shows "expires in N days"', async () => {
    const l = await startConnector('cert-expiring', {
      pairWith: await token('acme-soon'),
      files: { 'uem-ca.pem': upSoon.caPem },
      targets: [{ id: 'soon', baseUrl: upSoon.baseUrl, auth: { type: 'none' }, tls: { caFile: 'uem-ca.pem' } }],
    });
    await connected(cloud, l.id!);
    const page = await open(l);
    await reloadUntil(page, l.base, async () => /reachable/.test(await targetRow(page, 'soon').innerText()), 15_000, 'the target checked');
    const warning = targetRow(page, 'soon').locator('strong.warn');
    expect(await warning.isVisible()).to.equal(true);
    const text = await warning.innerText();
    expect(text).to.match(/^expires in (9|10) days$/);
    // Said in words, not only by colour: the words are the warning.
    const cells = await targetRow(page, 'soon').locator('td').allInnerTexts();
    expect(cells[1]).to.equal('✔ reachable');
    expect(cells[4]).to.contain(text);
    await expectAccessible(page, 'certificate expiring');
    await shot(page, 'cert-expiring.png');
    await page.close();
  });

  // ---- 5. approving a cloud-managed target ------------------------------------------------------

  it('a pending cloud-managed target: Approve with the password makes it accepted, and the cloud relays to it', async () => {
    const put = await cloud.api('PUT', '/api/v1/tenants/acme-up/managed-targets/mt1', { group: 'default', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } });
    expect(put.status, JSON.stringify(put.body)).to.equal(200);
    // The offer reaches the connector over the tunnel.
    const st = await until(
      async () => {
        const s = (await (await fetch(`${healthy.base}/api/status`)).json()) as { pendingTargets: Array<{ id: string }>; managedTargets: unknown[] };
        return s.pendingTargets.some((m) => m.id === 'mt1') ? s : undefined;
      },
      15_000,
      'mt1 pending in /api/status',
    );
    const page = await open(healthy);
    await shot(page, 'pending-target.png');
    // What the page renders the list from (a shared-reference bug in redact() once made it "[circular]").
    expect(st.managedTargets.map((m) => typeof m), '/api/status managedTargets entries').to.deep.equal(['object']);
    const managed = page.locator('section[aria-labelledby="h-managed"]');
    expect(await managed.innerText()).to.contain('pending');
    expect(await page.locator('#h-managed').innerText()).to.equal('Targets offered by the cloud');
    const item = managed.locator('li').filter({ hasText: 'mt1' });
    expect(await item.innerText()).to.contain(`mt1 → ${up.baseUrl}`);
    expect(await item.locator('.tag').innerText()).to.equal('pending');
    // One form: the password (named for this target) and the two decisions as its buttons.
    const decide = item.locator('form');
    expect(await decide.count()).to.equal(1);
    const password = item.getByLabel('Local admin password for mt1');
    expect(await password.getAttribute('type')).to.equal('password');
    const approve = decide.getByRole('button', { name: 'Approve' });
    const reject = decide.getByRole('button', { name: 'Reject' });
    expect(await approve.isVisible()).to.equal(true);
    expect(await reject.isVisible()).to.equal(true);
    // Not active while pending: not among the UEM targets, and the cloud cannot relay to it.
    expect(await targetRow(page, 'mt1').count()).to.equal(0);
    const before = await fetch(`${cloud.url}/api/v1/relay/acme-up/mt1/x`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(before.status).to.not.equal(200);
    await expectAccessible(page, 'pending target');

    // Enter in the password field decides nothing: a security decision takes a click on its button.
    const posts: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST') posts.push(r.url());
    });
    await password.fill(healthy.password);
    await password.press('Enter');
    await sleep(700);
    expect(posts, 'Enter posted the form').to.deep.equal([]);
    expect(await item.locator('.tag').innerText()).to.equal('pending');

    // A wrong password changes nothing.
    await password.fill('wrong-password');
    const refused = await submit(page, approve, '/actions/targets/mt1/approve');
    expect(refused.status).to.equal(401);
    expect(await page.getByRole('alert').innerText()).to.match(/^Wrong local admin password\. It is in .*admin-password on the connector's machine/);
    expect(await item.locator('.tag').innerText()).to.equal('pending');

    await page.goto(`${healthy.base}/`);
    await password.fill(healthy.password);
    const ok = await submit(page, approve, '/actions/targets/mt1/approve');
    expect(ok.status).to.equal(303);
    expect(await page.getByRole('status').filter({ hasText: 'Approved' }).innerText()).to.equal('Approved: the target is active and offered to the cloud.');
    expect(await item.locator('.tag').innerText()).to.equal('accepted');
    // Only Reject is offered now, posting to its own action.
    expect(await approve.count()).to.equal(0);
    expect(await reject.count()).to.equal(1);
    expect(await decide.getAttribute('action')).to.equal('/actions/targets/mt1/reject');

    const res = await until(
      async () => {
        const r = await fetch(`${cloud.url}/api/v1/relay/acme-up/mt1/x?from=page`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        return r.status === 200 ? r : undefined;
      },
      15_000,
      'the cloud to relay to the approved target',
    );
    const echoed = (await res.json()) as { url: string; headers: Record<string, string> };
    expect(echoed.url).to.equal('/x?from=page');
    expect(echoed.headers.authorization).to.equal(undefined);
    // The approved target appears among the UEM targets, marked cloud-managed, and gets checked.
    await reloadUntil(page, healthy.base, async () => /reachable/.test(await targetRow(page, 'mt1').innerText()), 15_000, 'mt1 checked');
    expect(await targetRow(page, 'mt1').locator('th').innerText()).to.equal('mt1 (cloud-managed)');
    await expectAccessible(page, 'approved target');
    await shot(page, 'approved-target.png');
    await page.close();
  });

  // ---- 6. accessibility and robustness basics ----------------------------------------------------

  it('works with JavaScript disabled: the pairing form submits and the page says to reload', async () => {
    const l = await startConnector('nojs');
    const tok = await token('acme-nojs');
    const noJs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1024, height: 800 } });
    try {
      const page = await open(l, noJs);
      expect(await page.locator('html.js').count(), 'the script did not run').to.equal(0);
      expect(await page.locator('noscript').count()).to.equal(1);
      expect(await page.locator('.js-only').isVisible()).to.equal(false);
      await page.getByLabel('Pairing string').fill(tok);
      await page.locator('section[aria-labelledby="h-pair"]').getByLabel('Local admin password').fill(l.password);
      const ok = await submit(page, page.getByRole('button', { name: 'Pair', exact: true }), '/actions/pair');
      expect(ok.status).to.equal(303);
      expect(await page.locator('.flash.ok').innerText()).to.equal('Paired. The tunnel is starting.');
      await reloadUntil(page, l.base, async () => (await badge(page)).startsWith('Connected'), 15_000, '"Connected" without JavaScript');
      expect(await a11yProblems(page)).to.deep.equal([]);
      await shot(page, 'nojs-connected.png');
    } finally {
      await noJs.close();
    }
  });

  it('every state passes the DOM checks; no page loaded anything from elsewhere or broke its CSP', async () => {
    // Every connector still running, as it is now (unpaired ones were paired above: start one more).
    const fresh = await startConnector('a11y-unpaired');
    for (const l of [...lives.filter((x) => x.c.proc.exitCode === undefined)]) {
      const page = await open(l);
      expect(await a11yProblems(page), `DOM problems on ${l.label}`).to.deep.equal([]);
      // Diagnostics (no password) renders the checks list: check that state too.
      if (l === healthy) {
        const r = await submit(page, page.getByRole('button', { name: 'Run diagnostics' }), '/actions/diagnose');
        expect(r.status).to.equal(200);
        expect(await page.locator('ol.checks li').count()).to.be.greaterThan(0);
        await expectAccessible(page, 'diagnostics');
        await shot(page, 'diagnostics.png');
      }
      await page.close();
    }
    expect(fresh.label).to.equal('a11y-unpaired');
    for (const { base, rec } of recorders) {
      const foreign = rec.requests.filter((u) => new URL(u).origin !== base);
      expect(foreign, `requests from the page at ${base} to another origin`).to.deep.equal([]);
      expect(rec.violations, `CSP violations or script errors on ${base}`).to.deep.equal([]);
    }
    // The page asked only for itself and its two assets (and the browser's favicon).
    const paths = new Set(recorders.flatMap(({ rec }) => rec.requests.map((u) => new URL(u).pathname)));
    for (const p of paths) expect(p).to.match(/^\/($|assets\/page\.(css|js)$|favicon\.ico$|actions\/)/);
  });

  it('sends security headers on the page', async () => {
    const res = await fetch(`${healthy.base}/`);
    expect(res.status).to.equal(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).to.match(/(^|;)\s*default-src 'self'(;|$)/);
    expect(csp).to.contain("frame-ancestors 'none'");
    expect(csp).to.contain("form-action 'self'");
    expect(csp).to.not.contain('unsafe-inline');
    const xfo = res.headers.get('x-frame-options');
    expect(xfo === null || /^(DENY|SAMEORIGIN)$/i.test(xfo)).to.equal(true);
    expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(res.headers.get('content-type')).to.match(/^text\/html; charset=utf-8/);
    expect(res.headers.get('x-powered-by')).to.equal(null);
    expect(res.headers.get('set-cookie')).to.match(/^uemlink_csrf=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
    // A mangled cookie is ignored (a fresh token is issued), never a server error.
    const mangled = await fetch(`${healthy.base}/`, { headers: { cookie: 'uemlink_csrf=%; other=1' } });
    expect(mangled.status).to.equal(200);
    expect(mangled.headers.get('set-cookie')).to.match(/^uemlink_csrf=[A-Za-z0-9_-]{43};/);
    // The page cannot be framed: chromium refuses to show it in a frame from another origin.
    const page = await ctx.newPage();
    try {
      await page.setContent(`<iframe src="${healthy.base}/"></iframe>`);
      await sleep(500);
      const frame = page.frames().find((f) => f.url().startsWith(healthy.base));
      const shown = frame ? await frame.locator('h1').count().catch(() => 0) : 0;
      expect(shown).to.equal(0);
    } finally {
      await page.close();
    }
  });

  // ---- 7. machine endpoints ---------------------------------------------------------------------

  it('/healthz is 200, /readyz 200 when connected or 503 with a reason, /api/status carries no secret', async () => {
    const hz = await fetch(`${healthy.base}/healthz`);
    expect(hz.status).to.equal(200);
    expect(await hz.json()).to.deep.equal({ status: 'ok' });
    const rz = await fetch(`${healthy.base}/readyz`);
    expect(rz.status).to.equal(200);
    expect(await rz.json()).to.deep.equal({ ready: true });
    const fresh = lives.find((l) => l.label === 'a11y-unpaired')!;
    const nr = await fetch(`${fresh.base}/readyz`);
    expect(nr.status).to.equal(503);
    expect(nr.headers.get('content-type')).to.match(/^application\/json/);
    expect(await nr.json()).to.deep.equal({ error: 'not_ready', message: 'not paired' });

    const secrets = [UEM_PASSWORD, ...pairingTokens, ...lives.map((l) => l.password)];
    // The signature part of each token is the secret; check that too, on its own.
    for (const t of pairingTokens) secrets.push(t.split('.').pop()!);
    for (const l of lives.filter((x) => x.c.proc.exitCode === undefined)) {
      for (const path of ['/api/status', '/', '/metrics']) {
        const body = await (await fetch(`${l.base}${path}`)).text();
        for (const s of secrets) expect(body.includes(s), `${l.label} ${path} contains a secret (${s.slice(0, 6)}…)`).to.equal(false);
      }
    }
    const st = (await (await fetch(`${healthy.base}/api/status`)).json()) as { ready: boolean; targets: Array<{ id: string }>; managedTargets: unknown[]; pendingTargets: unknown[] };
    expect(st.ready).to.equal(true);
    expect(st.targets.map((t) => t.id)).to.include('ws1');
    // Every offered target is a real entry (redact() must not turn shared objects into "[circular]").
    expect(st.managedTargets.map((m) => typeof m), '/api/status managedTargets entries').to.deep.equal(['object']);
    expect(st.managedTargets[0]).to.include({ id: 'mt1', host: '127.0.0.1', baseUrl: up.baseUrl });
  });
});
