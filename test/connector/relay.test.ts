/**
 * The connector's relay handler driven over an in-memory tunnel against a real HTTPS upstream:
 * every request ends (answer, error answer or reset), on both sides, whatever the UEM and the cloud
 * do mid-body.
 */
import { expect } from 'chai';
import { systemClock } from '../../src/common/clock.js';
import { silentLogger } from '../../src/common/log.js';
import { createRelayHandler } from '../../src/connector/relay.js';
import type { AuditEntry } from '../../src/common/audit.js';
import { Target } from '../../src/connector/targets/target.js';
import type { MuxStream } from '../../src/protocol/stream.js';
import type { ResponseHead } from '../../src/protocol/messages.js';
import { sessionPair, waitFor, type Pair } from '../helpers/sessions.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface Harness {
  pair: Pair;
  audit: AuditEntry[];
  finished: Array<{ status: number; error?: string }>;
  target: Target;
}

function harness(up: Upstream, auth: Record<string, unknown> = { type: 'none' }): Harness {
  const target = Target.resolve(
    { id: 't1', baseUrl: `${up.baseUrl}/base`, auth, tls: { ca: up.caPem }, timeoutMs: 5000, maxConcurrent: 4, allow: [] } as never,
    { where: 't1', origin: 'local' },
  );
  const pair = sessionPair();
  const audit: AuditEntry[] = [];
  const finished: Array<{ status: number; error?: string }> = [];
  const handler = createRelayHandler({
    target: (id) => (id === 't1' ? target : undefined),
    tenant: () => 'acme',
    connectorId: () => 'c1',
    audit: { record: (e) => audit.push(e), close: async () => {} },
    logger: silentLogger(),
    clock: systemClock,
    onFinished: (e) => finished.push(e),
  });
  pair.connector.on('stream', handler);
  return { pair, audit, finished, target };
}

function responseOf(s: MuxStream): Promise<ResponseHead> {
  return new Promise((resolve, reject) => {
    s.once('response', resolve);
    s.once('error', reject);
  });
}

function bodyOf(s: MuxStream): Promise<{ body: Buffer; error?: Error }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.once('end', () => resolve({ body: Buffer.concat(parts) }));
    s.once('error', (e) => resolve({ body: Buffer.concat(parts), error: e }));
  });
}

/** Writes `size` bytes to `s` in 64 KiB chunks as its window allows, then ends it; how far it got. */
function upload(s: MuxStream, size: number): { written: number } {
  const progress = { written: 0 };
  const chunk = Buffer.alloc(64 * 1024, 1);
  const pump = (): void => {
    while (progress.written < size) {
      progress.written += chunk.length;
      const ok = s.write(chunk);
      if (progress.written >= size) return void s.end();
      if (!ok) return;
    }
  };
  s.on('drain', pump);
  pump();
  return progress;
}

const oauthAuth = (up: Upstream) => ({
  type: 'oauth2',
  tokenUrl: `${up.baseUrl}/token`,
  clientId: 'client-1',
  clientSecret: 'client-secret-value-123',
  clientAuth: 'body',
  apiKeyHeader: 'aw-tenant-code',
});

describe('connector relay: bodies and endings', function () {
  this.timeout(15000);
  let up: Upstream;
  let h: Harness | undefined;
  beforeEach(async () => {
    up = await startUpstream();
  });
  afterEach(async () => {
    h?.pair.cloud.close();
    h?.target.close();
    h = undefined;
    await up.close();
  });

  it('a UEM that answers before reading the request body: the rest is discarded and the stream ends on both sides', async () => {
    // The UEM refuses a large upload at once (413) without reading it.
    up.setHandler((_req, res) => {
      res.writeHead(413, { 'content-type': 'text/plain', 'content-length': '8' });
      res.end('too big\n');
    });
    h = harness(up);
    const size = 8 * 1024 * 1024; // well over the 1 MiB initial window
    const s = h.pair.cloud.openStream({ method: 'POST', path: '/upload', target: 't1', headers: [['content-length', String(size)]] });
    s.on('error', () => {});
    const progress = upload(s, size);
    const head = await responseOf(s);
    expect(head.status).to.equal(413);
    const b = bodyOf(s);
    const got = await b;
    expect(got.body.toString()).to.equal('too big\n');
    await waitFor(() => h!.finished.length === 1, 3000, 'finish');
    // The exchange is over: within a few seconds both sides must have let go of the stream.
    let err: unknown;
    try {
      await waitFor(() => h!.pair.connector.activeStreams === 0 && h!.pair.cloud.activeStreams === 0, 3000, 'streams retired');
    } catch (e) {
      err = e;
    }
    expect(err, `connector activeStreams=${h.pair.connector.activeStreams} cloud activeStreams=${h.pair.cloud.activeStreams}, cloud wrote ${progress.written}/${size}`).to.equal(undefined);
  });

  it('OAuth2 target: a cloud reset while the body is collected for replay still finishes the request (audit, metrics)', async () => {
    h = harness(up, oauthAuth(up));
    const s = h.pair.cloud.openStream({ method: 'POST', path: '/upload', target: 't1', headers: [['content-length', '1000']] });
    s.on('error', () => {});
    s.write(Buffer.alloc(500, 1));
    await sleep(100);
    s.reset(8, 'client went away');
    await waitFor(() => h!.finished.length > 0, 3000, 'finish').catch(() => undefined);
    expect(h.finished, 'no finish (audit/metrics) for the reset request').to.deep.equal([{ ...h.finished[0], status: 499, error: 'cancelled' }]);
    expect(h.audit).to.have.length(1);
    await waitFor(() => h!.pair.connector.activeStreams === 0, 3000, 'connector stream retired');
  });

  it('OAuth2 target: a request body shorter than its Content-Length is not delivered to the UEM as complete', async () => {
    up.setHandler(async (req, res, seen) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      seen.bodyBytes = Buffer.concat(chunks).length;
      if (req.url === '/token') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'tok-abcdef', expires_in: 3600 }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`got ${seen.bodyBytes} bytes, content-length ${req.headers['content-length']}`);
    });
    h = harness(up, oauthAuth(up));
    const s = h.pair.cloud.openStream({ method: 'POST', path: '/upload', target: 't1', headers: [['content-length', '1000']] });
    s.on('error', () => {});
    s.end(Buffer.alloc(500, 1)); // the cloud ENDs after 500 of the 1000 declared bytes
    let status: number | undefined;
    let text = '';
    try {
      status = (await responseOf(s)).status;
      text = (await bodyOf(s)).body.toString();
    } catch {
      /* a reset is a fine outcome */
    }
    const reached = up.seen.filter((x) => x.url === '/base/upload');
    expect(reached.map((x) => x.bodyBytes), `UEM answered ${status}: ${text}`).to.not.include(500);
  });

  it('a target without OAuth2: the same short body is refused', async () => {
    h = harness(up);
    const s = h.pair.cloud.openStream({ method: 'POST', path: '/upload', target: 't1', headers: [['content-length', '1000']] });
    s.on('error', () => {});
    s.end(Buffer.alloc(500, 1));
    const head = await responseOf(s).catch(() => undefined);
    expect(head?.status).to.not.equal(200);
  });

  for (const mode of ['content-length', 'chunked'] as const) {
    for (const size of [1000, 200_000]) {
      it(`upstream dies after part of a ${mode} body of ${size}: the cloud sees a reset`, async () => {
        up.setHandler((_req, res) => {
          res.writeHead(200, mode === 'content-length' ? { 'content-length': String(size * 2) } : {});
          res.write(Buffer.alloc(size, 2), () => setTimeout(() => res.socket?.destroy(), 50));
        });
        h = harness(up);
        const s = h.pair.cloud.openStream({ method: 'GET', path: '/x', target: 't1', headers: [] });
        s.on('error', () => {});
        s.end();
        await responseOf(s);
        const r = await bodyOf(s);
        expect(r.error, `got ${r.body.length} bytes and a clean END`).to.not.equal(undefined);
        await waitFor(() => h!.finished.length === 1);
        expect(h.finished[0]!.error).to.equal('upstream_reset');
      });
    }
  }

  it('cloud resets while undici is paused on a large download: upstream aborted, request finished 499', async () => {
    up.setHandler((_req, res) => {
      res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) });
      const chunk = Buffer.alloc(64 * 1024, 3);
      let n = 0;
      const more = (): void => {
        while (n < 1024) {
          n++;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    h = harness(up);
    const s = h.pair.cloud.openStream({ method: 'GET', path: '/big', target: 't1', headers: [] });
    s.on('error', () => {});
    s.end();
    await responseOf(s);
    s.pause(); // do not read: the window fills, the connector's write returns false, undici pauses
    await sleep(500);
    s.reset(8, 'client went away');
    await waitFor(() => h!.finished.length === 1, 5000, 'finish');
    expect(h.finished[0]).to.include({ status: 499 });
    await waitFor(() => up.seen[0]?.aborted === true, 5000, 'upstream aborted');
    await waitFor(() => h!.pair.connector.activeStreams === 0, 2000, 'connector stream retired');
  });

  it('UEM response headers too large for a frame: the request body is discarded and the stream ends', async () => {
    up.setHandler((_req, res) => {
      const hdrs: Array<[string, string]> = [];
      for (let i = 0; i < 200; i++) hdrs.push([`x-h${i}`, 'v'.repeat(200)]);
      res.writeHead(200, hdrs.flat() as never);
      res.end('ok');
    });
    h = harness(up);
    const size = 4 * 1024 * 1024;
    const s = h.pair.cloud.openStream({ method: 'PUT', path: '/u', target: 't1', headers: [['content-length', String(size)]] });
    s.on('error', () => {});
    const progress = upload(s, size);
    const head = await responseOf(s);
    await bodyOf(s);
    await waitFor(() => h!.finished.length === 1, 3000, 'finish');
    let err: unknown;
    try {
      await waitFor(() => h!.pair.connector.activeStreams === 0, 3000, 'streams retired');
    } catch (e) {
      err = e;
    }
    expect(err, `status ${head.status}, finished ${JSON.stringify(h.finished)}, cloud wrote ${progress.written}/${size}`).to.equal(undefined);
  });

  it('a method-override header naming another method is refused before the UEM (the allow list checks the real method)', async () => {
    h = harness(up);
    const s = h.pair.cloud.openStream({ method: 'GET', path: '/devices/1', target: 't1', headers: [['X-HTTP-Method-Override', 'DELETE']] });
    s.on('error', () => {});
    s.end();
    const head = await responseOf(s);
    const body = (await bodyOf(s)).body.toString();
    expect(head.status).to.equal(400);
    expect(JSON.parse(body)).to.include({ error: 'bad_header' });
    expect(up.seen.filter((x) => x.url.startsWith('/base/devices')), 'the UEM never saw it').to.have.length(0);
    // Naming the request's own method is harmless.
    const same = h.pair.cloud.openStream({ method: 'GET', path: '/devices/1', target: 't1', headers: [['x-http-method', 'get']] });
    same.on('error', () => {});
    same.end();
    expect((await responseOf(same)).status).to.not.equal(400);
  });
});
