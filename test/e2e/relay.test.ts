/**
 * Issue 3 end to end: real cloud and connector processes, real TLS with CAs generated here, a real
 * OAuth2 server (oauth2-mock-server), and HTTPS upstreams standing in for UEMs that record what
 * reaches them.
 */
import { expect } from 'chai';
import { createHash, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { OAuth2Server } from 'oauth2-mock-server';
import { createTestPki } from '../../src/common/pki.js';
import { ADMIN_TOKEN, makeConnector, sleep, startCloud, tempDir, until, type Cloud, type Connector } from '../helpers/procs.js';
import { answerWithDigest, echo, startUpstream, type Upstream } from '../helpers/upstream.js';

interface Started {
  c: Connector;
  id: string;
}

describe('e2e: relay (real processes, real TLS)', function () {
  this.timeout(90_000);
  let cloud: Cloud;
  let up: Upstream;
  const conns: Connector[] = [];

  before(async () => {
    cloud = await startCloud({ extra: { relay: { timeoutSeconds: 8, maxRequestBytes: 1024 * 1024 } } });
    up = await startUpstream();
  });
  after(async () => {
    for (const c of conns) await c.proc?.stop();
    await cloud.proc.stop();
    await up.close();
  });
  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    const last = conns[conns.length - 1];
    process.stderr.write(`--- cloud ---\n${cloud.proc.raw.slice(-3000)}${cloud.proc.stderr}\n--- connector ---\n${last?.proc?.raw.slice(-3000) ?? ''}${last?.proc?.stderr ?? ''}\n`);
  });

  /** Pairs and starts a connector process with the given targets (files are written next to its config). */
  async function connector(targets: unknown[], opts: { tenant?: string; files?: Record<string, string>; extra?: Record<string, unknown> } = {}): Promise<Started> {
    const dir = tempDir('uemlink-relay-conn-');
    for (const [n, v] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, n), v, { mode: 0o600 });
    // Periodic health checks off: these tests count exactly what reaches each upstream.
    const c = await makeConnector({ dir, config: { targets, health: { checkIntervalSeconds: 0 }, ...opts.extra } });
    conns.push(c);
    const t = await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: opts.tenant ?? 'acme' });
    const r = await c.pair(t.body.token);
    expect(r.code, r.stderr).to.equal(0);
    const id = r.stdout.trim();
    await c.start();
    await until(async () => {
      const e = (await cloud.api('GET', '/api/v1/connectors')).body.connectors.find((x: { id: string }) => x.id === id);
      return e?.connected;
    }, 15_000, 'connector connected');
    return { c, id };
  }

  function relay(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
    const { token = ADMIN_TOKEN, ...rest } = init;
    return fetch(`${cloud.url}/api/v1/relay/${path}`, { ...rest, headers: { authorization: `Bearer ${token}`, ...(rest.headers as Record<string, string>) } });
  }

  describe('credentials and trust', () => {
    it('injects basic auth and the Workspace ONE API key header; the relay token never reaches the UEM', async () => {
      await connector(
        [{ id: 'ws1', baseUrl: `${up.baseUrl}/API`, auth: { type: 'basic', username: 'svc-uem', passwordFile: 'uem.pass', apiKeyFile: 'uem.key' }, tls: { caFile: 'uem-ca.pem' } }],
        { files: { 'uem.pass': 'Pa55-w0rd-uem\n', 'uem.key': 'tenant-code-XYZ', 'uem-ca.pem': up.caPem } },
      );
      const res = await relay('acme/ws1/mdm/devices/search?page=0&pagesize=10', { headers: { 'aw-tenant-code': 'forged-by-cloud', cookie: 'a=b', 'x-custom': 'kept' } });
      expect(res.status).to.equal(200);
      expect(res.headers.get('x-uemlink-connector')).to.match(/^cn_/);
      const got = (await res.json()) as { url: string; headers: Record<string, string> };
      expect(got.url).to.equal('/API/mdm/devices/search?page=0&pagesize=10');
      expect(got.headers.authorization).to.equal(`Basic ${Buffer.from('svc-uem:Pa55-w0rd-uem').toString('base64')}`);
      expect(got.headers['aw-tenant-code']).to.equal('tenant-code-XYZ');
      expect(got.headers.host).to.equal(`127.0.0.1:${up.port}`);
      expect(got.headers['x-custom']).to.equal('kept');
      expect(got.headers.cookie).to.equal(undefined);
      expect(JSON.stringify(got)).to.not.contain(ADMIN_TOKEN);
    });

    it('a UEM whose certificate is not signed by the configured CA gives 502 upstream_tls naming its subject', async () => {
      const other = createTestPki(['localhost'], { caName: 'Some Other CA' });
      await connector([{ id: 'wrongca', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: other.caCertPem } }]);
      const before = up.seen.length;
      const res = await relay('acme/wrongca/x');
      const body = (await res.json()) as { error: string; message: string };
      expect(res.status, JSON.stringify(body)).to.equal(502);
      expect(body.error).to.equal('upstream_tls');
      expect(body.message).to.contain('CN=localhost').and.contain('not signed by a trusted CA');
      expect(up.seen.length).to.equal(before);
    });

    it('a certificate that does not match the pin gives 502 upstream_tls; the right pin passes', async () => {
      const wrongPin = createHash('sha256').update('not this one').digest('hex');
      const { X509Certificate } = await import('node:crypto');
      const rightPin = new X509Certificate(up.certPem).fingerprint256;
      await connector([
        { id: 'pinned-bad', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem, pinSha256: wrongPin } },
        { id: 'pinned-ok', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem, pinSha256: rightPin } },
      ]);
      const bad = await relay('acme/pinned-bad/x');
      expect(bad.status).to.equal(502);
      const b = (await bad.json()) as { error: string; message: string };
      expect(b.error).to.equal('upstream_tls');
      expect(b.message).to.contain('pin');
      expect((await relay('acme/pinned-ok/x')).status).to.equal(200);
    });

    it('an unreadable, non-certificate or expired CA file stops the connector with a message naming the file', async () => {
      const expired = createTestPki(['x'], { days: 1, notBefore: new Date(Date.now() - 10 * 86_400_000) });
      for (const [content, expect_] of [
        ['not a pem', /no certificate in it|not a PEM/],
        [expired.certPem, /expired on/],
      ] as const) {
        const dir = tempDir();
        writeFileSync(join(dir, 'ca.pem'), content);
        const c = await makeConnector({ dir, config: { targets: [{ id: 't', baseUrl: 'https://uem.corp.local', auth: { type: 'none' }, tls: { caFile: 'ca.pem' } }] } });
        const { cli } = await import('../helpers/procs.js');
        const r = await cli(['connector', 'run', '--config', c.configFile]);
        expect(r.code).to.equal(78);
        expect(r.stderr).to.contain('targets[0].tls.caFile').and.contain(join(dir, 'ca.pem')).and.match(expect_);
      }
    });
  });

  describe('OAuth2 (client credentials against a real OAuth2 server)', () => {
    let oauth: OAuth2Server;
    const issued = new Set<string>();
    const revoked = new Set<string>();
    let tokenRequests = 0;
    let ttl = 3600;
    let oauthUp: Upstream;

    before(async () => {
      const pki = createTestPki(['localhost', '127.0.0.1']);
      const dir = tempDir();
      writeFileSync(join(dir, 'k.pem'), pki.keyPem);
      writeFileSync(join(dir, 'c.pem'), pki.certPem);
      oauth = new OAuth2Server(join(dir, 'k.pem'), join(dir, 'c.pem'));
      await oauth.issuer.keys.generate('RS256');
      // Unique tokens even within one second (RS256 signatures are deterministic).
      oauth.service.on('beforeTokenSigning', (token: { payload: Record<string, unknown> }) => {
        token.payload.jti = randomUUID();
      });
      oauth.service.on('beforeResponse', (resp: { body: Record<string, unknown>; statusCode: number }, req: { body?: Record<string, string> }) => {
        tokenRequests++;
        if (req.body?.client_secret !== 'the-client-secret') {
          resp.statusCode = 401;
          resp.body = { error: 'invalid_client', error_description: 'bad client credentials' };
          return;
        }
        resp.body.expires_in = ttl;
        issued.add(resp.body.access_token as string);
      });
      await oauth.start(0, '127.0.0.1');
      // The UEM: accepts only tokens the OAuth server issued, not revoked.
      oauthUp = await startUpstream({
        pki,
        handler: async (req, res, seen) => {
          const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
          if (!issued.has(token) || revoked.has(token)) {
            res.writeHead(401, { 'content-type': 'application/json' });
            res.end('{"errorCode":1005,"message":"token rejected"}');
            return;
          }
          await echo(req, res, seen);
        },
      });
    });
    after(async () => {
      await oauth.stop();
      await oauthUp.close();
    });

    function target(id: string, secret = 'the-client-secret'): Record<string, unknown> {
      return {
        id,
        baseUrl: oauthUp.baseUrl,
        auth: { type: 'oauth2', tokenUrl: `https://127.0.0.1:${oauth.address().port}/token`, clientId: 'uemlink', clientSecret: secret, scope: 'api' },
        tls: { ca: oauthUp.caPem },
      };
    }

    it('many concurrent requests share one token request; expiry triggers a refresh; a rejected token is retried once', async () => {
      await connector([target('oauth')]);
      tokenRequests = 0;
      ttl = 3;
      const results = await Promise.all(Array.from({ length: 25 }, (_, i) => relay(`acme/oauth/devices/${i}`).then((r) => r.status)));
      expect(results.every((s) => s === 200)).to.equal(true);
      expect(tokenRequests).to.equal(1);

      // Expiry: the token lives 3 s; after it, the next request fetches a new one.
      await sleep(3200);
      expect((await relay('acme/oauth/after-expiry')).status).to.equal(200);
      expect(tokenRequests).to.equal(2);

      // Rejection: the UEM revokes the token the connector still holds; exactly one retry follows.
      ttl = 3600;
      for (const t of issued) revoked.add(t);
      const seenBefore = oauthUp.seen.length;
      const res = await relay('acme/oauth/after-revoke', { method: 'POST', body: 'payload', headers: { 'content-type': 'text/plain' } });
      expect(res.status).to.equal(200);
      expect(((await res.json()) as { body: string }).body).to.equal('payload');
      expect(tokenRequests).to.equal(3);
      expect(oauthUp.seen.length - seenBefore).to.equal(2);
    });

    it('a wrong client secret is reported as what it is: 502 upstream_auth, invalid_client', async () => {
      await connector([target('oauth-bad', 'wrong-secret')]);
      const res = await relay('acme/oauth-bad/x');
      expect(res.status).to.equal(502);
      const b = (await res.json()) as { error: string; message: string };
      expect(b.error).to.equal('upstream_auth');
      expect(b.message).to.contain('invalid_client').and.contain('client id or secret is wrong');
      expect(b.message).to.not.contain('wrong-secret');
    });

    it('an unreachable token endpoint is reported as unreachable', async () => {
      await connector([{ ...target('oauth-down'), auth: { type: 'oauth2', tokenUrl: 'https://127.0.0.1:1/token', clientId: 'x', clientSecret: 'y' } }]);
      const b = (await (await relay('acme/oauth-down/x')).json()) as { error: string; message: string };
      expect(b.error).to.equal('upstream_auth');
      expect(b.message).to.contain('unreachable');
    });
  });

  describe('policy', () => {
    before(async () => {
      await connector([
        { id: 'strict', baseUrl: `${up.baseUrl}/API`, auth: { type: 'none' }, tls: { ca: up.caPem }, allow: [{ methods: ['GET'], pathPrefix: '/mdm' }] },
        { id: 'open', baseUrl: `${up.baseUrl}/API`, auth: { type: 'none' }, tls: { ca: up.caPem } },
      ]);
    });

    it('refuses a method or path outside the allow list with 403 not_allowed, on the connector', async () => {
      const before = up.seen.length;
      const post = await relay('acme/strict/mdm/devices', { method: 'POST', body: '{}' });
      expect(post.status).to.equal(403);
      expect(((await post.json()) as { error: string }).error).to.equal('not_allowed');
      const other = await relay('acme/strict/system/admins');
      expect(other.status).to.equal(403);
      const lookalike = await relay('acme/strict/mdmx');
      expect(lookalike.status).to.equal(403);
      expect(up.seen.length).to.equal(before);
      expect((await relay('acme/strict/mdm/devices/search')).status).to.equal(200);
      expect(up.seen.length).to.equal(before + 1);
    });

    it('a corpus of path escapes and smuggling shapes gets 400 and reaches nothing upstream', async () => {
      const corpus = [
        '/../../etc/passwd',
        '/%2e%2e/secret',
        '/%2E%2E%2Fsecret',
        '/%252e%252e/secret',
        '/..%2fsecret',
        '/..;/secret',
        '/.%2e/secret',
        '/./x',
        '//evil.example.com/x',
        '/x/%2F%2Fevil',
        '/x%00y',
        '/x%0d%0aHost:%20evil.example.com',
        '/%c0%ae%c0%ae/secret',
        '/x\\..\\secret',
        '/x?a=%0d%0aSet-Cookie:%20x',
      ];
      const before = up.seen.length;
      for (const p of corpus) {
        const status = await rawStatus(cloud.port, `GET /api/v1/relay/acme/open${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: close\r\n\r\n`);
        expect(status, p).to.equal(400);
      }
      const shapes = [
        // absolute-form request target
        `GET http://evil.example.com/api/v1/relay/acme/open/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: close\r\n\r\n`,
        // @ in the target segment
        `GET /api/v1/relay/acme/open@evil.example.com/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: close\r\n\r\n`,
        // conflicting Content-Length
        `POST /api/v1/relay/acme/open/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Length: 3\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde`,
        // Content-Length with Transfer-Encoding
        `POST /api/v1/relay/acme/open/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`,
        // obfuscated Transfer-Encoding
        `POST /api/v1/relay/acme/open/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nTransfer-Encoding: xchunked\r\nConnection: close\r\n\r\n`,
        // bare LF header injection attempt
        `GET /api/v1/relay/acme/open/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nX-A: 1\nHost: evil\r\nConnection: close\r\n\r\n`,
      ];
      for (const s of shapes) {
        const status = await rawStatus(cloud.port, s);
        expect(status, s.split('\r\n')[0]).to.be.oneOf([400, 404]);
      }
      const huge = await rawStatus(cloud.port, `GET /api/v1/relay/acme/open/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nX-Big: ${'a'.repeat(70_000)}\r\nConnection: close\r\n\r\n`);
      expect(huge).to.be.oneOf([400, 431]);
      expect(up.seen.length, 'nothing reached the upstream').to.equal(before);
      // The tunnel is still healthy afterwards.
      expect((await relay('acme/open/still-fine')).status).to.equal(200);
    });

    it('a duplicate Host never changes where the request goes; Host is the target\'s', async () => {
      const raw = `GET /api/v1/relay/acme/open/hosts HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example.com\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: close\r\n\r\n`;
      const before = up.seen.length;
      const status = await rawStatus(cloud.port, raw);
      if (status === 200) {
        expect(up.seen[up.seen.length - 1]!.headers.host).to.equal(`127.0.0.1:${up.port}`);
      } else {
        expect(status).to.equal(400);
        expect(up.seen.length).to.equal(before);
      }
    });

    it('bodies over the relay limit get 413 too_large', async () => {
      const big = await relay('acme/open/upload', { method: 'POST', body: Buffer.alloc(2 * 1024 * 1024, 1) });
      expect(big.status).to.equal(413);
      expect(((await big.json()) as { error: string }).error).to.equal('too_large');
    });
  });

  describe('tenants', () => {
    it('a tenant key reaches its own tenant only; each tenant\'s traffic goes to its own connector', async () => {
      const globexUp = await startUpstream();
      try {
        await connector([{ id: 'ws1', baseUrl: globexUp.baseUrl, auth: { type: 'none' }, tls: { ca: globexUp.caPem } }], { tenant: 'globex' });
        await connector([{ id: 'ws1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }], { tenant: 'acme' });
        const acmeKey = (await cloud.api('POST', '/api/v1/tenants/acme/api-keys', { label: 'test' })).body.key as string;
        expect(acmeKey).to.match(/^ulak1\./);
        const denied = await relay('globex/ws1/x', { token: acmeKey });
        expect(denied.status).to.equal(403);
        expect(((await denied.json()) as { error: string }).error).to.equal('forbidden');
        const g0 = globexUp.seen.length;
        const a0 = up.seen.length;
        expect((await relay('acme/ws1/mine', { token: acmeKey })).status).to.equal(200);
        expect(up.seen.length).to.equal(a0 + 1);
        expect(globexUp.seen.length).to.equal(g0);
        expect((await relay('globex/ws1/theirs')).status).to.equal(200); // the admin may
        expect(globexUp.seen.length).to.equal(g0 + 1);
        const bogus = await relay('acme/ws1/x', { token: 'ulak1.AAAAAAAAAAAA.' + 'B'.repeat(43) });
        expect(bogus.status).to.equal(401);
        expect((await relay('acme/nosuchtarget/x')).status).to.equal(404);
      } finally {
        await globexUp.close();
      }
    });
  });

  describe('streaming, aborts and failover', () => {
    let slowUp: Upstream;
    before(async () => {
      slowUp = await startUpstream();
    });
    after(() => slowUp.close());

    it('a client that disconnects cancels the upstream request', async () => {
      slowUp.setHandler(() => {
        /* never answers */
      });
      await connector([{ id: 'slow', baseUrl: slowUp.baseUrl, auth: { type: 'none' }, tls: { ca: slowUp.caPem } }]);
      const ac = new AbortController();
      const p = relay('acme/slow/hang', { signal: ac.signal }).catch((e: unknown) => e);
      await until(() => slowUp.seen.length > 0, 5000, 'the request to reach the upstream');
      ac.abort();
      await p;
      await until(() => slowUp.seen[0]!.aborted, 3000, 'the upstream to see the abort');
    });

    it('streams a large body both ways intact', async () => {
      slowUp.setHandler(async (req, res) => {
        if (req.url === '/download') {
          res.writeHead(200, { 'content-length': String(48 * 1024 * 1024) });
          const chunk = Buffer.alloc(1024 * 1024);
          for (let i = 0; i < 48; i++) {
            chunk.fill(i);
            if (!res.write(Buffer.from(chunk))) await new Promise((r) => res.once('drain', r));
          }
          res.end();
          return;
        }
        await answerWithDigest(req, res);
      });
      await connector([{ id: 'bulk', baseUrl: slowUp.baseUrl, auth: { type: 'none' }, tls: { ca: slowUp.caPem } }]);
      const down = await relay('acme/bulk/download');
      const h = createHash('sha256');
      let n = 0;
      for await (const c of down.body as unknown as AsyncIterable<Uint8Array>) {
        h.update(c);
        n += c.length;
      }
      const expected = createHash('sha256');
      for (let i = 0; i < 48; i++) expected.update(Buffer.alloc(1024 * 1024, i));
      expect(n).to.equal(48 * 1024 * 1024);
      expect(h.digest('hex')).to.equal(expected.digest('hex'));

      // Upload through a streaming body (chunked, no length) under the relay's 1 MiB limit… is refused,
      // so raise nothing: send 900 KiB in chunks.
      // Varying bytes, so that a message buffer reused too early (message-pool.ts) cannot go unnoticed.
      const payload = Buffer.alloc(900 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 12)) & 0xff;
      const up2 = await relay('acme/bulk/upload', {
        method: 'POST',
        body: new ReadableStream({
          start(ctl) {
            for (let i = 0; i < 9; i++) ctl.enqueue(payload.subarray(i * 100 * 1024, (i + 1) * 100 * 1024));
            ctl.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
      expect(up2.status).to.equal(200);
      const got = (await up2.json()) as { n: number; sha: string };
      expect(got.n).to.equal(payload.length);
      expect(got.sha).to.equal(createHash('sha256').update(payload).digest('hex'));
    });

    it('with two connectors, killing one mid-load: every GET succeeds, no POST reaches the UEM twice', async () => {
      const posts = new Map<string, number>();
      const haUp = await startUpstream({
        handler: async (req, res) => {
          const chunks: Buffer[] = [];
          for await (const c of req) chunks.push(c as Buffer);
          if (req.method === 'POST') {
            const id = Buffer.concat(chunks).toString();
            posts.set(id, (posts.get(id) ?? 0) + 1);
          }
          await sleep(40);
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('ok');
        },
      });
      try {
        const tgt = [{ id: 'ha', baseUrl: haUp.baseUrl, auth: { type: 'none' }, tls: { ca: haUp.caPem } }];
        const a = await connector(tgt);
        const b = await connector(tgt);
        const getStatuses: number[] = [];
        const postStatuses: number[] = [];
        let stop = false;
        const worker = async (): Promise<void> => {
          let i = 0;
          while (!stop) {
            if (i++ % 3 === 0) {
              const id = randomUUID();
              postStatuses.push((await relay('acme/ha/orders', { method: 'POST', body: id })).status);
            } else getStatuses.push((await relay('acme/ha/devices')).status);
          }
        };
        const workers = Array.from({ length: 12 }, worker);
        await sleep(800);
        a.c.proc.kill('SIGKILL');
        await sleep(1500);
        stop = true;
        await Promise.all(workers);
        expect(getStatuses.length).to.be.greaterThan(50);
        expect(getStatuses.filter((s) => s !== 200), 'failed GETs').to.deep.equal([]);
        for (const [, n] of posts) expect(n).to.equal(1);
        for (const s of postStatuses) expect(s).to.be.oneOf([200, 502]);
        expect(b.id).to.match(/^cn_/);
      } finally {
        await haUp.close();
      }
    });
  });
});

/** Sends raw bytes and returns the status code of the answer (0 when the server just closes). */
function rawStatus(port: number, request: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => (data += d.toString()));
    s.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
    s.on('error', (e) => (data ? resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)) : reject(e)));
    s.write(request);
    setTimeout(() => s.destroy(), 5000);
  });
}
