/**
 * The cloud console for an MSP operator (many connectors and tenants, a tenant with thousands of
 * devices) and for people using assistive technology, plus the connector's local page (found in a
 * review; each test failed on the code it was written against). Real browser (Debian's chromium
 * through playwright-core) against an in-process cloud (real HTTP server, real inventory database)
 * and an in-process local page with a scripted backend. How fast the catalogue is, is measured in
 * docs/storage.md and checked by query plan in test/cloud/inventory-store.test.ts, not here.
 */
import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { silentLogger } from '../../src/common/log.js';
import { createCsr, generateRsaKeyPair } from '../../src/common/pki.js';
import type { CloudServer } from '../../src/cloud/server.js';
import type { IntegrationRecord } from '../../src/cloud/state.js';
import { HealthServer, type HealthBackend } from '../../src/health/server.js';
import type { ConnectorStatus } from '../../src/connector/status.js';
import type { UemDevice } from '../../src/uem/adapter.js';
import { launchBrowser } from '../helpers/browser.js';
import { startInprocCloud } from '../helpers/inproc.js';
import { ADMIN_TOKEN } from '../helpers/procs.js';

const DEVICES = 8_000;
const APPS_PER_DEVICE = 20;
const CONNECTORS = 120;
const TENANTS = 60;

async function post(page: Page, click: () => Promise<void>): Promise<number> {
  const answered = page.waitForResponse((r) => r.request().method() === 'POST', { timeout: 60_000 });
  await click();
  const r = await answered;
  await page.waitForLoadState('load');
  return r.status();
}

describe('console at MSP scale and for assistive technology (found in review)', function () {
  this.timeout(300_000);
  let browser: Browser;
  let cloud: CloudServer;
  let url: string;
  let ctx: BrowserContext;
  let page: Page;
  const ints: IntegrationRecord[] = [];

  before(async () => {
    browser = await launchBrowser();
    cloud = await startInprocCloud();
    url = `http://127.0.0.1:${cloud.port}`;

    // An MSP: 300 connectors paired through the pairing service over 120 tenants (one key and CSR
    // reused: only the pairing itself matters here).
    const keys = generateRsaKeyPair(2048);
    const csr = createCsr(keys.privateKeyPem, { CN: 'review' });
    for (let i = 0; i < CONNECTORS; i++) {
      const tenant = `customer-${String(i % TENANTS).padStart(3, '0')}`;
      const t = await cloud.pairing.createToken({ tenant, group: 'default' });
      await cloud.pairing.redeem({ token: t.token, csr, hostname: `edge-${i}.${tenant}.example`, version: '1.0.0' });
    }

    // One big tenant: 4 integrations with 12,500 devices each, 20 apps a device (a million app rows).
    for (let i = 0; i < 4; i++) {
      ints.push(await cloud.integrations.create('customer-000', { vendor: 'workspace-one', displayName: `Workspace ONE site ${i}`, route: { via: 'connector', group: 'default', target: `ws1-${i}` } }));
    }
    const inv = cloud.inventory;
    const per = DEVICES / ints.length;
    const now = new Date().toISOString();
    const device = (n: number): UemDevice => ({
      id: String(n),
      udid: `UDID-${n}`,
      serial: `SN${String(n).padStart(8, '0')}`,
      name: `Device ${n}`,
      phone: null,
      ownerEmail: `user${n}@customer.example`,
      ownerName: `User ${n}`,
      platform: n % 2 ? 'ios' : 'android',
      os: '17.1',
      model: n % 2 ? 'iPhone 15' : 'Pixel 8',
      enrollment: 'enrolled',
      compliance: n % 3 === 0 ? 'noncompliant' : 'compliant',
      lastSeen: now,
    });
    ints.forEach((rec, k) => {
      const seen = Array.from({ length: per }, (_, j) => ({ device: device(k * per + j), groups: ['g1'] }));
      inv.applyDeviceSync(rec.id, 'customer-000', { seen, deleteAfter: 3, allowDeletion: true, now });
    });
    inv.db.transaction(() => {
      ints.forEach((rec, k) => {
        for (let j = 0; j < per; j++) {
          const n = k * per + j;
          const apps = Array.from({ length: APPS_PER_DEVICE }, (_, a) => {
            const app = (n * 7 + a * 13) % 400;
            return { id: `com.example.app${app}`, name: `App ${app}`, version: `1.${n % 5}` };
          });
          inv.applyApps(rec.id, String(n), apps);
        }
      });
    })();

    ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await ctx.newPage();
    await page.goto(`${url}/console/login`);
    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await post(page, () => page.getByRole('button', { name: 'Sign in' }).click());
    expect(new URL(page.url()).pathname).to.equal('/console/connectors');
  });

  after(async () => {
    await ctx?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await cloud?.shutdown();
  });

  // ---- scale -----------------------------------------------------------------------------------

  it('S1: the apps page of a big tenant lists its apps from the counts, 50 a page, with the right total', async () => {
    const r = await page.goto(`${url}/console/apps?tenant=customer-000&page=2`);
    expect(r?.status()).to.equal(200);
    expect(await page.locator('table.apps tbody tr').count()).to.equal(50);
    expect((await page.locator('nav.pages span').first().innerText()).replace(/\s+/g, ' ')).to.equal('Page 2 of 8 (51–100 of 400 apps)');
  });

  it('S2: the connectors list of an MSP is paged, searchable and filtered by state, offline ones first', async () => {
    await page.goto(`${url}/console/connectors`);
    expect(await page.locator('table.connectors tbody tr').count(), 'rows on one page').to.equal(50);
    expect(await page.getByRole('link', { name: /Next page/ }).count(), 'a way to the next page (above and below)').to.equal(2);
    expect((await page.locator('nav.pages span').first().innerText()).replace(/\s+/g, ' ')).to.equal(`Page 1 of 3 (1–50 of ${CONNECTORS} connectors)`);
    // None is connected here: all offline. Searching a host name finds its one connector.
    await page.getByLabel('Search').fill('edge-7.customer-007');
    await Promise.all([page.waitForURL(/search=edge-7/), page.getByRole('button', { name: 'Filter' }).click()]);
    expect(await page.locator('table.connectors tbody tr').count()).to.equal(1);
    expect(await page.locator('table.connectors tbody tr td[data-label="Host name"]').innerText()).to.equal('edge-7.customer-007.example');
    // Nothing connected: the header's badge says so in gray, not in the green of "all well".
    expect(await page.locator('header .badge').innerText()).to.equal('0 connectors connected');
    expect(await page.locator('header .badge').getAttribute('class')).to.equal('badge off');
    await page.goto(`${url}/console/connectors?state=connected`);
    expect(await page.locator('section[aria-labelledby="h-list"] > p:not(.hint)').innerText()).to.equal('No connected connectors.');
  });

  it('S3: devices: an operator narrows the devices to the noncompliant ones with a filter and orders them stale first (the pager keeps both); counts in the thousands are grouped', async () => {
    const noncompliant = Math.floor((DEVICES - 1) / 3) + 1;
    await page.goto(`${url}/console/devices?tenant=customer-000`);
    await page.getByLabel('Compliance').selectOption('noncompliant');
    await Promise.all([page.waitForURL(/compliance=noncompliant/), page.getByRole('button', { name: 'Search' }).click()]);
    expect((await page.locator('nav.pages span').first().innerText()).replace(/\s+/g, ' ')).to.equal(`Page 1 of ${Math.ceil(noncompliant / 50)} (1–50 of ${noncompliant.toLocaleString('en-US')} devices)`);
    expect(noncompliant.toLocaleString('en-US'), 'a count in the thousands is shown grouped (2,667, not 2667)').to.contain(',');
    expect(new Set(await page.locator('table.devices td[data-label="Compliance"]').allInnerTexts())).to.deep.equal(new Set(['noncompliant']));
    expect(await page.getByRole('link', { name: /Next page/ }).first().getAttribute('href')).to.contain('compliance=noncompliant');
    expect(await page.getByLabel('Risk').locator('option').allInnerTexts()).to.deep.equal(['Any', 'none', 'low', 'medium', 'high']);
    // Stale devices first: the order is kept with the filter and by the pager.
    await page.getByLabel('Order').selectOption({ label: 'Last seen, oldest first' });
    await Promise.all([page.waitForURL(/sort=lastSeen/), page.getByRole('button', { name: 'Search' }).click()]);
    expect(page.url()).to.contain('compliance=noncompliant');
    expect(await page.getByRole('link', { name: /Next page/ }).first().getAttribute('href')).to.contain('sort=lastSeen');
    const shown = await page.locator('table.devices td[data-label="Last seen"] time').evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime') ?? ''));
    expect(shown.length).to.be.greaterThan(1);
    expect(shown).to.deep.equal([...shown].sort());
    expect(await page.getByLabel('Order').inputValue()).to.equal('lastSeen');
  });

  it('S4: apps: Previous / Next are there after the 50 rows too (as on Devices), not only above them', async () => {
    await page.goto(`${url}/console/apps?tenant=customer-000`);
    const after = page.locator('section[aria-label="App list"] .scroll ~ nav.pages');
    expect(await after.count(), 'a pager after the table').to.equal(1);
    expect(await after.getByRole('link', { name: /Next page/ }).count()).to.equal(1);
  });

  it('S5: devices: switching tenant while an integration is selected gives no false "has no integration" warning', async () => {
    await page.goto(`${url}/console/devices?tenant=customer-000&integration=${ints[1]!.id}`);
    await page.getByLabel('Tenant', { exact: true }).selectOption('customer-001');
    await Promise.all([page.waitForURL(/tenant=customer-001/), page.getByRole('button', { name: 'Search' }).click()]);
    expect(await page.locator('h1').innerText()).to.equal('Devices of customer-001');
    expect(await page.locator('main .flash').allInnerTexts(), 'warnings after a plain tenant switch').to.deep.equal([]);
  });

  // ---- accessibility ---------------------------------------------------------------------------

  it('A1: a refused edit is announced: the title says so or focus moves to the error (role="alert" in a new page is not announced)', async () => {
    const edit = `/console/integrations/customer-000/${ints[0]!.id}/edit`;
    await page.goto(`${url}${edit}`);
    await page.getByLabel('Device sync interval (minutes)').fill('1');
    expect(await post(page, () => page.getByRole('button', { name: 'Save changes' }).click())).to.equal(400);
    expect(await page.locator('#f-device-interval').getAttribute('aria-invalid'), 'the field itself is marked').to.equal('true');
    const title = await page.title();
    const focusOnError = await page.evaluate(() => {
      const d = (globalThis as any).document;
      const a = d.activeElement;
      return Boolean(a && a !== d.body && (a.closest('.flash.error, .field-error, [role="alert"]') || a.getAttribute('aria-invalid') === 'true'));
    });
    expect({ title, focusOnError }, 'after a refused Save').to.satisfy((v: { title: string; focusOnError: boolean }) => /error|not saved/i.test(v.title) || v.focusOnError);
  });

  it('A2: pairing-token form: a refused connector group marks that field (aria-invalid), not neither', async () => {
    await page.goto(`${url}/console/connectors`);
    await page.getByLabel('Tenant', { exact: true }).fill('customer-000');
    await page.getByLabel('Connector group').fill('bad group!');
    expect(await post(page, () => page.getByRole('button', { name: 'Create pairing token' }).click())).to.equal(400);
    expect(await page.locator('#pt-error').innerText()).to.match(/group/);
    expect(await page.locator('#pt-group').getAttribute('aria-invalid'), 'the group field').to.equal('true');
    expect(await page.locator('#pt-tenant').getAttribute('aria-invalid'), 'the tenant field (it was fine)').to.not.equal('true');
  });

  it('A3: sign-in: a wrong admin token marks the token field invalid and ties the message to it', async () => {
    const other = await browser.newContext();
    try {
      const p = await other.newPage();
      await p.goto(`${url}/console/login`);
      await p.getByLabel('Admin token').fill('not-the-admin-token');
      expect(await post(p, () => p.getByRole('button', { name: 'Sign in' }).click())).to.equal(401);
      const field = p.locator('#token');
      expect(await field.getAttribute('aria-invalid'), 'aria-invalid on the token field').to.equal('true');
      const described = (await field.getAttribute('aria-describedby')) ?? '';
      const texts = await Promise.all(described.split(/\s+/).filter(Boolean).map((id) => p.locator(`[id="${id}"]`).innerText().catch(() => '')));
      expect(texts.join(' '), 'the field describes what is wrong').to.match(/not valid/);
    } finally {
      await other.close();
    }
  });
});

// ---- the connector's local page ------------------------------------------------------------------

describe("the connector's local page for assistive technology (found in review)", function () {
  this.timeout(120_000);
  let browser: Browser;
  let hs: HealthServer;
  let base: string;

  before(async () => {
    const now = new Date().toISOString();
    // A connector with a few targets and the 50 recent problems the page keeps: a long page.
    const status: ConnectorStatus = {
      connectorId: 'cn_0123456789abcdef0123',
      tenant: 'customer-000',
      group: 'default',
      version: '1.0.0',
      paired: true,
      pairedAt: now,
      cloudUrl: 'https://cloud.example',
      ready: true,
      tunnel: { state: 'connected', since: now, rttMs: 3, protocol: 2, reconnects: 0, activeStreams: 0, retryAt: null, lastError: null },
      certificate: { subject: 'CN=cn_0123456789abcdef0123', issuer: 'CN=uemlink CA', notAfter: '2030-01-01T00:00:00Z', fingerprint256: 'aa', daysLeft: 900, expiringSoon: false },
      targets: Array.from({ length: 6 }, (_, i) => ({
        id: `ws1-${i}`,
        baseUrl: `https://uem${i}.customer.example/`,
        origin: 'local' as const,
        reachable: i % 2 === 0,
        latencyMs: i % 2 === 0 ? 12 : null,
        lastStatus: 200,
        checkStatus: 200,
        checkedAt: now,
        error: i % 2 ? { code: 'UEM_UNREACHABLE', message: 'connect ECONNREFUSED' } : null,
        tls: null,
        inFlight: 0,
        requests: 10,
      })),
      pendingTargets: [],
      managedTargets: [],
      system: { hostname: 'edge-1', os: 'Debian 12', cpuLoadPercent: 3, memory: null, stateDirFreeBytes: 1e10, uptimeSeconds: 3600, processUptimeSeconds: 600, node: 'v20' },
      recentProblems: Array.from({ length: 50 }, (_, i) => ({ time: now, level: 'warn', message: `target ws1-1 health check failed (${i})`, code: 'UEM_UNREACHABLE' })),
    };
    const backend: HealthBackend = {
      status: async () => status,
      metrics: async () => '',
      pair: async () => {
        throw new Error('not used');
      },
      decide: async () => {},
      diagnose: async () => ({ ok: true, startedAt: now, checks: [] }),
      supportBundle: async () => Buffer.from(''),
    };
    hs = await HealthServer.start({ listen: { host: '127.0.0.1', port: 0 }, adminPassword: 'correct-horse-battery-staple', adminPasswordFile: '/var/lib/uemlink/state/admin-password', backend, logger: silentLogger() });
    base = `http://127.0.0.1:${hs.port}`;
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await hs?.close();
  });

  it('L1: the 10 s self-refresh does not throw a reader back to the top of the page, and it can be stopped', async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 700 } });
    try {
      const page = await ctx.newPage();
      await page.goto(`${base}/`);
      // Reading the recent problems at the end of the page: scrolled, nothing focused (a screen
      // reader's browse mode, or a magnifier user, moves no focus).
      await page.evaluate(() => (globalThis as any).scrollTo(0, (globalThis as any).document.documentElement.scrollHeight));
      const before = await page.evaluate(() => (globalThis as any).scrollY as number);
      expect(before).to.be.above(2000);
      await page.waitForTimeout(11_500);
      const after = await page.evaluate(() => (globalThis as any).scrollY as number);
      expect(after, 'scroll position 11.5 s later').to.be.above(before - 50);
      const stop = (await page.getByRole('button', { name: /refresh/i }).count()) + (await page.getByRole('checkbox', { name: /refresh/i }).count());
      expect(stop, 'a control to pause the auto-refresh (WCAG 2.2.2)').to.be.at.least(1);
    } finally {
      await ctx.close();
    }
  });

  it('L2: a wrong local admin password marks the password field of the form that was sent, and says so there', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await ctx.newPage();
      await page.goto(`${base}/`);
      const form = page.locator('section[aria-labelledby="h-support"] form');
      await form.getByLabel('Local admin password').fill('wrong-password');
      expect(await post(page, () => form.getByRole('button', { name: 'Download support bundle' }).click())).to.equal(401);
      const field = page.locator('#pw-bundle');
      expect(await field.getAttribute('aria-invalid'), 'aria-invalid on the support bundle password').to.equal('true');
      const described = (await field.getAttribute('aria-describedby')) ?? '';
      const texts = await Promise.all(described.split(/\s+/).filter(Boolean).map((id) => page.locator(`[id="${id}"]`).innerText().catch(() => '')));
      expect(texts.join(' '), 'the field describes what is wrong').to.match(/wrong/i);
    } finally {
      await ctx.close();
    }
  });
});
