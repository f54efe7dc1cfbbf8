/**
 * Target.send against a real HTTPS server with a CA made here: the HTTP client's contract that the
 * relay builds on (keep-alive, framing, errors with stable codes, cancellation, and no crash when an
 * answer is dropped unread).
 */
import { expect } from 'chai';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Cancel } from '../../src/common/cancel.js';
import { createTestPki } from '../../src/common/pki.js';
import { Target, UpstreamError, type UpstreamRequest } from '../../src/connector/targets/target.js';
import { createCredentials } from '../../src/connector/targets/auth.js';
import { rejectionOf } from '../helpers/rejection.js';

const pki = createTestPki(['localhost', '127.0.0.1']);

function targetFor(port: number, timeoutMs = 5000, maxConcurrent = 4): Target {
  return Target.resolve(
    { id: 't', baseUrl: `https://127.0.0.1:${port}/base`, auth: { type: 'none' }, tls: { ca: pki.caCertPem }, timeoutMs, maxConcurrent, allow: [] } as never,
    { where: 't', origin: 'local' },
  );
}

function req(over: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { method: 'GET', path: '/x', headers: [['accept', 'application/json']], body: null, signal: new Cancel(), timeoutMs: 5000, ...over };
}

async function text(r: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

const failure = (p: Promise<unknown>): Promise<UpstreamError> => rejectionOf(p, UpstreamError);

describe('credentials known without waiting (ready)', () => {
  it('fixed credentials give at once what headers() gives; OAuth2 gives nothing until a token is cached', async () => {
    const trust = { caPems: [], pins: [] };
    for (const auth of [
      { type: 'none' as const },
      { type: 'apiKey' as const, header: 'X-Api-Key', prefix: 'Key ', value: 'k1' },
      { type: 'basic' as const, username: 'u', password: 'p', apiKeyHeader: 'aw-tenant-code', apiKey: 'tc' },
    ]) {
      const c = createCredentials(auth as never, trust);
      expect(c.ready(), auth.type).to.deep.equal(await c.headers());
    }
    const o = createCredentials({ type: 'oauth2', tokenUrl: 'https://127.0.0.1:9/token', clientId: 'c', clientSecret: 's', clientAuth: 'body', apiKeyHeader: 'aw-tenant-code' } as never, trust);
    expect(o.ready()).to.equal(undefined);
    o.oauth?.close();
  });
});

describe('Target.send (HTTP client to the UEM)', () => {
  let server: Server;
  let port: number;
  let tlsConnections = 0;
  const seen: Array<{ method: string; url: string; headers: Record<string, string | string[] | undefined>; body: string }> = [];

  before(async () => {
    server = createHttpsServer({ key: pki.keyPem, cert: pki.certPem }, (rq, rs) => {
      const parts: Buffer[] = [];
      rq.on('data', (c: Buffer) => parts.push(c));
      rq.on('end', () => {
        seen.push({ method: rq.method!, url: rq.url!, headers: rq.headers, body: Buffer.concat(parts).toString('utf8') });
        if (rq.url === '/base/big') {
          rs.writeHead(200, { 'content-type': 'application/octet-stream' });
          rs.end(Buffer.alloc(4 * 1024 * 1024, 7));
          return;
        }
        if (rq.url === '/base/never') return; // no answer at all
        rs.writeHead(200, [['content-type', 'application/json'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2']]);
        rs.end(JSON.stringify({ url: rq.url }));
      });
    });
    server.on('secureConnection', () => tlsConnections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('keeps one TLS connection alive across sequential requests, under the base path, with raw headers in order', async () => {
    const t = targetFor(port);
    const before = tlsConnections;
    try {
      for (let i = 0; i < 20; i++) {
        const res = await t.send(req({ path: `/x?i=${i}` }));
        expect(res.statusCode).to.equal(200);
        expect(JSON.parse(await text(res.body))).to.deep.equal({ url: `/base/x?i=${i}` });
        if (i === 0) expect(res.rawHeaders.filter((_, k) => k % 2 === 0 && res.rawHeaders[k]!.toLowerCase() === 'set-cookie').length).to.equal(2);
      }
      // undici may open a second connection when a request is queued in the moment the first
      // connection is finishing the previous answer; without keep-alive this would be 20.
      expect(tlsConnections - before).to.be.within(1, 2);
    } finally {
      t.close();
    }
  });

  it('streams a body of unknown length chunked (any method), and drops Expect and a stray Content-Length on a buffered body', async () => {
    const t = targetFor(port);
    try {
      seen.length = 0;
      await text((await t.send(req({ method: 'POST', headers: [['expect', '100-continue']], body: Readable.from([Buffer.from('ab'), Buffer.from('cd')]) }))).body);
      await text((await t.send(req({ method: 'PUT', headers: [['content-length', '999']], body: Buffer.from('hello') }))).body);
      expect(seen[0]).to.deep.include({ method: 'POST', body: 'abcd' });
      expect(seen[0]!.headers['transfer-encoding']).to.equal('chunked');
      expect(seen[0]!.headers.expect).to.equal(undefined);
      expect(seen[1]).to.deep.include({ method: 'PUT', body: 'hello' });
      expect(seen[1]!.headers['content-length']).to.equal('5');
    } finally {
      t.close();
    }
  });

  it('survives an answer dropped unread (the client left): no crash, and the next request works', async () => {
    const t = targetFor(port);
    try {
      for (let i = 0; i < 5; i++) {
        const res = await t.send(req({ path: '/big' }));
        // undici emits an abort error on a body destroyed unread; the relay does that when the client
        // has left, and with no listener it once took the connector down (seen in the benchmark).
        expect(res.body.listenerCount('error'), 'error listeners on the body').to.be.greaterThan(0);
        res.body.destroy();
      }
      await new Promise((r) => setTimeout(r, 50));
      const res = await t.send(req());
      expect(res.statusCode).to.equal(200);
      await text(res.body);
    } finally {
      t.close();
    }
  });

  it('exchange() (the relay\'s path): a body that came with the head waits for the sink, whole and in order', async () => {
    const t = targetFor(port);
    try {
      const x = await t.exchange(req({ path: '/small?q=1' }));
      expect(x.statusCode).to.equal(200);
      expect(x.rawHeaders.filter((_, i) => i % 2 === 0)).to.include.members(['content-type', 'set-cookie']);
      await new Promise((r) => setTimeout(r, 50)); // the whole answer has arrived by now, unclaimed
      const got = await new Promise<string>((resolve, reject) => {
        const parts: Buffer[] = [];
        x.pipe({ data: (c) => (parts.push(c), true), end: () => resolve(Buffer.concat(parts).toString('utf8')), error: reject });
      });
      expect(JSON.parse(got)).to.deep.equal({ url: '/base/small?q=1' });
    } finally {
      t.close();
    }
  });

  it('exchange(): a sink that says "full" pauses the UEM\'s body until resumed; a cancel mid-body ends it with an error', async () => {
    const t = targetFor(port);
    try {
      const x = await t.exchange(req({ path: '/big' }));
      let got = 0;
      let ended = 0;
      let room = false;
      x.pipe({ data: (c) => ((got += c.length), room), end: () => ended++, error: (e) => expect.fail(String(e)) });
      await new Promise((r) => setTimeout(r, 200));
      // Paused after at most the early allowance plus the chunk that filled it: far from 4 MiB.
      expect(got, 'bytes delivered while paused').to.be.below(256 * 1024);
      const before = got;
      await new Promise((r) => setTimeout(r, 100));
      expect(got, 'nothing more while paused').to.equal(before);
      room = true;
      x.resume();
      for (let i = 0; i < 100 && ended === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(got).to.equal(4 * 1024 * 1024);
      expect(ended).to.equal(1);

      const cancel = new Cancel();
      const y = await t.exchange(req({ path: '/big', signal: cancel }));
      const failed = new Promise<Error>((resolve) => y.pipe({ data: () => false, end: () => expect.fail('ended'), error: resolve }));
      cancel.abort();
      expect((await failed).message).to.equal('cancelled');
      const again = await t.send(req());
      expect(again.statusCode).to.equal(200);
      await text(again.body);
    } finally {
      t.close();
    }
  });

  it('exchange(): resuming one body from inside another\'s data callback is safe (undici\'s parser is shared)', async () => {
    // Review finding: resume() went to undici at once, and undici asserts that no other
    // connection is mid-parse; a tunnel stream's 'drain' can fire inside another exchange's onData
    // (the session frames other streams synchronously). A failed with an AssertionError and B
    // stayed paused for good.
    const t = targetFor(port);
    try {
      const [a, b] = await Promise.all([t.exchange(req({ path: '/big' })), t.exchange(req({ path: '/big' }))]);
      const got = { a: 0, b: 0 };
      const ended: Record<string, string> = {};
      let bPaused = false;
      b.pipe({
        data: (c) => {
          got.b += c.length;
          if (got.b > 512 * 1024 && !bPaused) {
            bPaused = true;
            return false;
          }
          return true;
        },
        end: () => (ended.b = 'end'),
        error: (e) => (ended.b = `error ${e.message}`),
      });
      await new Promise((r) => setTimeout(r, 200));
      expect(bPaused, 'B paused by its sink').to.equal(true);
      let resumedInside = false;
      a.pipe({
        data: (c) => {
          got.a += c.length;
          if (got.a > 1024 * 1024 && !resumedInside) {
            resumedInside = true;
            b.resume();
          }
          return true;
        },
        end: () => (ended.a = 'end'),
        error: (e) => (ended.a = `error ${e.message}`),
      });
      for (let i = 0; i < 150 && !(ended.a && ended.b); i++) await new Promise((r) => setTimeout(r, 20));
      expect(resumedInside).to.equal(true);
      expect(ended).to.deep.equal({ a: 'end', b: 'end' });
      expect(got).to.deep.equal({ a: 4 * 1024 * 1024, b: 4 * 1024 * 1024 });
    } finally {
      t.close();
    }
  });

  it('cancel before the answer gives cancelled (499); no answer in time gives upstream_timeout (504)', async () => {
    const t = targetFor(port);
    try {
      const cancel = new Cancel();
      const p = t.send(req({ path: '/never', signal: cancel }));
      setTimeout(() => cancel.abort(), 100);
      expect(await failure(p)).to.include({ code: 'cancelled', status: 499 });
      const e = await failure(t.send(req({ path: '/never', timeoutMs: 300 })));
      expect(e).to.include({ code: 'upstream_timeout', status: 504 });
      expect(e.message).to.match(/no answer within 300 ms/);
      // The relay's path gives the same errors.
      const c2 = new Cancel();
      const p2 = t.exchange(req({ path: '/never', signal: c2 }));
      setTimeout(() => c2.abort(), 100);
      expect(await failure(p2)).to.include({ code: 'cancelled', status: 499 });
      const already = new Cancel();
      already.abort();
      expect(await failure(t.exchange(req({ signal: already })))).to.include({ code: 'cancelled', status: 499 });
      expect(await failure(t.exchange(req({ path: '/never', timeoutMs: 300 })))).to.include({ code: 'upstream_timeout', status: 504 });
    } finally {
      t.close();
    }
  });

  it('a request that waits behind the busy connections is upstream_busy (503, unsent), through send() and health checks too, after requests cancelled in that queue', async () => {
    const t = targetFor(port, 5000, 1);
    const hold = async (): Promise<Cancel> => {
      const c = new Cancel();
      const before = seen.filter((x) => x.url === '/base/never').length;
      void t.exchange(req({ path: '/never', signal: c })).catch(() => {});
      for (let i = 0; i < 200 && seen.filter((x) => x.url === '/base/never').length === before; i++) await new Promise((r) => setTimeout(r, 10));
      return c;
    };
    try {
      // Requests through both paths that ended every way first: each must leave the count that
      // decides whether the pool's stats are read once, no more.
      expect(await text((await t.send(req())).body)).to.contain('/base/x');
      expect(await failure(t.send(req({ path: '/never', timeoutMs: 200 })))).to.include({ code: 'upstream_timeout' });
      (await t.exchange(req())).discard();
      expect(await failure(t.exchange(req({ path: '/never', timeoutMs: 200 })))).to.include({ code: 'upstream_timeout' });
      const first = await hold(); // the one connection is taken
      // Cancelled while queued: over for their callers at once, but in undici's queue until the
      // connection frees up.
      for (let i = 0; i < 3; i++) {
        const c = new Cancel();
        const p = t.exchange(req({ signal: c }));
        setTimeout(() => c.abort(), 30);
        expect(await failure(p)).to.include({ code: 'cancelled', status: 499 });
      }
      const busy = await failure(t.exchange(req({ timeoutMs: 300 })));
      expect(busy).to.include({ code: 'upstream_busy', status: 503, unsent: true });
      expect(busy.message).to.match(/all 1 connections of this connector stayed busy for 300 ms/);
      // send() (health checks, diagnose, the cloud's direct route) keeps its deadline and cancel while it waits too: through
      // undici's request() it waited for the held connection, which is never answered here.
      expect(await failure(t.send(req({ timeoutMs: 300 })))).to.include({ code: 'upstream_busy', status: 503 });
      const c = new Cancel();
      const p = t.send(req({ signal: c }));
      setTimeout(() => c.abort(), 30);
      expect(await failure(p)).to.include({ code: 'cancelled', status: 499 });
      const h = await t.checkHealth(300);
      expect(h.reachable).to.equal(false);
      expect(h.error?.code).to.equal('upstream_busy');
      first.abort();
      const ok = await t.exchange(req());
      expect(ok.statusCode, 'the connection freed up (control)').to.equal(200);
      ok.discard();
      // Once the queue has drained, a new holder makes the next request wait again: had the count
      // gone below the requests really waiting, this one would read as "no connection" (504).
      const second = await hold();
      expect(await failure(t.exchange(req({ timeoutMs: 300 })))).to.include({ code: 'upstream_busy', status: 503 });
      second.abort();
    } finally {
      t.close();
    }
  });

  it('names a refused connection upstream_unreachable, and a CA it does not trust upstream_tls with the certificate', async () => {
    const closed = createHttpsServer({ key: pki.keyPem, cert: pki.certPem });
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const freePort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const t = targetFor(freePort);
    const other = createTestPki(['127.0.0.1'], { caName: 'Some other CA' });
    const stranger = createHttpsServer({ key: other.keyPem, cert: other.certPem }, (_q, s) => s.end('x'));
    await new Promise<void>((r) => stranger.listen(0, '127.0.0.1', r));
    const t2 = targetFor((stranger.address() as AddressInfo).port);
    try {
      const e = await failure(t.send(req()));
      expect(e).to.include({ code: 'upstream_unreachable', status: 502 });
      expect(e.message).to.match(/connection refused/);
      const tls = await failure(t2.send(req()));
      expect(tls).to.include({ code: 'upstream_tls', status: 502 });
      expect(tls.message).to.match(/not signed by a trusted CA/);
      expect(tls.peerCert?.issuer).to.match(/Some other CA/);
    } finally {
      t.close();
      t2.close();
      await new Promise<void>((r) => stranger.close(() => r()));
    }
  });

  it('reaches a UEM by address under its certificate name (tls.serverName), over IPv6 too, and shows the certificate in health', async () => {
    const named = createTestPki(['uem.internal'], { caName: 'Named CA' });
    const srv = createHttpsServer({ key: named.keyPem, cert: named.certPem }, (_q, s) => s.end('{}'));
    await new Promise<void>((r) => srv.listen(0, '::1', r));
    const p = (srv.address() as AddressInfo).port;
    const make = (serverName?: string): Target =>
      Target.resolve(
        { id: 'n', baseUrl: `https://[::1]:${p}`, auth: { type: 'none' }, tls: { ca: named.caCertPem, ...(serverName ? { serverName } : {}) }, timeoutMs: 5000, maxConcurrent: 2, allow: [] } as never,
        { where: 'n', origin: 'local' },
      );
    const good = make('uem.internal');
    const bad = make();
    try {
      const h = await good.checkHealth();
      expect(h).to.include({ reachable: true, status: 200 });
      expect(h.peerCert?.subject).to.match(/uem\.internal/);
      expect(h.peerCert?.issuer).to.match(/Named CA/);
      const e = await failure(bad.send(req()));
      expect(e).to.include({ code: 'upstream_tls' });
    } finally {
      good.close();
      bad.close();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  describe('a UEM that speaks broken HTTP (raw TLS server)', () => {
    let raw: TlsServer;
    let rawPort: number;
    before(async () => {
      raw = createTlsServer({ key: pki.keyPem, cert: pki.certPem }, (s: TLSSocket) => {
        s.once('data', (d: Buffer) => {
          const path = d.toString('latin1').split(' ')[1];
          if (path === '/base/huge-head') {
            const lines = Array.from({ length: 40 }, (_, i) => `x-filler-${i}: ${'h'.repeat(1000)}\r\n`).join('');
            s.end(`HTTP/1.1 200 OK\r\n${lines}Content-Length: 2\r\n\r\nok`);
          } else if (path === '/base/reset') s.destroy();
          else s.end('HTTP/1.1 2OO BANANA\r\nContent-Length: yes\r\n\r\nnot http');
        });
        s.on('error', () => {});
      });
      await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
      rawPort = (raw.address() as AddressInfo).port;
    });
    after(() => new Promise<void>((r) => raw.close(() => r())));

    for (const [path, code] of [
      ['/huge-head', 'upstream_headers_too_large'],
      ['/malformed', 'upstream_protocol'],
      ['/reset', 'upstream_unreachable'],
    ] as const) {
      it(`${path}: ${code}`, async () => {
        const t = targetFor(rawPort);
        try {
          for (const e of [await failure(t.send(req({ path }))), await failure(t.exchange(req({ path })))]) {
            expect(e).to.include({ code, status: 502 });
            expect(e.message).to.include(`127.0.0.1:${rawPort}`);
          }
        } finally {
          t.close();
        }
      });
    }
  });
});

describe('OAuth2 token endpoint at an IPv6 literal (found in review)', () => {
  it('gets a token from https://[::1]:port/token whose certificate names ::1', async () => {
    const pki = createTestPki(['::1']);
    const srv = createHttpsServer({ key: pki.keyPem, cert: pki.certPem }, (req, res) => {
      if (req.url === '/token') res.end(JSON.stringify({ access_token: 'tok6', expires_in: 60 }));
      else res.end(JSON.stringify({ auth: req.headers.authorization }));
    });
    await new Promise<void>((r) => srv.listen(0, '::1', r));
    const port = (srv.address() as AddressInfo).port;
    const t = Target.resolve(
      { id: 'v6', baseUrl: `https://[::1]:${port}`, auth: { type: 'oauth2', tokenUrl: `https://[::1]:${port}/token`, clientId: 'c', clientSecret: 's', clientAuth: 'body', apiKeyHeader: 'aw-tenant-code' }, tls: { ca: pki.caCertPem }, timeoutMs: 5000, maxConcurrent: 2, allow: [] } as never,
      { where: 'v6', origin: 'local' },
    );
    let result: string;
    try {
      const res = await t.send({ method: 'GET', path: '/x', headers: [], body: null, signal: new Cancel(), timeoutMs: 5000 });
      const chunks: Buffer[] = [];
      for await (const c of res.body) chunks.push(c as Buffer);
      result = Buffer.concat(chunks).toString();
    } catch (e) {
      result = `error: ${(e as Error).message}`;
    } finally {
      t.close();
      srv.close();
    }
    expect(result).to.contain('Bearer tok6');
  });
});
