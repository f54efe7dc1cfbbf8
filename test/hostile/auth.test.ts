/**
 * Hostile input against authentication (issue 7, "Auth"). Related checks that already exist and are
 * not repeated here: a replayed tunnel authentication, a revoked connector, a signature by another
 * key (test/cloud/tunnel-auth.test.ts); a tenant key on another tenant's relay and each tenant's
 * traffic going to its own connector (test/e2e/relay.test.ts); the local page's forms in a real
 * browser (test/e2e/page.browser.test.ts).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Request } from 'express';
import { systemClock, type Clock } from '../../src/common/clock.js';
import { silentLogger } from '../../src/common/log.js';
import { createCsr, generateRsaKeyPair } from '../../src/common/pki.js';
import { matchesConfiguredSecret, safeEqual } from '../../src/common/safe-equal.js';
import type { CloudConfig } from '../../src/cloud/config.js';
import { CloudServer } from '../../src/cloud/server.js';
import { TunnelError, type Connected } from '../../src/connector/tunnel-client.js';
import { daemonBackend } from '../../src/connector/app.js';
import { CSRF_COOKIE, csrfProblem } from '../../src/health/auth.js';
import { HealthServer } from '../../src/health/server.js';
import { encodeFrame, jsonPayload } from '../../src/protocol/frame.js';
import type { MuxStream } from '../../src/protocol/stream.js';
import { connectAs, offsetClock, pairInproc, startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { ADMIN_TOKEN, freePort, tempDir, until } from '../helpers/procs.js';

async function startCloud(opts: { perAddress: number; perTenant: number; clock?: Clock; certificateDays?: number }): Promise<CloudServer> {
  const dir = tempDir('uemlink-hostile-');
  const port = await freePort();
  const cfg: CloudConfig = {
    file: join(dir, 'cloud.json'),
    listen: { host: '127.0.0.1', port },
    publicUrl: `http://127.0.0.1:${port}`,
    dataDir: join(dir, 'data'),
    adminToken: ADMIN_TOKEN,
    tunnel: { heartbeatSeconds: 15, handshakeTimeoutSeconds: 5, maxConcurrentStreams: 1024, initialWindowBytes: 1024 * 1024, maxFrameBytes: 64 * 1024 },
    drainTimeoutMs: 1000,
    pairing: { maxFailuresPerMinute: opts.perAddress, maxFailuresPerTenantPerMinute: opts.perTenant, certificateDays: opts.certificateDays ?? 365, renewBeforeDays: 30 },
    maxPendingHandshakes: 512,
    relay: { timeoutMs: 5000, maxRequestBytes: 1024 * 1024 },
    integrations: { retryBaseMs: 20, firstRunWithinSeconds: 3600 },
  };
  return CloudServer.start(cfg, { logger: silentLogger(), clock: opts.clock ?? systemClock });
}

/** POST /api/v1/pair from a chosen loopback address (127.0.0.x), so per-address budgets can be told apart. */
function pairFrom(cloud: CloudServer, from: string, body: unknown): Promise<{ status: number; error?: string; retryAfter?: string }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: cloud.port, path: '/api/v1/pair', method: 'POST', localAddress: from, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString();
          let error: string | undefined;
          try {
            error = (JSON.parse(text) as { error?: string }).error;
          } catch {
            error = undefined;
          }
          const out: { status: number; error?: string; retryAfter?: string } = { status: res.statusCode ?? 0 };
          if (error !== undefined) out.error = error;
          if (typeof res.headers['retry-after'] === 'string') out.retryAfter = res.headers['retry-after'];
          resolve(out);
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const wrongSecret = (token: string): string => token.replace(/\.[A-Za-z0-9_-]{43}$/, `.${randomBytes(32).toString('base64url')}`);
const randomId = (token: string): string => {
  const p = token.split('.');
  return `${p[0]}.${p[1]}.${randomBytes(9).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
};
let csrPem: string | undefined;
const csr = (): string => (csrPem ??= createCsr(generateRsaKeyPair(2048).privateKeyPem, { CN: 'x' }));

describe('hostile input: authentication', function () {
  this.timeout(60_000);

  describe('pairing-token guessing is rate limited', () => {
    it('per address: past pairing.maxFailuresPerMinute an address gets 429; another address does not', async () => {
      const cloud = await startCloud({ perAddress: 3, perTenant: 1000 });
      try {
        const t = await cloud.pairing.createToken({ tenant: 'acme' });
        for (let i = 0; i < 3; i++) expect((await pairFrom(cloud, '127.0.0.2', { token: randomId(t.token), csr: 'x' })).status).to.equal(401);
        const limited = await pairFrom(cloud, '127.0.0.2', { token: t.token, csr: csr() });
        expect(limited.status).to.equal(429);
        expect(limited.error).to.equal('rate_limited');
        expect(Number(limited.retryAfter)).to.be.within(1, 60);
        // Another address is not affected, and the token was not consumed by the refusals.
        expect((await pairFrom(cloud, '127.0.0.3', { token: t.token, csr: csr() })).status).to.equal(201);
      } finally {
        await cloud.shutdown();
      }
    });

    it('per tenant, across addresses: wrong secrets for tenant A\'s token lock A only, never B, and random ids lock nobody', async () => {
      const clock = offsetClock();
      const cloud = await startCloud({ perAddress: 1000, perTenant: 3, clock });
      try {
        const a = await cloud.pairing.createToken({ tenant: 'acme' });
        const b = await cloud.pairing.createToken({ tenant: 'globex' });
        const a2 = await cloud.pairing.createToken({ tenant: 'acme' });
        // Three guesses at A's token secret, each from another address (a distributed guesser).
        for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
          expect((await pairFrom(cloud, from, { token: wrongSecret(a.token), csr: 'x' })).status).to.equal(401);
        }
        const next = await pairFrom(cloud, '127.0.0.5', { token: wrongSecret(a.token), csr: 'x' });
        expect(next.status).to.equal(429);
        expect(next.error).to.equal('rate_limited');
        // Tenant A's redemptions wait for the window (a guesser holding A's token id can delay A's pairing by a minute) ...
        expect((await pairFrom(cloud, '127.0.0.6', { token: a2.token, csr: csr() })).status).to.equal(429);
        // ... tenant B is not affected ...
        expect((await pairFrom(cloud, '127.0.0.6', { token: b.token, csr: csr() })).status).to.equal(201);
        // ... nor are guesses at ids that name no live token: they cannot be attributed to a tenant and lock nobody.
        for (let i = 0; i < 10; i++) expect((await pairFrom(cloud, '127.0.0.7', { token: randomId(a.token), csr: 'x' })).status).to.equal(401);
        // After the window, A pairs.
        clock.advance(61_000);
        expect((await pairFrom(cloud, '127.0.0.6', { token: a.token, csr: csr() })).status).to.equal(201);
        // A used (or expired) token no longer names a tenant: wrong secrets for it cannot keep A locked.
        for (let i = 0; i < 5; i++) expect((await pairFrom(cloud, '127.0.0.8', { token: wrongSecret(a.token), csr: 'x' })).status).to.equal(401);
        expect((await pairFrom(cloud, '127.0.0.6', { token: a2.token, csr: csr() })).status).to.equal(201);
      } finally {
        await cloud.shutdown();
      }
    });
  });

  describe('constant-time comparisons', () => {
    it('safeEqual compares any two strings without throwing, equal or not, whatever their byte lengths', () => {
      expect(safeEqual('abc', 'abc')).to.equal(true);
      expect(safeEqual('abc', 'abd')).to.equal(false);
      expect(safeEqual('é', 'ab')).to.equal(false); // same UTF-8 byte length, different string lengths
      expect(safeEqual('éa', 'ab')).to.equal(false); // same string length, different UTF-8 byte lengths
      expect(safeEqual('', 'x')).to.equal(false);
    });

    it('matchesConfiguredSecret accepts only the exact token and never throws on multi-byte input', () => {
      const secret = 'Zq9-admin-token-0123456789';
      expect(matchesConfiguredSecret(secret, secret)).to.equal(true);
      expect(matchesConfiguredSecret(`${secret.slice(0, -1)}8`, secret)).to.equal(false); // last byte differs
      expect(matchesConfiguredSecret(`x${secret.slice(1)}`, secret)).to.equal(false); // first byte differs
      expect(matchesConfiguredSecret(secret.slice(0, -1), secret)).to.equal(false);
      expect(matchesConfiguredSecret(`${secret}x`, secret)).to.equal(false);
      expect(matchesConfiguredSecret('', secret)).to.equal(false);
      // same string length, more UTF-8 bytes; and same UTF-8 byte length, fewer characters
      expect(() => matchesConfiguredSecret(`é${secret.slice(1)}`, secret)).to.not.throw();
      expect(matchesConfiguredSecret(`é${secret.slice(1)}`, secret)).to.equal(false);
      expect(matchesConfiguredSecret(`é${secret.slice(2)}`, secret)).to.equal(false);
      // a second configured secret does not disturb the first
      expect(matchesConfiguredSecret('another-secret-value-xyz', 'another-secret-value-xyz')).to.equal(true);
      expect(matchesConfiguredSecret(secret, secret)).to.equal(true);
    });

    it('the local page\'s CSRF check refuses (never throws on) a form token with multi-byte characters', () => {
      const cookieToken = 'a'.repeat(43);
      const req = { headers: { host: '127.0.0.1:1', cookie: `${CSRF_COOKIE}=${cookieToken}` }, body: { csrf: `é${'a'.repeat(42)}` } } as unknown as Request;
      expect(() => csrfProblem(req, false)).to.not.throw();
      expect(csrfProblem(req, false)).to.match(/CSRF/);
      const ok = { headers: { host: '127.0.0.1:1', cookie: `${CSRF_COOKIE}=${cookieToken}` }, body: { csrf: cookieToken } } as unknown as Request;
      expect(csrfProblem(ok, false)).to.equal(undefined);
    });

    it('no source file compares a secret with === or feeds raw strings to timingSafeEqual', () => {
      const files: string[] = [];
      const walk = (d: string): void => {
        for (const n of readdirSync(d)) {
          const p = join(d, n);
          if (statSync(p).isDirectory()) walk(p);
          else if (p.endsWith('.ts')) files.push(p);
        }
      };
      walk('src');
      const secretName = String.raw`[\w.]*(?:token|secret|password|passwd|csrf|apiKey|signature|hmac)\w*`;
      const eq = new RegExp(String.raw`\b${secretName}\s*[!=]==?\s*(?!undefined\b|null\b|'|"|\d)[\w.]*(?:token|secret|password|csrf|key|hash|signature)`, 'i');
      // Reviewed: not a comparison with anything a client sends.
      const ALLOWED = [
        // the OAuth2 cache drops the token the UEM just refused, if it is still the cached one (both ours)
        { file: join('connector', 'targets', 'auth.ts'), text: 'this.cached?.token === token' },
      ];
      const problems: string[] = [];
      for (const f of files) {
        if (f.includes(`${join('src', 'uem', 'simulator')}`)) continue; // the UEM simulator is test tooling
        readFileSync(f, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            if (/timingSafeEqual\(\s*Buffer\.from\(/.test(line)) problems.push(`${f}:${i + 1}: timingSafeEqual on raw strings: ${line.trim()}`);
            if (eq.test(line) && !/typeof|\.length\s*[!=]==|kind\s*===/.test(line) && !ALLOWED.some((a) => f.endsWith(a.file) && line.includes(a.text))) problems.push(`${f}:${i + 1}: ${line.trim()}`);
          });
      }
      expect(problems, problems.join('\n')).to.deep.equal([]);
    });
  });

  describe('connector certificates', () => {
    it('an expired connector certificate fails the tunnel handshake permanently (AUTH_FAILED)', async () => {
      const clock = offsetClock();
      const cloud = await startCloud({ perAddress: 100, perTenant: 100, clock, certificateDays: 1 });
      try {
        const id = await pairInproc(cloud);
        (await connectAs(cloud, id)).session.close(); // valid today
        clock.advance(2 * 24 * 3600 * 1000);
        const err = await connectAs(cloud, id).then(
          () => undefined,
          (e: unknown) => e as TunnelError,
        );
        expect(err).to.be.instanceOf(TunnelError);
        expect(err!.code).to.equal('TUNNEL_AUTH_FAILED');
        expect(err!.retryable).to.equal(false);
        expect(err!.message).to.match(/expired/);
      } finally {
        await cloud.shutdown();
      }
    });
  });

  describe('a connector of tenant A cannot claim what belongs to tenant B', () => {
    let cloud: CloudServer;
    before(async () => {
      cloud = await startInprocCloud({ relayTimeoutMs: 5000 });
    });
    after(() => cloud.shutdown());

    const serve = (c: Connected, who: string, hold?: (st: MuxStream) => void): void => {
      c.session.on('stream', (st: MuxStream) => {
        st.on('error', () => {});
        st.resume();
        if (hold) return hold(st);
        st.respond({ status: 200, headers: [['x-who', who]] }, { end: true });
      });
    };
    const relay = (path: string, token = ADMIN_TOKEN): Promise<Response> => fetch(`http://127.0.0.1:${cloud.port}/api/v1/relay/${path}`, { headers: { authorization: `Bearer ${token}` } });

    it('advertising B\'s target ids: B\'s relay requests still only go to B\'s connector', async () => {
      const idA = await pairInproc(cloud, 'acme');
      const idB = await pairInproc(cloud, 'globex');
      const a = await connectAs(cloud, idA, { targets: ['ws1', 'only-b'] });
      const b = await connectAs(cloud, idB, { targets: ['ws1', 'only-b'] });
      serve(a, 'A');
      serve(b, 'B');
      try {
        for (let i = 0; i < 10; i++) {
          for (const t of ['ws1', 'only-b']) {
            const r = await relay(`globex/${t}/x${i}`);
            expect(r.status).to.equal(200);
            expect(r.headers.get('x-who')).to.equal('B');
            expect(r.headers.get('x-uemlink-connector')).to.equal(idB.connectorId);
            const ra = await relay(`acme/${t}/x${i}`);
            expect(ra.headers.get('x-who')).to.equal('A');
          }
        }
      } finally {
        a.session.close();
        b.session.close();
      }
    });

    it('sending frames for a stream of B\'s: A\'s tunnel ends with a protocol error, B\'s request is untouched', async () => {
      const idA = await pairInproc(cloud, 'acme');
      const idB = await pairInproc(cloud, 'globex');
      const a = await connectAs(cloud, idA, { targets: ['ws1'] });
      const b = await connectAs(cloud, idB, { targets: ['ws1'] });
      let held: MuxStream | undefined;
      serve(a, 'A');
      serve(b, 'B', (st) => (held = st));
      const aClosed = new Promise<string>((r) => a.session.once('close', (i) => r(i.error.code)));
      try {
        const pending = relay('globex/ws1/victim');
        await until(() => held, 5000, 'B holds the request');
        const sid = held!.id;
        // A forges the response and data of B's stream id on its own tunnel.
        const forged = Buffer.concat([
          encodeFrame({ kind: 'response', streamId: sid, json: jsonPayload({ status: 200, headers: [['x-who', 'A-forged']] }) }),
          encodeFrame({ kind: 'data', streamId: sid, data: Buffer.from('forged') }),
          encodeFrame({ kind: 'end', streamId: sid }),
        ]);
        (a.session as unknown as { transport: { send(b: Buffer): void } }).transport.send(forged);
        expect(await aClosed).to.equal('TUNNEL_PROTOCOL_ERROR');
        held!.respond({ status: 200, headers: [['x-who', 'B']] });
        held!.end('genuine');
        const r = await pending;
        expect(r.headers.get('x-who')).to.equal('B');
        expect(await r.text()).to.equal('genuine');
        expect(cloud.registry.get(idB.connectorId)?.session.state).to.equal('open');
      } finally {
        a.session.close();
        b.session.close();
      }
    });
  });

  describe('tenant API keys are scoped', () => {
    let cloud: CloudServer;
    let acmeKey: string;
    let globexKey: string;
    const call = async (method: string, path: string, token: string, body?: unknown): Promise<{ status: number; error?: string }> => {
      const init: RequestInit = { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } };
      if (body !== undefined) init.body = JSON.stringify(body);
      const r = await fetch(`http://127.0.0.1:${cloud.port}${path}`, init);
      const text = await r.text();
      let error: string | undefined;
      try {
        error = (JSON.parse(text) as { error?: string }).error;
      } catch {
        error = undefined;
      }
      return error === undefined ? { status: r.status } : { status: r.status, error };
    };
    before(async () => {
      cloud = await startInprocCloud();
      acmeKey = ((await (await fetch(`http://127.0.0.1:${cloud.port}/api/v1/tenants/acme/api-keys`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: '{}' })).json()) as { key: string }).key;
      globexKey = ((await (await fetch(`http://127.0.0.1:${cloud.port}/api/v1/tenants/globex/api-keys`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: '{}' })).json()) as { key: string }).key;
    });
    after(() => cloud.shutdown());

    it('A\'s key: 403 on B\'s relay, managed targets, integrations, devices, apps and policies', async () => {
      for (const [method, path, body] of [
        ['GET', '/api/v1/relay/globex/ws1/x'],
        ['POST', '/api/v1/relay/globex/ws1/x', {}],
        ['GET', '/api/v1/tenants/globex/managed-targets'],
        ['PUT', '/api/v1/tenants/globex/managed-targets/mt1', { baseUrl: 'https://127.0.0.1:1', auth: { type: 'none' } }],
        ['DELETE', '/api/v1/tenants/globex/managed-targets/mt1'],
        ['GET', '/api/v1/tenants/globex/integrations'],
        ['POST', '/api/v1/tenants/globex/integrations', {}],
        ['GET', '/api/v1/tenants/globex/devices'],
        ['GET', '/api/v1/tenants/globex/apps'],
        ['GET', '/api/v1/tenants/globex/app-policies'],
      ] as Array<[string, string, unknown?]>) {
        const r = await call(method, path, acmeKey, body);
        expect(r, `${method} ${path}`).to.deep.equal({ status: 403, error: 'forbidden' });
      }
    });

    it('a tenant key is no admin token: 401 on admin routes; its own tenant works; revoked or forged keys are 401', async () => {
      for (const [method, path] of [
        ['GET', '/api/v1/connectors'],
        ['POST', '/api/v1/pairing-tokens'],
        ['POST', '/api/v1/tenants/acme/api-keys'],
        ['DELETE', '/api/v1/connectors/cn_0123456789abcdef0123'],
      ] as Array<[string, string]>) {
        expect((await call(method, path, acmeKey, method === 'POST' ? { tenant: 'acme' } : undefined)).status, `${method} ${path}`).to.equal(401);
      }
      expect((await call('GET', '/api/v1/tenants/acme/managed-targets', acmeKey)).status).to.equal(200);
      expect((await call('GET', '/api/v1/tenants/globex/integrations', globexKey)).status).to.equal(200);
      // B's key id with A's secret, and A's id with B's secret: neither is a key.
      const [, idA, secretA] = acmeKey.split('.');
      const [, idB, secretB] = globexKey.split('.');
      expect((await call('GET', '/api/v1/tenants/globex/integrations', `ulak1.${idB}.${secretA}`)).status).to.equal(401);
      expect((await call('GET', '/api/v1/tenants/acme/integrations', `ulak1.${idA}.${secretB}`)).status).to.equal(401);
      const del = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/tenants/acme/api-keys/${idA}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(del.status).to.equal(204);
      expect((await call('GET', '/api/v1/tenants/acme/managed-targets', acmeKey)).status).to.equal(401);
    });
  });

  describe('the local page', () => {
    it('state-changing actions without the password or the CSRF token fail (plain HTTP, no browser)', async () => {
      const cloud = await startInprocCloud();
      const port = await freePort();
      const { daemon } = await startInprocConnector(cloud);
      // The page as `connector run` starts it (src/connector/app.ts), over the in-process daemon.
      const pageServer = await HealthServer.start({ listen: { host: '127.0.0.1', port }, adminPassword: 'correct-horse-battery', backend: daemonBackend(daemon), logger: silentLogger() });
      const base = `http://127.0.0.1:${port}`;
      try {
        const home = await fetch(base);
        const cookie = (home.headers.get('set-cookie') ?? '').split(';')[0]!;
        const csrf = /name="csrf" value="([^"]+)"/.exec(await home.text())?.[1];
        expect(cookie).to.match(new RegExp(`^${CSRF_COOKIE}=`));
        expect(csrf).to.be.a('string');
        const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<number> =>
          fetch(`${base}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString() }).then((r) => r.status);
        const pw = 'correct-horse-battery';
        for (const path of ['/actions/pair', '/actions/targets/nope/approve', '/actions/targets/nope/reject', '/actions/support-bundle', '/actions/diagnose']) {
          expect(await post(path, {}), `${path}: nothing`).to.equal(403);
          expect(await post(path, { password: pw }), `${path}: password, no CSRF`).to.equal(403);
          expect(await post(path, { password: pw, csrf: csrf! }), `${path}: form token without the cookie`).to.equal(403);
          expect(await post(path, { password: pw, csrf: 'x'.repeat(43) }, { cookie }), `${path}: wrong CSRF token`).to.equal(403);
          expect(await post(path, { password: pw, csrf: `é${csrf!.slice(1)}` }, { cookie }), `${path}: multi-byte CSRF token`).to.equal(403);
          expect(await post(path, { password: pw, csrf: csrf! }, { cookie, origin: 'http://evil.example' }), `${path}: another origin`).to.equal(403);
        }
        // With a valid CSRF token, the password is still required (diagnose is the only action without it).
        expect(await post('/actions/pair', { csrf: csrf!, token: 'x' }, { cookie }), 'pair: CSRF, no password').to.equal(401);
        expect(await post('/actions/support-bundle', { password: 'wrong-password', csrf: csrf! }, { cookie }), 'support bundle: wrong password').to.equal(401);
        // With both, the guards let the request through (the target does not exist: 404).
        expect(await post('/actions/targets/nope/approve', { password: pw, csrf: csrf! }, { cookie })).to.equal(404);
        // Guessing the password is rate limited per address: soon even the right one waits.
        let status = 0;
        for (let i = 0; i < 30 && status !== 429; i++) status = await post('/actions/targets/nope/approve', { password: `guess-${i}`, csrf: csrf! }, { cookie });
        expect(status).to.equal(429);
        expect(await post('/actions/targets/nope/approve', { password: pw, csrf: csrf! }, { cookie })).to.equal(429);
        expect(daemon.identity).to.not.equal(undefined); // still paired: nothing changed
      } finally {
        await pageServer.close();
        await daemon.shutdown();
        await cloud.shutdown();
      }
    });
  });
});
