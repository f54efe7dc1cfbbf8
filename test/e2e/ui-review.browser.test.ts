/**
 * Review of the two web UIs (the connector's local page and the cloud console) in a real browser
 * (Debian's chromium through playwright-core), against real HTTP servers on loopback: a real
 * `uemlink connector run` process for the local page, an in-process cloud (real HTTP server, a clock
 * that can jump) for the console: the usability and correctness problems a review confirmed, kept as
 * regression tests.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import type { CloudServer } from '../../src/cloud/server.js';
import { launchBrowser } from '../helpers/browser.js';
import { offsetClock, startInprocCloud } from '../helpers/inproc.js';
import { ADMIN_TOKEN, freePort, makeConnector, sleep, tempDir, until, type Connector } from '../helpers/procs.js';

async function submit(page: Page, button: Locator, path: string): Promise<{ status: number }> {
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === path, { timeout: 60_000 });
  await button.click();
  const r = await answered;
  await page.waitForLoadState('load');
  return { status: r.status() };
}

describe('web UIs in a real browser: what a usability review found', function () {
  this.timeout(240_000);
  let browser: Browser;
  let cloud: CloudServer;
  let cloudUrl: string;
  const clock = offsetClock();
  let conn: Connector;
  let base: string;
  let password = '';

  before(async () => {
    browser = await launchBrowser();
    cloud = await startInprocCloud({ clock });
    cloudUrl = `http://127.0.0.1:${cloud.port}`;
    // A real connector process, unpaired, its page on a free loopback port.
    const dir = tempDir('uemlink-review-ui-');
    const port = await freePort();
    conn = await makeConnector({ dir, config: { health: { listen: `127.0.0.1:${port}`, checkIntervalSeconds: 0 }, targets: [] } });
    base = `http://127.0.0.1:${port}`;
    await conn.start();
    await until(
      async () => {
        if (conn.proc.exitCode !== undefined) throw new Error(`connector exited: ${conn.proc.stderr}`);
        return (await fetch(`${base}/healthz`).catch(() => undefined))?.ok;
      },
      30_000,
      'the local page',
    );
    const pwFile = join(dir, 'state', 'admin-password');
    await until(() => existsSync(pwFile), 10_000, 'the admin password file');
    password = readFileSync(pwFile, 'utf8').trim();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await conn?.proc?.stop();
    await cloud?.shutdown();
  });

  async function ctx(opts: { javaScriptEnabled?: boolean } = {}): Promise<BrowserContext> {
    return browser.newContext({ viewport: { width: 1280, height: 900 }, ...opts });
  }

  async function token(tenant = 'acme'): Promise<string> {
    return (await cloud.pairing.createToken({ tenant, group: 'default' })).token;
  }

  // ---- the connector's local page -------------------------------------------------------------

  describe('local page', () => {
    it('LP1: a pairing refused for a wrong password keeps the pasted pairing string', async () => {
      const c = await ctx();
      const page = await c.newPage();
      await page.goto(`${base}/`);
      const tok = await token();
      await page.getByLabel('Pairing string').fill(tok);
      const form = page.locator('section[aria-labelledby="h-pair"] form');
      await form.getByLabel('Local admin password').fill('wrong-password-1');
      const r = await submit(page, form.getByRole('button', { name: 'Pair', exact: true }), '/actions/pair');
      expect(r.status).to.equal(401);
      expect(await page.locator('.flash.error').innerText()).to.match(/Wrong local admin password/);
      // The console showed the token once; the admin pasted it here; a typo in the password throws it away.
      expect(await page.getByLabel('Pairing string').inputValue(), 'the pairing string the admin pasted').to.equal(tok);
      await c.close();
    });

    it('LP2: the wrong-password message says where to find the local admin password', async () => {
      const c = await ctx();
      const page = await c.newPage();
      await page.goto(`${base}/`);
      await page.getByLabel('Pairing string').fill(await token());
      const form = page.locator('section[aria-labelledby="h-pair"] form');
      await form.getByLabel('Local admin password').fill('wrong-password-2');
      await submit(page, form.getByRole('button', { name: 'Pair', exact: true }), '/actions/pair');
      const text = await page.locator('main').innerText();
      // Generated at first start into <stateDir>/admin-password (or health.adminPasswordFile): nothing on the page says so.
      expect(text, 'a hint where the password lives').to.match(/admin-password|adminPasswordFile/);
      await c.close();
    });

    it('LP3: the answer to a form (Run diagnostics) does not claim to refresh itself, and links back to the live status', async () => {
      const c = await ctx();
      const page = await c.newPage();
      await page.goto(`${base}/`);
      const r = await submit(page, page.getByRole('button', { name: 'Run diagnostics' }), '/actions/diagnose');
      expect(r.status).to.equal(200);
      const footer = await page.locator('footer').innerText();
      expect(footer).to.not.match(/refreshes itself every 10 s/);
      expect(footer).to.match(/does not refresh itself/);
      await page.locator('footer').getByRole('link', { name: 'back to the live status' }).click();
      await page.waitForURL(`${base}/`);
      expect(await page.locator('footer').innerText()).to.match(/refreshes itself every 10 s/);
      await c.close();
    });

    it('LP4: times of recent warnings carry a time zone', async () => {
      const c = await ctx();
      const page = await c.newPage();
      await page.goto(`${base}/`);
      const items = page.locator('section[aria-labelledby="h-problems"] li time');
      expect(await items.count(), 'at least one recent warning (the generated-password warning, the wrong passwords)').to.be.greaterThan(0);
      const shown = await items.first().innerText();
      const footer = await page.locator('footer time').innerText();
      expect(footer, 'the footer says UTC').to.match(/UTC/);
      expect(shown, 'a warning time is shown without a time zone').to.match(/UTC|Z$|[+-]\d\d:?\d\d$/);
      await c.close();
    });

    it('LP5: the self-refresh does not reset a keyboard user who is on a link', async () => {
      const c = await ctx();
      const page = await c.newPage();
      await page.goto(`${base}/`);
      await page.evaluate(() => ((globalThis as any).__marker = 1));
      // A keyboard user tabs to the footer's /api/status link and pauses there.
      const link = page.locator('footer a[href="/api/status"]');
      await link.focus();
      expect(await page.evaluate(() => (globalThis as any).document.activeElement?.getAttribute('href'))).to.equal('/api/status');
      await sleep(13_000);
      const still = await page.evaluate(() => ({ marker: (globalThis as any).__marker, href: (globalThis as any).document.activeElement?.getAttribute('href') ?? (globalThis as any).document.activeElement?.tagName }));
      expect(still, 'the page reloaded under the keyboard user; focus went back to the top').to.deep.equal({ marker: 1, href: '/api/status' });
      await c.close();
    });

    // Last of the local-page tests: it pairs the connector.
    it('LP6: pairing from a page opened before the connector was paired says what to do on the page, not a CLI flag', async () => {
      const c = await ctx();
      const stale = await c.newPage();
      await stale.goto(`${base}/`);
      const other = await c.newPage();
      await other.goto(`${base}/`);
      // Someone pairs in the other tab (or with the CLI) ...
      await other.getByLabel('Pairing string').fill(await token());
      const of = other.locator('section[aria-labelledby="h-pair"] form');
      await of.getByLabel('Local admin password').fill(password);
      expect((await submit(other, of.getByRole('button', { name: 'Pair', exact: true }), '/actions/pair')).status).to.equal(303);
      // ... and the admin, in the first tab (typing, so it did not refresh), pairs too.
      await stale.getByLabel('Pairing string').fill(await token());
      const sf = stale.locator('section[aria-labelledby="h-pair"] form');
      await sf.getByLabel('Local admin password').fill(password);
      const r = await submit(stale, sf.getByRole('button', { name: 'Pair', exact: true }), '/actions/pair');
      expect(r.status).to.equal(400);
      const said = await stale.locator('.flash.error').innerText();
      expect(said, 'the web page tells the admin to use a command-line flag').to.not.match(/--force/);
      await c.close();
    });
  });

  // ---- the cloud console ----------------------------------------------------------------------

  describe('console', () => {
    async function signIn(page: Page, path = '/console/connectors'): Promise<void> {
      await page.goto(`${cloudUrl}${path}`);
      if (new URL(page.url()).pathname === '/console/login') {
        await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
        await submit(page, page.getByRole('button', { name: 'Sign in' }), '/console/login');
      }
    }

    async function integration(tenant = 'acme'): Promise<{ id: string; tenant: string }> {
      const rec = await cloud.integrations.create(tenant, { vendor: 'workspace-one', displayName: `Review ${Math.random().toString(36).slice(2, 7)}`, route: { via: 'connector', group: 'default', target: 'ws1' } });
      return { id: rec.id, tenant };
    }

    it('C1: a form posted after the session expired brings the admin back to it after signing in again', async () => {
      const c = await ctx();
      const page = await c.newPage();
      const rec = await integration();
      const edit = `/console/integrations/${rec.tenant}/${rec.id}/edit`;
      await signIn(page, edit);
      expect(new URL(page.url()).pathname).to.equal(edit);
      await page.getByLabel('Display name').fill('Renamed while the session ran out');
      clock.advance(8 * 3600_000 + 60_000); // left the form open over lunch + the afternoon
      try {
        await submit(page, page.getByRole('button', { name: 'Save changes' }), edit);
      } finally {
        clock.advance(-(8 * 3600_000 + 60_000));
      }
      expect(new URL(page.url()).pathname).to.equal('/console/login');
      const flash = await page.locator('main .flash').first().innerText();
      await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
      await submit(page, page.getByRole('button', { name: 'Sign in' }), '/console/login');
      expect(
        { landedOn: new URL(page.url()).pathname, loginSaidNotSaved: /not saved|lost|again/i.test(flash) && /form|change/i.test(flash) },
        `login said: "${flash}"`,
      ).to.deep.equal({ landedOn: edit, loginSaidNotSaved: true });
      await c.close();
    });

    it('C1b: saving an edit form over a newer save by someone else is refused, keeps the typed values, and a second Save applies', async () => {
      const c = await ctx();
      const page = await c.newPage();
      const rec = await integration();
      const edit = `/console/integrations/${rec.tenant}/${rec.id}/edit`;
      await signIn(page, edit);
      expect(new URL(page.url()).pathname).to.equal(edit);
      // A colleague (or a script) saves while this form is open.
      await cloud.integrations.update(rec.tenant, rec.id, { displayName: 'Their name', sync: { deviceSyncIntervalMinutes: 240 } });
      await page.getByLabel('Display name').fill('My name');
      const first = await submit(page, page.getByRole('button', { name: 'Save changes' }), edit);
      expect(first.status).to.equal(409);
      expect(await page.getByRole('alert').first().innerText()).to.match(/Someone else saved this integration .* UTC\) after this page was opened/);
      expect(await page.getByLabel('Display name').inputValue(), 'the typed value is kept').to.equal('My name');
      expect((await cloud.integrations.get(rec.tenant, rec.id)).displayName, 'nothing was saved').to.equal('Their name');
      // Saving again is a knowing overwrite (the form now carries their revision).
      await submit(page, page.getByRole('button', { name: 'Save changes' }), edit);
      expect(new URL(page.url()).pathname).to.not.equal(edit);
      const now = await cloud.integrations.get(rec.tenant, rec.id);
      expect(now.displayName).to.equal('My name');
      await c.close();
    });

    it('C2: reloading the page that shows a new pairing token does not issue another live token', async () => {
      const c = await ctx();
      const page = await c.newPage();
      await signIn(page);
      const count = async (): Promise<number> => (await cloud.store.read()).pairingTokens.filter((t) => t.tenant === 'reload-check' && !t.usedAt).length;
      await page.locator('#pt-tenant').fill('reload-check');
      const r = await submit(page, page.getByRole('button', { name: 'Create pairing token' }), '/console/connectors/pairing-token');
      expect(r.status).to.equal(201);
      const first = await page.locator('#new-token').inputValue();
      expect(await count()).to.equal(1);
      // F5 on the answer (to check it, or because the tab was restored).
      const again = page.waitForResponse((x) => new URL(x.url()).pathname === '/console/connectors/pairing-token', { timeout: 60_000 }).catch(() => undefined);
      await page.reload();
      const resp = await again;
      const second = (await page.locator('#new-token').count()) ? await page.locator('#new-token').inputValue() : '';
      expect({ method: resp?.request().method(), liveTokens: await count(), sameToken: second === first || second === '' }, 'reload re-posted the form').to.deep.equal({
        method: resp?.request().method(),
        liveTokens: 1,
        sameToken: true,
      });
      await c.close();
    });

    it('C3: the CSRF refusal page gets the admin out: a link back to the form (a reload would re-send the stale one)', async () => {
      const c = await ctx();
      const a = await c.newPage();
      await signIn(a);
      await a.locator('#pt-tenant').fill('csrf-check');
      // Meanwhile in another tab: sign out and in again (new session, new CSRF token).
      const b = await c.newPage();
      await b.goto(`${cloudUrl}/console/connectors`);
      await submit(b, b.getByRole('button', { name: 'Sign out' }), '/console/logout');
      await b.getByLabel('Admin token').fill(ADMIN_TOKEN);
      await submit(b, b.getByRole('button', { name: 'Sign in' }), '/console/login');
      // Back in the first tab: the form was rendered for the old session.
      const r = await submit(a, a.getByRole('button', { name: 'Create pairing token' }), '/console/connectors/pairing-token');
      expect(r.status).to.equal(403);
      const said = await a.locator('main .flash').first().innerText();
      expect(said).to.match(/Open the form again/);
      // The way out: the form's own page, anew (a reload would send the same stale form).
      await a.getByRole('link', { name: 'Open the form again' }).click();
      await a.waitForURL(/\/console\/connectors/);
      await a.locator('#pt-tenant').fill('csrf-check');
      const r2 = await submit(a, a.getByRole('button', { name: 'Create pairing token' }), '/console/connectors/pairing-token');
      expect(r2.status).to.equal(201);
      await c.close();
    });
    it('C4: adding an integration with a malformed target id says what is wrong with that field', async () => {
      const c = await ctx();
      const page = await c.newPage();
      await signIn(page, '/console/integrations?tenant=acme');
      const add = page.locator('section[aria-labelledby="h-new"]');
      await add.getByLabel('Display name').fill('WS1 EMEA');
      await add.getByLabel('Connector target id').fill('ws1 emea'); // a space: not a valid target id
      const r = await submit(page, add.getByRole('button', { name: 'Add integration' }), '/console/integrations/new');
      expect(r.status).to.equal(400);
      const said = await page.locator('#new-error').innerText();
      const field = page.locator('#new-target');
      expect(
        {
          mentionsPushFlagTheFormLacks: /"push"/.test(said),
          namesTheTargetField: /target id|Connector target/i.test(said) && /letters|digits|character/i.test(said),
          fieldInvalid: await field.getAttribute('aria-invalid'),
          fieldDescribedByError: ((await field.getAttribute('aria-describedby')) ?? '').includes('new-error'),
        },
        `the form said: "${said}"`,
      ).to.deep.equal({ mentionsPushFlagTheFormLacks: false, namesTheTargetField: true, fieldInvalid: 'true', fieldDescribedByError: true });
      await c.close();
    });

    it('C5: Verify on an integration further down says at the top that it ran and how', async () => {
      const c = await ctx();
      const page = await c.newPage();
      for (let i = 0; i < 3; i++) await cloud.integrations.create('verify-t', { vendor: 'workspace-one', displayName: `WS1 site ${i}`, route: { via: 'connector', group: 'default', target: `ws${i}` } });
      const recs = await cloud.integrations.list('verify-t');
      const last = recs[recs.length - 1]!;
      await signIn(page, '/console/integrations?tenant=verify-t');
      const btn = page.locator(`article[data-integration="${last.id}"]`).getByRole('button', { name: /^Verify/ });
      const r = await submit(page, btn, `/console/integrations/verify-t/${last.id}/verify`);
      expect(r.status).to.equal(200);
      const box = page.locator(`article[data-integration="${last.id}"] .verify`);
      expect(await box.count()).to.equal(1);
      const inView = await box.evaluate((el) => {
        const rc = el.getBoundingClientRect();
        return rc.top < (globalThis as any).innerHeight && rc.bottom > 0;
      });
      // Far down the page, the result is announced at the top.
      const flash = await page.locator('main .flash').first().innerText();
      expect({ inView, flash: /Verification of WS1 site 2 (passed|failed): see its steps below/.test(flash) }, flash).to.deep.include({ flash: true });
      await c.close();
    });

    it('C6: revoking a connector from a tenant-filtered list comes back to that list', async () => {
      const c = await ctx();
      const page = await c.newPage();
      const { pairInproc } = await import('../helpers/inproc.js');
      const mine = await pairInproc(cloud, 'filter-t');
      await pairInproc(cloud, 'someone-else');
      await signIn(page, '/console/connectors?tenant=filter-t');
      await page.locator(`tr[data-connector="${mine.connectorId}"] a`).click();
      await page.waitForLoadState('load');
      await submit(page, page.getByRole('button', { name: 'Revoke connector' }), `/console/connectors/${mine.connectorId}/revoke`);
      expect(await page.locator('main .flash').first().innerText()).to.match(/revoked/);
      expect(await page.locator('#cf-tenant').inputValue(), `landed on ${page.url()}`).to.equal('filter-t');
      await c.close();
    });
  });
});
