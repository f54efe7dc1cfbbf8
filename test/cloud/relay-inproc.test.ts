/**
 * Relay behaviour that needs to reach inside the processes: relay.fetch for the cloud's own code,
 * cloud-managed targets and the connector's local policy over them, the connector's own checks when
 * the cloud misbehaves, and drain with requests in flight.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { getEventListeners, once } from 'node:events';
import { get as httpsGet, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CloudServer } from '../../src/cloud/server.js';
import { createTestPki } from '../../src/common/pki.js';
import { messagePool } from '../../src/protocol/writer.js';
import { StreamError } from '../../src/protocol/codes.js';
import { connectAs, pairInproc, startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { ADMIN_TOKEN, sleep, until } from '../helpers/procs.js';
import { collect } from '../helpers/sessions.js';
import { answerWithDigest, startUpstream, type Upstream } from '../helpers/upstream.js';

describe('relay (in-process cloud and connector)', function () {
  this.timeout(30_000);
  let cloud: CloudServer;
  let up: Upstream;
  const stops: Array<() => Promise<void>> = [];

  before(async () => {
    cloud = await startInprocCloud({ relayTimeoutMs: 3000 });
    up = await startUpstream();
  });
  after(async () => {
    for (const s of stops) await s();
    await cloud.shutdown();
    await up.close();
  });

  it('relay.fetch gives the cloud\'s code a standard Response, streaming, with relay errors as JSON responses', async () => {
    const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'ws1', baseUrl: `${up.baseUrl}/API`, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
    stops.push(() => daemon.shutdown());
    const r = await cloud.relay.fetch('acme', 'ws1', '/mdm/devices/search?page=1', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ q: 1 }) });
    expect(r).to.be.instanceOf(Response);
    expect(r.status).to.equal(200);
    expect(r.headers.get('x-uemlink-connector')).to.equal(daemon.identity!.connectorId);
    const body = (await r.json()) as { url: string; body: string; method: string };
    expect(body).to.include({ url: '/API/mdm/devices/search?page=1', body: '{"q":1}', method: 'POST' });

    const missing = await cloud.relay.fetch('acme', 'nope', '/x');
    expect(missing.status).to.equal(404);
    expect(await missing.json()).to.include({ error: 'unknown_target' });
    const bad = await cloud.relay.fetch('acme', 'ws1', '/a/../../b');
    expect(bad.status).to.equal(400);
    const none = await cloud.relay.fetch('globex', 'ws1', '/x');
    expect(none.status).to.equal(404);
  });

  it('over a TLS tunnel (wss), large bodies cross intact both ways (recycled message buffers are never reused early)', async () => {
    const pki = createTestPki(['127.0.0.1', 'localhost']);
    const tlsCloud = await startInprocCloud({ tls: { cert: pki.certPem, key: pki.keyPem } });
    const size = 24 * 1024 * 1024;
    // Varying bytes: a message buffer reused before the TLS socket took it would show as corruption.
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >> 12)) & 0xff;
    const bulk = await startUpstream({
      handler: async (req, res) => {
        if (req.url === '/download') {
          res.writeHead(200, { 'content-length': String(size) });
          for (let off = 0; off < size; off += 1 << 20) {
            if (!res.write(data.subarray(off, off + (1 << 20)))) await once(res, 'drain');
          }
          res.end();
          return;
        }
        await answerWithDigest(req, res);
      },
    });
    let conn: Awaited<ReturnType<typeof startInprocConnector>> | undefined;
    try {
      conn = await startInprocConnector(tlsCloud, {
        targets: [{ id: 'bulk', baseUrl: bulk.baseUrl, auth: { type: 'none' }, tls: { ca: bulk.caPem } }],
        extra: { cloud: { caFile: 'cloud-ca.pem' } },
        files: { 'cloud-ca.pem': pki.caCertPem },
      });
      expect(conn.daemon.identity!.cloudUrl).to.match(/^https:/); // so the tunnel is wss://
      const assembledBefore = messagePool.assembled;
      const down = await tlsCloud.relay.fetch('acme', 'bulk', '/download');
      expect(down.status).to.equal(200);
      const got = Buffer.from(await down.arrayBuffer());
      expect(got.length).to.equal(size);
      expect(got.equals(data)).to.equal(true);
      const up = await tlsCloud.relay.fetch('acme', 'bulk', '/upload', { method: 'POST', body: data });
      expect(await up.json()).to.deep.equal({ n: size, sha: createHash('sha256').update(data).digest('hex') });
      expect(messagePool.assembled).to.be.greaterThan(assembledBefore); // this transfer used the pool

      // The same download through the HTTPS relay API: it leaves the cloud in writes of about a
      // tunnel message each. The TLS socket's own 16 KiB mark made it one write (one TLS write and
      // system call) per DATA frame, ~1,500 here.
      const server = (tlsCloud as unknown as { server: Server }).server;
      let writes = 0;
      const countWrites = (sock: TLSSocket): void => {
        const w = sock as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
        const [one, many] = [w._write, w._writev];
        w._write = (...a) => (writes++, one.apply(sock, a));
        w._writev = (...a) => (writes++, many.apply(sock, a));
      };
      server.on('secureConnection', countWrites);
      const viaApi = await new Promise<Buffer>((resolve, reject) => {
        const req = httpsGet(`${tlsCloud.config.publicUrl}/api/v1/relay/acme/bulk/download`, { ca: pki.caCertPem, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, agent: false }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => resolve(Buffer.concat(parts)));
          res.on('error', reject);
        });
        req.on('error', reject);
      });
      server.off('secureConnection', countWrites);
      expect(viaApi.equals(data)).to.equal(true);
      expect(writes, 'writes to the client socket').to.be.within(1, size / (128 * 1024));
    } finally {
      await conn?.daemon.shutdown();
      await tlsCloud.shutdown();
      await bulk.close();
    }
  });

  it('a request the cloud opens in the same moment the connector connects is served, not refused', async () => {
    // The OPEN then travels right behind WELCOME, often in the same read: the connector must be
    // listening for streams before it reads its first frame.
    const answers: Array<Promise<Response>> = [];
    const onSession = (live: { tenant: string; targets: string[] }): void => {
      if (live.targets.includes('early')) answers.push(cloud.relay.fetch('acme', 'early', '/first'));
    };
    cloud.tunnels.on('session', onSession);
    try {
      for (let i = 0; i < 3; i++) {
        const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'early', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
        stops.push(() => daemon.shutdown());
        await until(() => answers.length === i + 1, 5000, 'the early request');
        const r = await answers[i]!;
        expect(r.status, await r.clone().text()).to.equal(200);
        await daemon.shutdown();
      }
    } finally {
      cloud.tunnels.off('session', onSession);
    }
  });

  it('the connector re-checks everything itself: a cloud sending a bad path, a foreign tenant or a disallowed method is refused', async () => {
    const { daemon, id } = await startInprocConnector(cloud, {
      targets: [{ id: 'guarded', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem }, allow: [{ methods: ['GET'], pathPrefix: '/ok' }] }],
    });
    stops.push(() => daemon.shutdown());
    const live = cloud.registry.get(id.connectorId)!;
    const ask = async (head: { method: string; path: string; tenant?: string }): Promise<{ status: number; error: string }> => {
      const s = live.session.openStream({ ...head, headers: [], target: 'guarded' });
      s.end();
      const h = await new Promise<{ status: number }>((r) => s.once('response', r));
      const b = JSON.parse((await collect(s)).toString()) as { error: string };
      return { status: h.status, error: b.error };
    };
    const before = up.seen.length;
    expect(await ask({ method: 'GET', path: '/ok/../../secret' })).to.deep.equal({ status: 400, error: 'bad_path' });
    expect(await ask({ method: 'GET', path: '/ok', tenant: 'globex' })).to.deep.equal({ status: 403, error: 'wrong_tenant' });
    expect(await ask({ method: 'DELETE', path: '/ok' })).to.deep.equal({ status: 403, error: 'not_allowed' });
    expect(up.seen.length).to.equal(before);
  });

  it('a replayed non-idempotent request (same idempotency key) is never sent to the UEM twice', async () => {
    const { daemon, id } = await startInprocConnector(cloud, { targets: [{ id: 'orders', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
    stops.push(() => daemon.shutdown());
    const live = cloud.registry.get(id.connectorId)!;
    const post = async (): Promise<number> => {
      const s = live.session.openStream({ method: 'POST', path: '/orders', headers: [['content-length', '2']], target: 'orders', idempotencyKey: 'k-123' });
      s.end('{}');
      const h = await new Promise<{ status: number }>((r) => s.once('response', r));
      s.resume();
      return h.status;
    };
    const before = up.seen.length;
    expect(await post()).to.equal(200);
    expect(await post()).to.equal(409);
    expect(up.seen.length).to.equal(before + 1);
  });

  it('a long-lived abort signal shared by many relay.fetch calls keeps no listener (nor stream) once each body is read', async () => {
    const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'shared', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
    stops.push(() => daemon.shutdown());
    const ac = new AbortController();
    for (let i = 0; i < 50; i++) {
      const r = await cloud.relay.fetch('acme', 'shared', `/n/${i}`, { signal: ac.signal });
      await r.text();
    }
    await sleep(50);
    expect(getEventListeners(ac.signal, 'abort')).to.have.length(0);
  });

  it('a chunked body on a GET or DELETE reaches the UEM (flagged in the head), and one on a bare GET is not invented', async () => {
    const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'bodies', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
    stops.push(() => daemon.shutdown());
    const chunked = (text: string): ReadableStream<Uint8Array> =>
      new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(text));
          c.close();
        },
      });
    for (const method of ['GET', 'DELETE']) {
      const r = await cloud.relay.fetch('acme', 'bodies', '/with-body', { method, body: chunked(`{"m":"${method}"}`), duplex: 'half' } as RequestInit);
      if (r.status !== 200) throw new Error(`${method}: ${r.status} ${await r.text()}`);
      expect(((await r.json()) as { body: string }).body).to.equal(`{"m":"${method}"}`);
    }
    const plain = await cloud.relay.fetch('acme', 'bodies', '/no-body');
    expect(((await plain.json()) as { body: string }).body).to.equal('');
  });

  it('a UEM that resets mid-body makes the stream abort: never a truncated answer that looks complete', async () => {
    const cut = await startUpstream({
      handler: (_req, res) => {
        res.writeHead(200, { 'content-length': '100000' });
        res.write(Buffer.alloc(30_000, 1), () => setTimeout(() => res.socket?.destroy(), 20));
      },
    });
    try {
      const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'cut', baseUrl: cut.baseUrl, auth: { type: 'none' }, tls: { ca: cut.caPem } }] });
      stops.push(() => daemon.shutdown());
      const res = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/relay/acme/cut/x`, { headers: { authorization: `Bearer ${cloud.config.adminToken}` } });
      expect(res.status).to.equal(200);
      const err = await res.arrayBuffer().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, 'reading the body must fail').to.be.instanceOf(Error);
    } finally {
      await cut.close();
    }
  });

  it('a RESET that arrives with the response head gives the client 502 at once, not after the idle timer; relay.fetch too, leaving no listener', async () => {
    // Review finding: RESPONSE and RESET handled in one pass (one tunnel message, or two in one
    // socket read) failed the stream before the HTTP relay listened to it: the client waited for
    // the idle timer (the relay timeout) and then saw a reset with no answer at all; relay.fetch
    // threw a TypeError and left its abort listener on the caller's signal.
    const own = await startInprocCloud({ relayTimeoutMs: 3000 });
    const id = await pairInproc(own);
    const c = await connectAs(own, id); // serves target t1
    try {
      c.session.on('stream', (st) => {
        st.on('error', () => {});
        st.resume();
        st.respond({ status: 200, headers: [['content-length', '100000']] });
        st.write(Buffer.from('partial'));
        st.reset(StreamError.INTERNAL_ERROR, 'the UEM ended the response early'); // same message
      });
      await until(() => own.registry.get(id.connectorId) !== undefined, 3000, 'connected');
      const t0 = Date.now();
      const res = await fetch(`http://127.0.0.1:${own.port}/api/v1/relay/acme/t1/x`, { headers: { authorization: `Bearer ${own.config.adminToken}` } });
      expect(res.status).to.equal(502);
      expect(await res.json()).to.include({ error: 'connector_error' });
      expect(Date.now() - t0, 'answered without waiting for the 3 s idle timer').to.be.below(2000);
      const ac = new AbortController();
      const r = await own.relay.fetch('acme', 't1', '/f', { signal: ac.signal });
      expect(r.status).to.equal(502);
      expect(getEventListeners(ac.signal, 'abort')).to.have.length(0);
    } finally {
      c.session.close();
      await own.shutdown();
    }
  });

  it('a client that leaves mid-body is audited as 499 cancelled, not as the UEM resetting', async () => {
    const big = await startUpstream({
      handler: async (_req, res) => {
        res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) });
        const chunk = Buffer.alloc(64 * 1024, 1);
        for (let i = 0; i < 1024 && !res.destroyed; i++) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      },
    });
    try {
      const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'big', baseUrl: big.baseUrl, auth: { type: 'none' }, tls: { ca: big.caPem } }] });
      stops.push(() => daemon.shutdown());
      const ac = new AbortController();
      const res = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/relay/acme/big/file`, { headers: { authorization: `Bearer ${cloud.config.adminToken}` }, signal: ac.signal });
      const reader = res.body!.getReader();
      await reader.read();
      ac.abort();
      const line = await until(
        () => {
          try {
            return readFileSync(daemon.config.audit.file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.target === 'big');
          } catch {
            return undefined;
          }
        },
        5000,
        'the audit line',
      );
      expect(line).to.include({ status: 499, error: 'cancelled' });
      await until(() => big.seen[0]?.aborted === true, 5000, 'the UEM saw its answer aborted');
    } finally {
      await big.close();
    }
  });

  it('an OAuth2 token endpoint that quotes the client secret in its refusal: the secret reaches neither the client nor the status', async () => {
    const SECRET = 'Sup3r-Secret-Client-Value-42';
    const idp = await startUpstream({
      handler: async (req, res) => {
        let body = '';
        for await (const c of req) body += String(c);
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'invalid_client', error_description: `client_secret '${new URLSearchParams(body).get('client_secret')}' is not valid` }));
      },
    });
    try {
      const { daemon } = await startInprocConnector(cloud, {
        // (The UEM itself is never reached: the token is refused first.)
        targets: [{ id: 'oauthx', baseUrl: idp.baseUrl, auth: { type: 'oauth2', tokenUrl: `${idp.baseUrl}/oauth/token`, clientId: 'c1', clientSecret: SECRET }, tls: { ca: idp.caPem } }],
      });
      stops.push(() => daemon.shutdown());
      const r = await cloud.relay.fetch('acme', 'oauthx', '/devices');
      expect(r.status).to.equal(502);
      const text = await r.text();
      expect(text).to.contain('upstream_auth').and.contain('invalid_client').and.contain('[REDACTED]');
      expect(text).to.not.contain(SECRET);
      expect(JSON.stringify(daemon.target('oauthx')!.stats.lastError)).to.not.contain(SECRET);
    } finally {
      await idp.close();
    }
  });

  it('a UEM that does not answer in time gives 504 upstream_timeout, and the audit log records every call without query values', async () => {
    const hang = await startUpstream({ handler: () => {} });
    try {
      const { daemon } = await startInprocConnector(cloud, {
        targets: [
          { id: 'hang', baseUrl: hang.baseUrl, auth: { type: 'none' }, tls: { ca: hang.caPem }, timeoutMs: 500 },
          { id: 'fine', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } },
        ],
      });
      stops.push(() => daemon.shutdown());
      const t0 = Date.now();
      const r = await cloud.relay.fetch('acme', 'hang', '/slow');
      expect(r.status).to.equal(504);
      expect(await r.json()).to.include({ error: 'upstream_timeout' });
      expect(Date.now() - t0).to.be.below(2500);
      expect((await cloud.relay.fetch('acme', 'fine', '/devices?apikey=SECRET-IN-QUERY&page=2')).status).to.equal(200);
      await until(() => {
        try {
          return readFileSync(daemon.config.audit.file, 'utf8').split('\n').filter(Boolean).length >= 2;
        } catch {
          return false;
        }
      }, 3000, 'audit lines');
      const lines = readFileSync(daemon.config.audit.file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).to.include({ tenant: 'acme', target: 'hang', method: 'GET', path: '/slow', status: 504, error: 'upstream_timeout', connectorId: daemon.identity!.connectorId });
      expect(lines[1]).to.include({ target: 'fine', status: 200, path: '/devices?apikey=…&page=…' });
      expect(lines[1]!.durationMs).to.be.a('number');
      expect(lines[1]!.time).to.be.a('string');
      expect(readFileSync(daemon.config.audit.file, 'utf8')).to.not.contain('SECRET-IN-QUERY');
    } finally {
      await hang.close();
    }
  });

  describe('cloud-managed targets', () => {
    it('an allowed host is accepted at once and relays; a definition is stored with its secrets sealed', async () => {
      const { daemon } = await startInprocConnector(cloud, { group: 'site-a', extra: { cloudManagedTargets: { allowedHosts: ['127.0.0.1'] } } });
      stops.push(() => daemon.shutdown());
      const res = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/tenants/acme/managed-targets/pushed`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${cloud.config.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ group: 'site-a', baseUrl: up.baseUrl, auth: { type: 'basic', username: 'u', password: 'cloud-managed-secret-1' }, tls: { ca: up.caPem } }),
      });
      expect(res.status).to.equal(200);
      await until(() => daemon.target('pushed') !== undefined, 5000, 'the connector to accept');
      await until(() => cloud.registry.get(daemon.identity!.connectorId)?.targets.includes('pushed'), 5000, 'the cloud to see it advertised');
      const r = await cloud.relay.fetch('acme', 'pushed', '/hello');
      expect(r.status).to.equal(200);
      const seen = (await r.json()) as { headers: Record<string, string> };
      expect(seen.headers.authorization).to.equal(`Basic ${Buffer.from('u:cloud-managed-secret-1').toString('base64')}`);
      // At rest, on both sides, the secret is sealed.
      expect(readFileSync(join(daemon.config.stateDir, 'managed-targets.json'), 'utf8')).to.not.contain('cloud-managed-secret-1');
      expect(readFileSync(join(cloud.config.dataDir, 'cloud-state.json'), 'utf8')).to.not.contain('cloud-managed-secret-1');
      // The cloud learns the connector's answer.
      await until(async () => {
        const list = await cloud.managedTargets.list('acme');
        return list.find((t) => t.id === 'pushed')?.connectors.some((c) => c.id === daemon.identity!.connectorId && c.state === 'accepted');
      }, 8000, 'the status to reach the cloud');
    });

    it('a definition too large for one tunnel frame is refused before anything is stored', async () => {
      const huge = `-----BEGIN CERTIFICATE-----\n${'A'.repeat(40_000)}\n-----END CERTIFICATE-----\n`;
      let err: unknown;
      await cloud.managedTargets.put('acme', 'toolarge', { baseUrl: 'https://uem.example.com', auth: { type: 'none' }, tls: { ca: huge } }).catch((e: unknown) => (err = e));
      expect(err).to.have.property('code', 'INVALID_INPUT');
      expect((err as Error).message).to.match(/^definition: \d+ bytes once encoded/);
      expect((await cloud.managedTargets.list('acme')).map((t) => t.id)).to.not.include('toolarge');
    });

    it('a host outside the local policy stays pending (visible) until a local admin approves it', async () => {
      const { daemon } = await startInprocConnector(cloud, { group: 'site-b' });
      stops.push(() => daemon.shutdown());
      await cloud.managedTargets.put('acme', 'needs-ok', { group: 'site-b', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } });
      await until(async () => (await daemon.managedTargets!.list()).some((t) => t.id === 'needs-ok'), 5000, 'the offer to arrive');
      const pending = (await daemon.managedTargets!.list()).find((t) => t.id === 'needs-ok')!;
      expect(pending.state).to.equal('pending');
      expect(pending.reason).to.contain('allowedHosts');
      expect(daemon.target('needs-ok')).to.equal(undefined);
      expect((await cloud.relay.fetch('acme', 'needs-ok', '/x')).status).to.be.oneOf([404, 503]);

      await daemon.managedTargets!.decide('needs-ok', 'accepted');
      await until(() => cloud.registry.get(daemon.identity!.connectorId)?.targets.includes('needs-ok'), 5000, 'the new target to be advertised');
      expect((await cloud.relay.fetch('acme', 'needs-ok', '/x')).status).to.equal(200);

      await daemon.managedTargets!.decide('needs-ok', 'refused', 'not ours');
      await until(() => !cloud.registry.get(daemon.identity!.connectorId)?.targets.includes('needs-ok'), 5000, 'the target to be withdrawn');
    });

    it('a local target of the same id always wins; a cloud offer for it is refused', async () => {
      const { daemon } = await startInprocConnector(cloud, {
        group: 'site-c',
        targets: [{ id: 'mine', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }],
        extra: { cloudManagedTargets: { allowedHosts: ['*.example.com', '127.0.0.1'] } },
      });
      stops.push(() => daemon.shutdown());
      await cloud.managedTargets.put('acme', 'mine', { group: 'site-c', baseUrl: 'https://uem.example.com', auth: { type: 'none' } });
      await until(async () => {
        const list = await cloud.managedTargets.list('acme');
        return list.find((t) => t.id === 'mine')?.connectors.find((c) => c.id === daemon.identity!.connectorId && c.state === 'refused');
      }, 8000, 'the refusal to reach the cloud');
      expect(daemon.target('mine')!.origin).to.equal('local');
    });
  });

  describe('drain', () => {
    it('SIGTERM-style drain on the connector lets in-flight requests finish, takes no new ones, then closes', async () => {
      const slow = await startUpstream({
        handler: async (_req, res) => {
          await sleep(600);
          res.end('finished');
        },
      });
      try {
        const a = await startInprocConnector(cloud, { targets: [{ id: 'slowt', baseUrl: slow.baseUrl, auth: { type: 'none' }, tls: { ca: slow.caPem } }] });
        const inflight = cloud.relay.fetch('acme', 'slowt', '/work');
        await until(() => slow.seen.length === 1, 3000, 'the request to be in flight');
        const drained = a.daemon.shutdown();
        const r = await inflight;
        expect(r.status).to.equal(200);
        expect(await r.text()).to.equal('finished');
        await drained;
        // Gone: new requests find no connector.
        expect((await cloud.relay.fetch('acme', 'slowt', '/again')).status).to.equal(503);
      } finally {
        await slow.close();
      }
    });

    it('drain on the cloud: GOAWAY first, in-flight requests finish, then the tunnel closes with going-away', async () => {
      const other = await startInprocCloud();
      const slow = await startUpstream({
        handler: async (_req, res) => {
          await sleep(600);
          res.end('done');
        },
      });
      try {
        const a = await startInprocConnector(other, { targets: [{ id: 'slowt', baseUrl: slow.baseUrl, auth: { type: 'none' }, tls: { ca: slow.caPem } }] });
        stops.push(() => a.daemon.shutdown());
        const inflight = other.relay.fetch('acme', 'slowt', '/work');
        await until(() => slow.seen.length === 1, 3000, 'in flight');
        const session = other.registry.get(a.id.connectorId)!.session;
        const closed = new Promise<number>((r) => session.once('close', (i) => r(i.code)));
        const shutdown = other.shutdown();
        const r = await inflight;
        expect(await r.text()).to.equal('done');
        expect(await closed).to.equal(1001);
        await shutdown;
      } finally {
        await slow.close();
      }
    });
  });
});
