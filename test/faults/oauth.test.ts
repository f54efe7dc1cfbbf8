/**
 * The OAuth2 token endpoint of a target misbehaves (a real OAuth2 server, oauth2-mock-server, behind
 * a FaultProxy), under load on that target and on a healthy one: down, slow (a trickle), garbage
 * instead of a token, an already-expired token. Tokens live 2 s, so each scenario needs new ones.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { OAuth2Server } from 'oauth2-mock-server';
import { createTestPki } from '../../src/common/pki.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { sleep, tempDir, until } from '../helpers/procs.js';
import { startLab, startLoadUem, type Lab, type LoadUem, type ReqSpec } from './lab.js';

type TokenMode = 'ok' | 'garbage' | 'expired';

describe('faults: the OAuth2 token endpoint (real OAuth2 server behind a fault proxy, under load)', function () {
  this.timeout(90_000);
  let lab: Lab;
  let uem: LoadUem;
  let oauth: OAuth2Server;
  let proxy: FaultProxy;
  let mode: TokenMode = 'ok';
  let tokenRequests = 0;
  let r_note = '';
  let pkiKey = '';
  let pkiCert = '';

  before(async function () {
    this.timeout(60_000);
    const pki = createTestPki(['localhost', '127.0.0.1']);
    pkiKey = pki.keyPem;
    pkiCert = pki.certPem;
    const dir = tempDir('uemlink-fault-oauth-');
    writeFileSync(join(dir, 'k.pem'), pki.keyPem);
    writeFileSync(join(dir, 'c.pem'), pki.certPem);
    oauth = new OAuth2Server(join(dir, 'k.pem'), join(dir, 'c.pem'));
    await oauth.issuer.keys.generate('RS256');
    oauth.service.on('beforeTokenSigning', (token: { payload: Record<string, unknown> }) => {
      token.payload.jti = randomUUID();
      // An already-expired token (the endpoint still claims it is valid for a while).
      if (mode === 'expired') token.payload.exp = Math.floor(Date.now() / 1000) - 60;
    });
    oauth.service.on('beforeResponse', (resp: { body: unknown; statusCode: number }) => {
      tokenRequests++;
      if (mode === 'garbage') {
        resp.statusCode = 200;
        resp.body = '<html><body>502 Bad Gateway</body></html>';
        return;
      }
      (resp.body as Record<string, unknown>).expires_in = 2;
    });
    await oauth.start(0, '127.0.0.1');
    proxy = await FaultProxy.start(oauth.address().port);
    uem = await startLoadUem(pki);
    // The UEM accepts only unexpired bearer tokens (the JWT's own exp).
    uem.authorize = (req: IncomingMessage) => {
      const m = /^Bearer ([^.]+)\.([^.]+)\./.exec(req.headers.authorization ?? '');
      if (!m) return false;
      try {
        const payload = JSON.parse(Buffer.from(m[2]!, 'base64url').toString()) as { exp?: number };
        return typeof payload.exp === 'number' && payload.exp * 1000 > Date.now();
      } catch {
        return false;
      }
    };
    lab = await startLab({
      uem,
      targets: () => [
        {
          id: 'oauth',
          baseUrl: `${uem.up.baseUrl}/secure`,
          auth: { type: 'oauth2', tokenUrl: `https://127.0.0.1:${proxy.address.split(':')[1]}/token`, clientId: 'uemlink', clientSecret: 'the-client-secret', scope: 'api' },
          tls: { ca: uem.up.caPem },
          timeoutMs: 3000,
        },
      ],
    });
  });
  after(async () => {
    await lab?.stop();
    await proxy?.close();
    await oauth?.stop();
    await uem?.up.close();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && lab) process.stderr.write(lab.logs());
  });

  function half(n: number): ReqSpec {
    if (n % 2 === 1) return { ...lab.mix(n >> 1), tag: 'healthy' };
    return n % 4 === 0 ? { method: 'POST', path: 'acme/oauth/load/orders', tag: 'oauth' } : { method: 'GET', path: 'acme/oauth/load/small', tag: 'oauth' };
  }

  async function oauthWorks(timeoutMs: number): Promise<void> {
    const probe = lab.load();
    await until(async () => (await probe.one({ method: 'GET', path: 'acme/oauth/load/small', tag: 'probe' })).kind === 'ok', timeoutMs, 'a request to the OAuth2 target to succeed');
  }

  it('works before any fault (token shared, refreshed)', async () => {
    await oauthWorks(10_000);
  });

  it('token endpoint down (connections reset): 502 upstream_auth, then recovery', async () => {
    const r = await lab.scenario('OAuth2 token endpoint down', {
      pick: half,
      allowed: ['upstream_auth'],
      fault: async () => {
        proxy.set({ kind: 'drop' });
        proxy.resetAll();
        await sleep(4000);
        proxy.set({ kind: 'pass' });
        await oauthWorks(10_000);
      },
    });
    expect(r.t.errors.upstream_auth ?? 0).to.be.greaterThan(0);
    expect(r.outcomes.filter((o) => o.spec.tag === 'healthy' && o.kind !== 'ok')).to.deep.equal([]);
  });

  it('token endpoint slow (a trickle that never finishes): 504 in time, and recovery once it answers again', async () => {
    const r = await lab.scenario('OAuth2 token endpoint slow', {
      pick: half,
      allowed: ['upstream_timeout', 'upstream_auth'],
      fault: async () => {
        // The endpoint answers at a crawl, 1 byte per 500 ms, on existing and new connections: a
        // token answer (TLS handshake included) would take many minutes, and bytes keep coming.
        proxy.set({ kind: 'trickle', bytes: 1, everyMs: 500, direction: 'down' });
        await sleep(5000);
        // The endpoint recovers for new connections; the crawling ones crawl on (a stuck TCP path).
        proxy.set({ kind: 'pass' }, { existing: false });
        const healed = Date.now();
        await oauthWorks(25_000);
        r_note = `recovered ${Date.now() - healed} ms after the endpoint healed`;
      },
    });
    r.t.notes.push(r_note);
    expect(r.t.errors.upstream_timeout ?? 0).to.be.greaterThan(0);
    expect(r.outcomes.filter((o) => o.spec.tag === 'healthy' && o.kind !== 'ok')).to.deep.equal([]);
    proxy.set({ kind: 'pass' });
  });

  it('token endpoint dribbles its answer (a byte a second, for ever): 504 in time, and recovery within the token deadline', async () => {
    // A token endpoint of our own that answers at once, then sends its body one byte per second,
    // each in its own chunk (and TLS record): never silent long enough for an idle timeout.
    const { createServer } = await import('node:https');
    const dribbler = createServer({ key: pkiKey, cert: pkiCert }, (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      const body = '{"access_token":"never-finished","token_type":"Bearer","expires_in":3600}';
      let i = 0;
      const t = setInterval(() => (i < body.length ? res.write(body[i++]!) : res.end()), 1000);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => dribbler.listen(0, '127.0.0.1', r));
    const oauthPort = proxy.targetPort;
    let note = '';
    try {
      const r = await lab.scenario('OAuth2 token endpoint dribbles', {
        pick: half,
        allowed: ['upstream_timeout', 'upstream_auth'],
        fault: async () => {
          proxy.retarget((dribbler.address() as { port: number }).port);
          proxy.resetAll();
          const t0 = Date.now();
          await sleep(5000);
          // The real endpoint is back for new connections; the dribbling one goes on.
          proxy.retarget(oauthPort);
          await oauthWorks(25_000);
          note = `recovered ${Date.now() - t0} ms after the dribbling started`;
        },
      });
      r.t.notes.push(note);
      expect(r.t.errors.upstream_timeout ?? 0).to.be.greaterThan(0);
      expect(r.outcomes.filter((o) => o.spec.tag === 'healthy' && o.kind !== 'ok')).to.deep.equal([]);
    } finally {
      dribbler.closeAllConnections();
      dribbler.close();
    }
  });

  it('token endpoint returns garbage: 502 upstream_auth, then recovery', async () => {
    const r = await lab.scenario('OAuth2 token endpoint garbage', {
      pick: half,
      allowed: ['upstream_auth'],
      fault: async () => {
        mode = 'garbage';
        await sleep(4000);
        mode = 'ok';
        await oauthWorks(10_000);
      },
    });
    expect(r.t.errors.upstream_auth ?? 0).to.be.greaterThan(0);
  });

  it('token endpoint returns an already-expired token: the UEM\'s 401 after one retry, no retry storm, then recovery', async () => {
    const before = tokenRequests;
    const r = await lab.scenario('OAuth2 expired token', {
      pick: half,
      // The UEM's own 401 passes through (after exactly one retry with a fresh token).
      allowed: ['uem_401'],
      fault: async () => {
        mode = 'expired';
        await sleep(4000);
        mode = 'ok';
        await oauthWorks(10_000);
      },
    });
    const oauthReqs = r.outcomes.filter((o) => o.spec.tag === 'oauth');
    expect(r.t.errors.uem_401 ?? 0).to.be.greaterThan(0);
    // At most one retry per request reached the UEM.
    for (const o of oauthReqs) expect(uem.seen.get(o.id) ?? 0, `attempts for ${o.id}`).to.be.at.most(2);
    const used = tokenRequests - before;
    r.t.notes.push(`${used} token requests for ${oauthReqs.length} requests to the target`);
    expect(used).to.be.at.most(oauthReqs.length * 2 + 5);
  });
});
