/**
 * The cloud console at its edges (plain HTTP, no browser; found in review): behind a TLS proxy,
 * odd bodies and URLs, and where sign-in may send the browser next.
 */
import { expect } from 'chai';
import { request } from 'node:http';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/log.js';
import type { CloudConfig } from '../../src/cloud/config.js';
import { CloudServer } from '../../src/cloud/server.js';
import { requestProblem } from '../../src/cloud/console/routes/context.js';
import { safeNext } from '../../src/cloud/console/session.js';
import { ApiProblem } from '../../src/cloud/integrations/service.js';
import { UemlinkError } from '../../src/common/errors.js';
import { ADMIN_TOKEN, freePort, tempDir } from '../helpers/procs.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function cookiesOf(a: Answer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of (a.headers['set-cookie'] as string[] | undefined) ?? []) {
    const kv = c.split(';')[0]!;
    const i = kv.indexOf('=');
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

const h1 = (a: Answer): string | undefined => /<h1>(.*?)<\/h1>/.exec(a.body)?.[1];

async function startCloud(publicUrl?: (port: number) => string): Promise<CloudServer> {
  const dir = tempDir('uemlink-review-');
  const port = await freePort();
  const cfg: CloudConfig = {
    file: join(dir, 'cloud.json'),
    listen: { host: '127.0.0.1', port },
    publicUrl: publicUrl ? publicUrl(port) : `http://127.0.0.1:${port}`,
    dataDir: join(dir, 'data'),
    adminToken: ADMIN_TOKEN,
    tunnel: { heartbeatSeconds: 15, handshakeTimeoutSeconds: 5, maxConcurrentStreams: 1024, initialWindowBytes: 1024 * 1024, maxFrameBytes: 64 * 1024 },
    drainTimeoutMs: 2000,
    pairing: { maxFailuresPerMinute: 100, certificateDays: 365, renewBeforeDays: 30 },
    maxPendingHandshakes: 512,
    relay: { timeoutMs: 10_000, maxRequestBytes: 1024 * 1024 },
    integrations: { retryBaseMs: 20, firstRunWithinSeconds: 3600 },
  };
  return CloudServer.start(cfg, { logger: silentLogger() });
}

/** Signs in; returns the cookie header and the session's CSRF token. */
async function signIn(port: number, extra: Record<string, string> = {}): Promise<{ cookie: string; csrf: string; answer: Answer }> {
  const login = await http(port, 'GET', '/console/login', extra);
  const anon = cookiesOf(login).uemlink_console_csrf!;
  const answer = await http(
    port,
    'POST',
    '/console/login',
    { ...extra, 'content-type': 'application/x-www-form-urlencoded', cookie: `uemlink_console_csrf=${anon}` },
    new URLSearchParams({ csrf: anon, token: ADMIN_TOKEN }).toString(),
  );
  const c = cookiesOf(answer);
  return { cookie: `uemlink_console=${c.uemlink_console}; uemlink_console_csrf=${c.uemlink_console_csrf}`, csrf: c.uemlink_console_csrf ?? '', answer };
}

describe('console edges', function () {
  this.timeout(30_000);

  describe("odd input is the client's problem (4xx, not a 500 and an error-log line)", () => {
    let cloud: CloudServer;
    before(async () => {
      cloud = await startCloud();
    });
    after(async () => {
      await cloud.shutdown();
    });

    it('POST /console/login with a JSON body (unauthenticated) is a 4xx, not a 500', async () => {
      const a = await http(cloud.port, 'POST', '/console/login', { 'content-type': 'application/json' }, '{"token":"x"}');
      expect(a.status, h1(a)).to.be.within(400, 499);
    });

    it('POST /console/login without a body is a 4xx, not a 500', async () => {
      const a = await http(cloud.port, 'POST', '/console/login');
      expect(a.status, h1(a)).to.be.within(400, 499);
    });

    it('a form with more than parameterLimit fields is a 413/400, not a 500', async () => {
      const s = await signIn(cloud.port);
      const body = `csrf=${s.csrf}&${Array.from({ length: 2100 }, (_, i) => `a${i}=1`).join('&')}`;
      const a = await http(cloud.port, 'POST', '/console/connectors/pairing-token', { 'content-type': 'application/x-www-form-urlencoded', cookie: s.cookie }, body);
      expect(a.status, h1(a)).to.be.within(400, 499);
    });

    it('a form in an unsupported charset is a 415, not a 500', async () => {
      const s = await signIn(cloud.port);
      const a = await http(cloud.port, 'POST', '/console/connectors/pairing-token', { 'content-type': 'application/x-www-form-urlencoded; charset=koi8-r', cookie: s.cookie }, `csrf=${s.csrf}`);
      expect(a.status, h1(a)).to.be.within(400, 499);
    });

    it('a malformed percent-escape in a path parameter is a 400/404, not a 500', async () => {
      const s = await signIn(cloud.port);
      const a = await http(cloud.port, 'GET', '/console/connectors/%E0%A4%A/revoke', { cookie: s.cookie });
      expect(a.status, h1(a)).to.be.within(400, 499);
    });
  });

  describe('the page an error that reached the error handler gets (requestProblem)', () => {
    it("our own refusals keep their message, even a 4xx one (an integration removed while its page acted on it)", () => {
      const p = requestProblem(new ApiProblem(404, 'unknown_integration', 'integration "i-1" was removed meanwhile'));
      expect(p).to.deep.equal({ status: 404, title: 'Refused', text: 'integration "i-1" was removed meanwhile' });
      expect(requestProblem(new ApiProblem(409, 'group_conflict', 'sync.groups: taken'))).to.include({ status: 409, text: 'sync.groups: taken' });
      expect(requestProblem(new UemlinkError('INVALID_INPUT', 'name: too long'))).to.include({ status: 400, title: 'Refused', text: 'name: too long' });
    });
    it("the body parser's refusals and other 4xx errors are the client's problem; anything else is internal", () => {
      expect(requestProblem(Object.assign(new Error('too large'), { type: 'entity.too.large', status: 413 }))).to.include({ status: 413, title: 'Too large' });
      expect(requestProblem(Object.assign(new Error('bad'), { type: 'entity.parse.failed', status: 400 }))).to.include({ status: 400, title: 'Bad form' });
      expect(requestProblem(Object.assign(new Error('charset'), { statusCode: 415 }))).to.include({ status: 415, title: 'Bad request' });
      expect(requestProblem(new Error('boom'))).to.equal(undefined);
      expect(requestProblem(Object.assign(new Error('upstream'), { status: 502 }))).to.equal(undefined);
      expect(requestProblem(null)).to.equal(undefined);
    });
  });

  describe('next after sign-in', () => {
    it('safeNext refuses a path that leaves /console through dot segments', () => {
      expect(safeNext('/console/../healthz')).to.equal(undefined);
      expect(safeNext('/console/%2e%2e/api/v1/connectors')).to.equal(undefined);
    });

    it('sign-in does not redirect outside the console', async () => {
      const cloud = await startCloud();
      try {
        const login = await http(cloud.port, 'GET', '/console/login');
        const anon = cookiesOf(login).uemlink_console_csrf!;
        const a = await http(
          cloud.port,
          'POST',
          '/console/login',
          { 'content-type': 'application/x-www-form-urlencoded', cookie: `uemlink_console_csrf=${anon}` },
          new URLSearchParams({ csrf: anon, token: ADMIN_TOKEN, next: '/console/../healthz' }).toString(),
        );
        expect(a.status).to.equal(303);
        const resolved = new URL(String(a.headers.location), `http://127.0.0.1:${cloud.port}/console/login`).pathname;
        expect(resolved.startsWith('/console/'), `Location ${a.headers.location} resolves to ${resolved}`).to.equal(true);
      } finally {
        await cloud.shutdown();
      }
    });
  });

  describe('behind a TLS-terminating proxy (no `tls`, an https/wss publicUrl: the documented way to run without tls)', () => {
    it('the session cookie is Secure when publicUrl is https', async () => {
      const cloud = await startCloud(() => 'https://relay.example.com');
      try {
        const s = await signIn(cloud.port, { host: 'relay.example.com', origin: 'https://relay.example.com' });
        expect(s.answer.status).to.equal(303);
        const set = ((s.answer.headers['set-cookie'] as string[]) ?? []).find((c) => c.startsWith('uemlink_console='));
        expect(set, String(set)).to.match(/;\s*Secure/i);
      } finally {
        await cloud.shutdown();
      }
    });

    it('sign-in works when publicUrl is wss:// (the browser sends Origin https://…)', async () => {
      const cloud = await startCloud(() => 'wss://relay.example.com');
      try {
        const s = await signIn(cloud.port, { host: 'relay.example.com', origin: 'https://relay.example.com' });
        expect(s.answer.status, h1(s.answer) + ' ' + (/class="flash error"[^>]*>(.*?)<\/p>/.exec(s.answer.body)?.[1] ?? '')).to.equal(303);
      } finally {
        await cloud.shutdown();
      }
    });
  });
});
