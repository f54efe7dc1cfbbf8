/**
 * Target configuration, credentials and the allow list against the documented and RFC behaviour:
 * what a review confirmed (and the controls it ran), kept as regression tests.
 *
 * A real OAuth2 token endpoint (RFC 6749 §4.4, client credentials) and a UEM run in this file on
 * 127.0.0.1 over HTTPS with a CA made here.
 */
import { expect } from 'chai';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cancel } from '../../src/common/cancel.js';
import { systemClock, type Clock } from '../../src/common/clock.js';
import { silentLogger } from '../../src/common/log.js';
import { createTestPki } from '../../src/common/pki.js';
import { createRelayHandler } from '../../src/connector/relay.js';
import { CloudTargetSchema, LocalTargetSchema } from '../../src/connector/targets/schema.js';
import { Target, UpstreamError, type UpstreamRequest } from '../../src/connector/targets/target.js';
import type { OAuthFailure } from '../../src/connector/targets/auth.js';
import type { MuxStream } from '../../src/protocol/stream.js';
import type { ResponseHead } from '../../src/protocol/messages.js';
import { sessionPair } from '../helpers/sessions.js';

const pki = createTestPki(['localhost', '127.0.0.1']);

interface Hit {
  url: string;
  method: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** One HTTPS server: /token is the OAuth2 endpoint, anything else the UEM. Handlers per test. */
class Lab {
  server!: Server;
  port = 0;
  token: Handler = (_q, s) => json(s, 200, { access_token: 'tok-1', token_type: 'Bearer', expires_in: 3600 });
  uem: Handler = (q, s, body) => json(s, 200, { url: q.url, method: q.method, authorization: q.headers.authorization ?? null, body });
  tokenHits: Hit[] = [];
  uemHits: Hit[] = [];

  async start(): Promise<void> {
    this.server = createServer({ key: pki.keyPem, cert: pki.certPem }, (req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = Buffer.concat(parts).toString('utf8');
        const hit: Hit = { url: req.url ?? '', method: req.method ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body };
        if ((req.url ?? '').startsWith('/token')) {
          this.tokenHits.push(hit);
          this.token(req, res, body);
        } else {
          this.uemHits.push(hit);
          this.uem(req, res, body);
        }
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  reset(): void {
    this.tokenHits = [];
    this.uemHits = [];
    this.token = (_q, s) => json(s, 200, { access_token: 'tok-1', token_type: 'Bearer', expires_in: 3600 });
    this.uem = (q, s, body) => json(s, 200, { url: q.url, method: q.method, authorization: q.headers.authorization ?? null, body });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  target(auth: Record<string, unknown>, extra: Record<string, unknown> = {}, opts: { clock?: Clock; onToken?: (o: 'ok' | OAuthFailure) => void } = {}): Target {
    const def = LocalTargetSchema.parse({ id: 't', baseUrl: `https://127.0.0.1:${this.port}/api`, auth, tls: { ca: pki.caCertPem }, timeoutMs: 20_000, ...extra });
    return Target.resolve(def, {
      where: 'targets[0]',
      origin: 'local',
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.onToken ? { oauthHooks: { onTokenRequest: opts.onToken } } : {}),
    });
  }

  oauth(over: Record<string, unknown> = {}): Record<string, unknown> {
    return { type: 'oauth2', tokenUrl: `https://127.0.0.1:${this.port}/token`, clientId: 'client-1', clientSecret: 'secret-1', ...over };
  }
}

function json(s: ServerResponse, status: number, v: unknown): void {
  const b = Buffer.from(JSON.stringify(v));
  s.writeHead(status, { 'content-type': 'application/json', 'content-length': b.length });
  s.end(b);
}

function req(over: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { method: 'GET', path: '/x', headers: [], body: null, signal: new Cancel(), timeoutMs: 20_000, ...over };
}

async function text(r: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

async function outcome(p: Promise<{ statusCode: number; body: Readable }>): Promise<{ status: number; body: string } | UpstreamError> {
  try {
    const r = await p;
    return { status: r.statusCode, body: await text(r.body) };
  } catch (e) {
    if (e instanceof UpstreamError) return e;
    throw e;
  }
}

/** RFC 6749 §2.3.1: client_secret_basic = Basic(form-urlencode(id) ":" form-urlencode(secret)). */
function decodeClientBasic(h: string | undefined): { id: string; secret: string } | undefined {
  const m = /^Basic (.+)$/.exec(h ?? '');
  if (!m) return undefined;
  const plain = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = plain.indexOf(':');
  const formDecode = (s: string): string => decodeURIComponent(s.replace(/\+/g, ' '));
  return { id: formDecode(plain.slice(0, i)), secret: formDecode(plain.slice(i + 1)) };
}

describe('targets, credentials and the allow list (found in review)', function () {
  this.timeout(60_000);
  const lab = new Lab();
  const open: Target[] = [];
  const mk = (...a: Parameters<Lab['target']>): Target => {
    const t = lab.target(...a);
    open.push(t);
    return t;
  };
  before(async () => lab.start());
  after(async () => lab.close());
  beforeEach(() => lab.reset());
  afterEach(() => {
    for (const t of open.splice(0)) t.close();
  });

  // ---------------------------------------------------------------- OAuth2 client credentials

  describe('OAuth2 client credentials (RFC 6749 §4.4) against a real token endpoint', () => {
    it('control: 20 concurrent requests share one token request, and reuse it afterwards', async () => {
      lab.token = (_q, s) => setTimeout(() => json(s, 200, { access_token: 'tok-c', token_type: 'Bearer', expires_in: 3600 }), 200);
      const t = mk(lab.oauth());
      const rs = await Promise.all(Array.from({ length: 20 }, () => outcome(t.send(req()))));
      for (const r of rs) expect(r).to.not.be.instanceOf(UpstreamError);
      await outcome(t.send(req()));
      expect(lab.tokenHits).to.have.length(1);
      expect(lab.uemHits.every((h) => h.headers.authorization === 'Bearer tok-c')).to.equal(true);
      const form = new URLSearchParams(lab.tokenHits[0]!.body);
      expect(form.get('grant_type')).to.equal('client_credentials');
    });

    it('control: a token revoked early (UEM 401) is refreshed once and a buffered body replayed; a streamed one is not', async () => {
      let n = 0;
      lab.token = (_q, s) => json(s, 200, { access_token: `tok-${++n}`, token_type: 'Bearer', expires_in: 3600 });
      lab.uem = (q, s, body) => (q.headers.authorization === 'Bearer tok-1' ? json(s, 401, { error: 'revoked' }) : json(s, 200, { body }));
      const t = mk(lab.oauth());
      await outcome(t.send(req())); // caches tok-1 (answered 401, retried with tok-2)
      expect(lab.tokenHits).to.have.length(2);
      n = 0;
      lab.tokenHits = [];
      lab.uemHits = [];
      // Force tok-1 back into the cache: a fresh client.
      const t2 = mk(lab.oauth());
      const r = await outcome(t2.send(req({ method: 'POST', body: Buffer.from('{"a":1}'), headers: [['content-type', 'application/json']] })));
      expect(r).to.deep.include({ status: 200 });
      expect(lab.uemHits.map((h) => h.body)).to.deep.equal(['{"a":1}', '{"a":1}']);
      n = 0;
      const t3 = mk(lab.oauth());
      lab.uemHits = [];
      const s = await outcome(t3.send(req({ method: 'POST', body: Readable.from([Buffer.from('streamed')]) })));
      expect(s).to.deep.include({ status: 401 });
      expect(lab.uemHits).to.have.length(1);
    });

    it('an endpoint that answers 401 to any token does not make every call fetch a new one; insufficient_scope fetches none', async () => {
      let n = 0;
      lab.token = (_q, s) => json(s, 200, { access_token: `tok-${++n}`, token_type: 'Bearer', expires_in: 3600 });
      // A role the API account lacks: this UEM answers 401 to any token on /admin.
      lab.uem = (q, s) => (q.url?.includes('/admin') ? json(s, 401, { error: 'not authorized' }) : json(s, 200, { ok: true }));
      const t = mk(lab.oauth());
      for (let i = 0; i < 10; i++) expect(await outcome(t.send(req({ path: '/admin/x' })))).to.deep.include({ status: 401 });
      // Before: a new token per call (11 token requests for 10 calls, 20 calls at the UEM).
      expect(lab.tokenHits, 'token requests').to.have.length(2);
      expect(lab.uemHits, 'calls at the UEM (one retry, once)').to.have.length(11);
      expect(await outcome(t.send(req({ path: '/ok' })))).to.deep.include({ status: 200 });
      expect(lab.tokenHits).to.have.length(2);

      // RFC 6750 §3.1: insufficient_scope says the token is fine; no new token, no retry.
      n = 100;
      lab.tokenHits = [];
      lab.uemHits = [];
      lab.uem = (_q, s) => {
        s.setHeader('www-authenticate', 'Bearer realm="uem", error="insufficient_scope", scope="admin"');
        json(s, 401, { error: 'insufficient_scope' });
      };
      const t2 = mk(lab.oauth());
      expect(await outcome(t2.send(req()))).to.deep.include({ status: 401 });
      expect(lab.tokenHits).to.have.length(1);
      expect(lab.uemHits).to.have.length(1);
    });

    it('control: client_secret_basic form-urlencodes id and secret before Base64 (RFC 6749 §2.3.1)', async () => {
      const id = 'my client:ü+1%/é!*';
      const secret = 'p@ss:w0rd +&=%20ü~\'()';
      let got: { id: string; secret: string } | undefined;
      let bodyForm: URLSearchParams | undefined;
      lab.token = (q, s, body) => {
        got = decodeClientBasic(q.headers.authorization);
        bodyForm = new URLSearchParams(body);
        json(s, 200, { access_token: 'tok-b', token_type: 'Bearer', expires_in: 60 });
      };
      const t = mk(lab.oauth({ clientAuth: 'basic', clientId: id, clientSecret: secret, scope: 'a b', audience: 'https://uem/api' }));
      await outcome(t.send(req()));
      expect(got).to.deep.equal({ id, secret });
      expect(bodyForm?.get('client_secret')).to.equal(null);
      expect(bodyForm?.get('scope')).to.equal('a b');
      expect(bodyForm?.get('audience')).to.equal('https://uem/api');
    });

    it('a token whose token_type the client does not understand is not used as a Bearer token (RFC 6749 §7.1)', async () => {
      // "The client MUST NOT use an access token if it does not understand the token type."
      lab.token = (_q, s) => json(s, 200, { access_token: 'mac-token-1', token_type: 'mac', mac_key: 'k', mac_algorithm: 'hmac-sha-256', expires_in: 3600 });
      const t = mk(lab.oauth());
      const r = await outcome(t.send(req()));
      const sentAsBearer = lab.uemHits.filter((h) => h.headers.authorization === 'Bearer mac-token-1');
      expect(sentAsBearer, 'a MAC token was sent to the UEM as "Bearer"').to.have.length(0);
      expect(r).to.be.instanceOf(UpstreamError);
      expect((r as UpstreamError).code).to.equal('upstream_auth');
    });

    it('a token endpoint answering 503 (HTML) is not reported as "refused the client credentials" (outcome rejected)', async () => {
      lab.token = (_q, s) => {
        s.writeHead(503, { 'content-type': 'text/html' });
        s.end('<html><body>Service Unavailable</body></html>');
      };
      const outcomes: Array<'ok' | OAuthFailure> = [];
      const t = mk(lab.oauth(), {}, { onToken: (o) => outcomes.push(o) });
      const r = await outcome(t.send(req()));
      expect(r).to.be.instanceOf(UpstreamError);
      const msg = (r as UpstreamError).message;
      // status.md: outcome categories an admin acts on differently. A 503 says nothing about the
      // client id or secret; telling the admin they were refused sends them to rotate a good secret.
      expect(outcomes, msg).to.not.include('rejected');
      expect(msg).to.not.match(/refused the client credentials/);
    });

    it('a backwards step of the wall clock after one token failure does not block every token request for the size of the step', async () => {
      let now = Date.now();
      const clock: Clock = { ...systemClock, now: () => now };
      let fail = true;
      lab.token = (_q, s) => (fail ? json(s, 500, { error: 'temporarily_unavailable' }) : json(s, 200, { access_token: 'tok-after', token_type: 'Bearer', expires_in: 3600 }));
      const t = mk(lab.oauth(), {}, { clock });
      const first = await outcome(t.send(req()));
      expect(first).to.be.instanceOf(UpstreamError);
      fail = false;
      // NTP steps the clock back 10 minutes (VM resume, corrected drift); 5 real seconds pass.
      now -= 10 * 60_000;
      await new Promise((r) => setTimeout(r, 1500));
      now += 5000;
      const second = await outcome(t.send(req()));
      expect(second, second instanceof UpstreamError ? second.message : '').to.deep.include({ status: 200 });
      expect(lab.tokenHits).to.have.length(2);
    });

    it('a slow token endpoint does not hold a request past its deadline (target timeoutMs / the cloud\'s time left)', async () => {
      // docs/config.md timeoutMs: "the time left of the cloud's relay deadline, minus 1 s, caps it".
      lab.token = (_q, s) => setTimeout(() => json(s, 200, { access_token: 'tok-slow', token_type: 'Bearer', expires_in: 3600 }), 6000);
      const t = mk(lab.oauth(), { timeoutMs: 1500 });
      const started = Date.now();
      const r = await outcome(t.send(req({ timeoutMs: 1500 })));
      const took = Date.now() - started;
      expect(took, `answered ${r instanceof UpstreamError ? r.code : (r as { status: number }).status} after ${took} ms`).to.be.below(4000);
    });

    it('Target.send(): a request whose signal is already aborted is not sent to the UEM (it is with send(), not with exchange())', async () => {
      // send() is the cloud's direct integration route (src/uem/target-fetch.ts) and the health check.
      const t = mk({ type: 'none' });
      const cancel = new Cancel();
      cancel.abort();
      const r = await outcome(t.send(req({ method: 'POST', path: '/devices/1/wipe', signal: cancel, body: Buffer.from('{}') })));
      expect(lab.uemHits.map((h) => `${h.method} ${h.url}`), `outcome ${r instanceof UpstreamError ? r.code : JSON.stringify(r)}`).to.deep.equal([]);
      expect(r).to.be.instanceOf(UpstreamError);
      expect((r as UpstreamError).code).to.equal('cancelled');
    });

    it('OAuth2: a POST cancelled while the token is being fetched is not delivered to the UEM once the token arrives (send)', async () => {
      lab.token = (_q, s) => setTimeout(() => json(s, 200, { access_token: 'tok-slow2', token_type: 'Bearer', expires_in: 3600 }), 3000);
      const t = mk(lab.oauth());
      const cancel = new Cancel();
      setTimeout(() => cancel.abort(), 300);
      const r = await outcome(t.send(req({ method: 'POST', path: '/devices/1/wipe', signal: cancel, body: Buffer.from('{}') })));
      expect(lab.uemHits.map((h) => `${h.method} ${h.url}`), `cancelled at 300 ms, outcome ${r instanceof UpstreamError ? r.code : JSON.stringify(r)}`).to.deep.equal([]);
    });

    it('OAuth2 (relay path, exchange): a request cancelled while the token is being fetched ends at once, not when the token arrives', async () => {
      lab.token = (_q, s) => setTimeout(() => json(s, 200, { access_token: 'tok-slow3', token_type: 'Bearer', expires_in: 3600 }), 6000);
      const t = mk(lab.oauth());
      const cancel = new Cancel();
      const started = Date.now();
      setTimeout(() => cancel.abort(), 300);
      let code = '';
      try {
        await t.exchange(req({ signal: cancel }));
      } catch (e) {
        code = (e as UpstreamError).code;
      }
      const took = Date.now() - started;
      expect(code).to.equal('cancelled');
      expect(took, `ended ${took} ms after the start; cancelled at 300 ms`).to.be.below(3000);
      expect(lab.uemHits).to.have.length(0);
    });

    it('control: expires_in as a string and a short lifetime: refreshed before expiry', async () => {
      let n = 0;
      lab.token = (_q, s) => json(s, 200, { access_token: `tok-s${++n}`, token_type: 'bearer', expires_in: '1' });
      const t = mk(lab.oauth());
      await outcome(t.send(req()));
      await new Promise((r) => setTimeout(r, 1100));
      await outcome(t.send(req()));
      expect(lab.tokenHits).to.have.length(2);
      expect(lab.uemHits.map((h) => h.headers.authorization)).to.deep.equal(['Bearer tok-s1', 'Bearer tok-s2']);
    });
  });

  // ---------------------------------------------------------------- basic / API key

  describe('basic and API-key credentials', () => {
    it('a basic-auth username containing ":" is refused by the config (RFC 7617 §2: such a user-id is invalid)', () => {
      // Sent as-is, "svc:ops" + "pw" arrives as user "svc", password "ops:pw".
      const r = LocalTargetSchema.safeParse({ id: 'a', baseUrl: 'https://uem.example', auth: { type: 'basic', username: 'svc:ops', password: 'pw' } });
      expect(r.success, 'config accepted a user-id with a colon').to.equal(false);
    });

    it('a secret file whose value cannot be sent as a header (a second trailing newline) is a config error naming the key, not a 502 on every request', async () => {
      // docs/config.md: one trailing newline is dropped; "Errors name the file, the key and the problem".
      const dir = mkdtempSync(join(tmpdir(), 'uemlink-review-'));
      writeFileSync(join(dir, 'tenant-code'), 'TENANTCODE\n\n'); // echo >> plus an editor's newline
      writeFileSync(join(dir, 'pw'), 'pw\n');
      const def = LocalTargetSchema.parse({
        id: 'a',
        baseUrl: `https://127.0.0.1:${lab.port}/api`,
        auth: { type: 'basic', username: 'svc', passwordFile: 'pw', apiKeyFile: 'tenant-code' },
        tls: { ca: pki.caCertPem },
      });
      let t: Target;
      try {
        t = Target.resolve(def, { configFile: join(dir, 'connector.json'), where: 'targets[0]', origin: 'local' });
      } catch (e) {
        expect((e as Error).message).to.match(/targets\[0\]\.auth\.apiKeyFile/);
        return;
      }
      open.push(t);
      const r = await outcome(t.send(req()));
      expect.fail(`accepted at config time; every request then fails: ${r instanceof UpstreamError ? `${r.code}: ${r.message}` : JSON.stringify(r)}`);
    });

    it('control: non-ASCII basic credentials are sent as UTF-8; client copies of injected headers are dropped case-insensitively', async () => {
      const t = mk({ type: 'basic', username: 'jürgen', password: 'pä:ss', apiKey: 'TENANT', apiKeyHeader: 'AW-Tenant-Code' });
      await outcome(t.send(req({ headers: [] })));
      const h = lab.uemHits[0]!;
      expect(Buffer.from(String(h.headers.authorization).slice(6), 'base64').toString('utf8')).to.equal('jürgen:pä:ss');
      expect(h.headers['aw-tenant-code']).to.equal('TENANT');
    });
  });

  // ---------------------------------------------------------------- relay: headers and allow list

  describe('relay: credential headers and the allow list', () => {
    function relay(t: Target): { open(head: { method: string; path: string; headers: Array<[string, string]> }): Promise<{ status: number; body: string }> } {
      const pair = sessionPair();
      const handler = createRelayHandler({
        target: (id) => (id === 't' ? t : undefined),
        tenant: () => 'acme',
        connectorId: () => 'c1',
        audit: { record: () => {}, close: async () => {} },
        logger: silentLogger(),
        clock: systemClock,
      });
      pair.connector.on('stream', handler);
      return {
        async open(head) {
          const s: MuxStream = pair.cloud.openStream({ ...head, target: 't' });
          s.on('error', () => {});
          s.end();
          const rh = await new Promise<ResponseHead>((resolve, reject) => {
            s.once('response', resolve);
            s.once('error', reject);
          });
          const parts: Buffer[] = [];
          await new Promise<void>((resolve) => {
            s.on('data', (c: Buffer) => parts.push(c));
            s.once('end', resolve);
            s.once('close', resolve);
          });
          return { status: rh.status, body: Buffer.concat(parts).toString('utf8') };
        },
      };
    }

    it('control: Authorization, Cookie, Proxy-Authorization and the API-key header sent by the cloud never reach the UEM', async () => {
      const t = mk({ type: 'apiKey', header: 'X-Api-Key', value: 'the-key' });
      const r = relay(t);
      const res = await r.open({ method: 'GET', path: '/x', headers: [['Authorization', 'Basic Zm9vOmJhcg=='], ['Cookie', 'a=1'], ['Proxy-Authorization', 'Basic eA=='], ['x-API-key', 'forged']] });
      expect(res.status).to.equal(200);
      const h = lab.uemHits[0]!;
      expect(h.headers.authorization).to.equal(undefined);
      expect(h.headers.cookie).to.equal(undefined);
      expect(h.headers['proxy-authorization']).to.equal(undefined);
      expect(h.rawHeaders.filter((x) => x.toLowerCase() === 'x-api-key')).to.have.length(1);
      expect(h.headers['x-api-key']).to.equal('the-key');
    });

    it('control: the allow list (whole segments, methods, dot segments in any encoding) holds', async () => {
      const t = mk({ type: 'none' }, { allow: [{ methods: ['GET'], pathPrefix: '/mdm' }] });
      const r = relay(t);
      expect((await r.open({ method: 'GET', path: '/mdm/devices?x=1', headers: [] })).status).to.equal(200);
      for (const p of ['/mdmx', '/mdm/../system', '/mdm/%2e%2e/system', '/mdm/%252e%252e/system', '/mdm/..;/system', '/mdm%2f..%2fsystem', '/system']) {
        const res = await r.open({ method: 'GET', path: p, headers: [] });
        expect(res.status, p).to.be.oneOf([400, 403]);
      }
      expect((await r.open({ method: 'DELETE', path: '/mdm/devices/1', headers: [] })).status).to.equal(403);
      expect(lab.uemHits.map((h) => h.url)).to.deep.equal(['/api/mdm/devices?x=1']);
    });

    it('a path-override header (X-Original-URL / X-Rewrite-URL) cannot carry a request outside the allow list to the UEM', async () => {
      // Same class as the method-override headers the relay refuses: IIS URL Rewrite / ASP.NET
      // (under Workspace ONE and Ivanti) and frameworks behind it route by X-Original-URL.
      const t = mk({ type: 'none' }, { allow: [{ methods: ['GET'], pathPrefix: '/mdm' }] });
      const r = relay(t);
      await r.open({ method: 'GET', path: '/mdm/devices', headers: [['X-Original-URL', '/api/system/admins'], ['X-Rewrite-URL', '/api/system/admins']] });
      const leaked = lab.uemHits.filter((h) => h.headers['x-original-url'] !== undefined || h.headers['x-rewrite-url'] !== undefined);
      expect(leaked.map((h) => [h.url, h.headers['x-original-url'], h.headers['x-rewrite-url']]), 'forwarded to the UEM').to.deep.equal([]);
    });

    it('an allow rule whose pathPrefix can never match (a query "?" or a glob "*") is a config error, not a silently dead rule', () => {
      const dead: string[] = [];
      for (const pathPrefix of ['/mdm/devices?status=enrolled', '/mdm/*']) {
        const r = LocalTargetSchema.safeParse({ id: 'a', baseUrl: 'https://uem.example', auth: { type: 'none' }, allow: [{ methods: ['GET'], pathPrefix }] });
        if (r.success) dead.push(pathPrefix);
      }
      expect(dead, 'accepted prefixes that match nothing').to.deep.equal([]);
    });
  });

  // ---------------------------------------------------------------- TLS

  describe('TLS towards the UEM', () => {
    it('control: expired certificate and a certificate for another name are upstream_tls with the reason', async () => {
      const expired = createTestPki(['127.0.0.1'], { days: 1, notBefore: new Date(Date.now() - 3 * 86_400_000) });
      const other = createTestPki(['uem.other.example']);
      for (const [p, why] of [
        [expired, /expired/],
        [other, /another host name/],
      ] as const) {
        const srv = createServer({ key: p.keyPem, cert: p.certPem }, (_q, s) => s.end('{}'));
        await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
        const port = (srv.address() as AddressInfo).port;
        const t = Target.resolve(LocalTargetSchema.parse({ id: 'x', baseUrl: `https://127.0.0.1:${port}`, auth: { type: 'none' }, tls: { ca: p.caCertPem } }), { where: 'x', origin: 'local' });
        try {
          const e = await outcome(t.send(req()));
          expect(e).to.be.instanceOf(UpstreamError);
          expect((e as UpstreamError).code).to.equal('upstream_tls');
          expect((e as UpstreamError).message).to.match(why);
        } finally {
          t.close();
          srv.closeAllConnections();
          await new Promise<void>((r) => srv.close(() => r()));
        }
      }
    });
  });

  // ---------------------------------------------------------------- cloud-managed definitions

  describe('cloud-managed definitions', () => {
    it('control: no file references in a cloud definition', () => {
      const r = CloudTargetSchema.safeParse({ id: 'a', baseUrl: 'https://uem.example', auth: { type: 'basic', username: 'u', passwordFile: '/etc/shadow' } });
      expect(r.success).to.equal(false);
    });
  });

});
