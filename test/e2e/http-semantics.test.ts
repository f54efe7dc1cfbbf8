/**
 * End-to-end HTTP/1.1 semantics through the relay (real in-process cloud + connector daemon, real
 * HTTPS upstreams on loopback, raw client sockets so the bytes are visible): what a conformance
 * review checked and found, kept as regression tests.
 */
import { expect } from 'chai';
import { Raw } from '../helpers/raw-client.js';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import type { CloudServer } from '../../src/cloud/server.js';
import type { ConnectorDaemon } from '../../src/connector/daemon.js';
import { createTestPki } from '../../src/common/pki.js';
import { startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { ADMIN_TOKEN, sleep, until } from '../helpers/procs.js';
import { startUpstream, type Handler, type Upstream } from '../helpers/upstream.js';

const AUTH = `Authorization: Bearer ${ADMIN_TOKEN}\r\n`;


/** Count of complete HTTP responses (status lines) in raw text. */
function statusLines(t: string): string[] {
  return t.match(/HTTP\/1\.[01] \d{3}[^\r\n]*/g) ?? [];
}

/** Header lines (name: value) of the first response in `t`. */
function headLines(t: string): string[] {
  const end = t.indexOf('\r\n\r\n');
  return t.slice(0, end < 0 ? undefined : end).split('\r\n').slice(1);
}

/** A raw TLS upstream: `script` gets the socket and the request head text. */
interface RawUpstream {
  server: TlsServer;
  port: number;
  setScript(f: (s: TLSSocket, head: string, rest: Buffer) => void): void;
  close(): Promise<void>;
}

async function startRawUpstream(pki: ReturnType<typeof createTestPki>): Promise<RawUpstream> {
  let script: (s: TLSSocket, head: string, rest: Buffer) => void = (s) => s.end('HTTP/1.1 500 x\r\ncontent-length: 0\r\n\r\n');
  const socks = new Set<TLSSocket>();
  const server = createTlsServer({ key: pki.keyPem, cert: pki.certPem }, (s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      s.off('data', onData);
      script(s, buf.subarray(0, i).toString('latin1'), buf.subarray(i + 4));
    };
    s.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    setScript(f) {
      script = f;
    },
    close() {
      for (const s of socks) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe('HTTP/1.1 semantics through the relay (conformance review)', function () {
  this.timeout(60_000);
  let cloud: CloudServer;
  let daemon: ConnectorDaemon;
  let up: Upstream;
  let raw: RawUpstream;
  const pki = createTestPki(['localhost', '127.0.0.1']);

  before(async () => {
    cloud = await startInprocCloud({ relayTimeoutMs: 15_000, maxRequestBytes: 8 * 1024 * 1024 });
    up = await startUpstream({ pki });
    raw = await startRawUpstream(pki);
    ({ daemon } = await startInprocConnector(cloud, {
      targets: [
        { id: 't1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: pki.caCertPem } },
        { id: 'sec', baseUrl: up.baseUrl, auth: { type: 'basic', username: 'svc-uem', password: 'S3cret-Passw0rd', apiKey: 'tenant-code-XYZ' }, tls: { ca: pki.caCertPem } },
        { id: 'raw', baseUrl: `https://127.0.0.1:${raw.port}`, auth: { type: 'none' }, tls: { ca: pki.caCertPem } },
      ],
    }));
    await until(() => cloud.registry.list({ tenant: 'acme' }).some((s) => s.targets.includes('raw')), 10_000, 'targets advertised');
  });
  after(async () => {
    await daemon?.shutdown();
    await cloud?.shutdown();
    await up?.close();
    await raw?.close();
  });

  it('HEAD: no body, the GET Content-Length kept, connection reusable', async () => {
    up.setHandler((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1234' });
      res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(1234, 97));
    });
    const r = await Raw.open(cloud.port);
    r.send(`HEAD /api/v1/relay/acme/t1/x HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await r.waitFor((t) => t.includes('\r\n\r\n'), 10_000, 'head');
    await sleep(200);
    r.send(`GET /api/v1/relay/acme/t1/y HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => statusLines(t).length >= 2 && t.endsWith('a'.repeat(10)), 10_000, 'second');
    r.close();
    expect(statusLines(t)).to.have.length(2);
    expect(headLines(t).map((l) => l.toLowerCase())).to.include('content-length: 1234');
    const firstEnd = t.indexOf('\r\n\r\n') + 4;
    expect(t.slice(firstEnd, firstEnd + 8)).to.equal('HTTP/1.1');
  });

  it('204 and 304: no body, headers kept, connection reusable', async () => {
    up.setHandler((req, res) => {
      if (req.url === '/nc') {
        res.writeHead(204, { etag: '"v1"', 'x-a': 'b' });
        res.end();
      } else if (req.url === '/nm') {
        res.writeHead(304, { etag: '"v2"', 'cache-control': 'max-age=5' });
        res.end();
      } else {
        res.writeHead(200, { 'content-length': '2' });
        res.end('ok');
      }
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/nc HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await r.waitFor((t) => statusLines(t).length >= 1 && t.includes('\r\n\r\n'), 10_000, '204');
    await sleep(100);
    r.send(`GET /api/v1/relay/acme/t1/nm HTTP/1.1\r\nHost: x\r\nIf-None-Match: "v2"\r\n${AUTH}\r\n`);
    await r.waitFor((t) => statusLines(t).length >= 2, 10_000, '304');
    await sleep(100);
    r.send(`GET /api/v1/relay/acme/t1/ok HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => statusLines(t).length >= 3 && t.endsWith('ok'), 10_000, '200');
    r.close();
    expect(statusLines(t).map((l) => l.slice(9, 12))).to.deep.equal(['204', '304', '200']);
    expect(t.toLowerCase()).to.include('etag: "v1"').and.include('etag: "v2"').and.include('cache-control: max-age=5');
    expect(t.toLowerCase()).to.not.include('transfer-encoding');
  });

  it('Expect: 100-continue upload: 100 Continue, then the body reaches the UEM', async () => {
    up.setHandler(async (req, res) => {
      let n = 0;
      for await (const c of req) n += (c as Buffer).length;
      res.writeHead(200, { 'content-length': String(String(n).length) });
      res.end(String(n));
    });
    const r = await Raw.open(cloud.port);
    r.send(`PUT /api/v1/relay/acme/t1/up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n${AUTH}\r\n`);
    await r.waitFor((t) => t.includes('100 Continue'), 10_000, '100');
    r.send('hello');
    const t = await r.waitFor((t) => /HTTP\/1\.1 200[\s\S]*\r\n\r\n5$/.test(t), 10_000, 'final');
    r.close();
    expect(t).to.match(/\r\n\r\n5$/);
  });

  it('1xx (102, 103) from the UEM before the final answer: the final answer arrives intact', async () => {
    up.setHandler((_req, res) => {
      res.writeProcessing();
      res.writeEarlyHints({ link: '</a.css>; rel=preload' });
      res.writeHead(200, { 'content-length': '4', 'x-final': '1' });
      res.end('done');
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/early HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.endsWith('done'), 10_000, 'final');
    r.close();
    expect(t).to.match(/^HTTP\/1\.1 200/);
    expect(t.toLowerCase()).to.include('x-final: 1');
  });

  it('chunked request body with trailers reaches the UEM whole (chunked)', async () => {
    let seen: { te?: string | undefined; body?: string; cl?: string | undefined } = {};
    up.setHandler(async (req, res) => {
      const cs: Buffer[] = [];
      for await (const c of req) cs.push(c as Buffer);
      seen = { te: req.headers['transfer-encoding'], cl: req.headers['content-length'], body: Buffer.concat(cs).toString() };
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
    });
    const r = await Raw.open(cloud.port);
    r.send(`POST /api/v1/relay/acme/t1/chunky HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nContent-Type: text/plain\r\n${AUTH}\r\n`);
    r.send('5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n');
    await r.waitFor((t) => t.endsWith('ok'), 10_000, 'answer');
    r.close();
    expect(seen.body).to.equal('hello world');
  });

  it('close-delimited UEM response (no length, connection closes): the client gets the whole body and a proper end', async () => {
    raw.setScript((s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n');
      s.write('part1-');
      setTimeout(() => s.end('part2'), 100);
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/raw/cd HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.includes('0\r\n\r\n'), 10_000, 'end');
    r.close();
    expect(t.toLowerCase()).to.include('transfer-encoding: chunked');
    expect(t).to.include('part1-').and.include('part2');
  });

  it('chunked UEM response: re-chunked to the client, body intact', async () => {
    up.setHandler((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('aaa');
      setTimeout(() => res.end('bbb'), 50);
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/ch HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.includes('0\r\n\r\n'), 10_000, 'end');
    r.close();
    expect(t.toLowerCase().match(/transfer-encoding/g)).to.have.length(1);
  });

  it('repeated Set-Cookie / WWW-Authenticate / Link headers stay separate and in order', async () => {
    raw.setScript((s) => {
      s.end(
        'HTTP/1.1 401 Unauthorized\r\n' +
          'Set-Cookie: a=1; Path=/\r\nWWW-Authenticate: Basic realm="x"\r\nSet-Cookie: b=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT\r\n' +
          'WWW-Authenticate: Bearer realm="y", error="invalid_token"\r\nLink: </p2>; rel="next"\r\nLink: </p9>; rel="last"\r\nSet-Cookie: c=3\r\n' +
          'Content-Length: 0\r\nConnection: close\r\n\r\n',
      );
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/raw/cookies HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.includes('\r\n\r\n'), 10_000, 'head');
    r.close();
    const lines = headLines(t);
    const pick = (n: string): string[] => lines.filter((l) => l.toLowerCase().startsWith(`${n}:`)).map((l) => l.slice(n.length + 1).trim());
    expect(pick('set-cookie')).to.deep.equal(['a=1; Path=/', 'b=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT', 'c=3']);
    expect(pick('www-authenticate')).to.deep.equal(['Basic realm="x"', 'Bearer realm="y", error="invalid_token"']);
    expect(pick('link')).to.deep.equal(['</p2>; rel="next"', '</p9>; rel="last"']);
  });

  it('Content-Encoding: gzip passes untouched; Accept-Encoding is forwarded', async () => {
    const gz = gzipSync(Buffer.from('x'.repeat(5000)));
    let ae: string | undefined;
    up.setHandler((req, res) => {
      ae = req.headers['accept-encoding'];
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'application/json', 'content-length': String(gz.length), vary: 'Accept-Encoding' });
      res.end(gz);
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/gz HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate, br\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => r.buf.length - (t.indexOf('\r\n\r\n') + 4) >= gz.length, 10_000, 'body');
    r.close();
    expect(ae).to.equal('gzip, deflate, br');
    const body = r.buf.subarray(t.indexOf('\r\n\r\n') + 4);
    expect(body.equals(gz)).to.equal(true);
    expect(t.toLowerCase()).to.include(`content-length: ${gz.length}`);
  });

  it('Range request: Range forwarded, 206 with Content-Range kept', async () => {
    let range: string | undefined;
    up.setHandler((req, res) => {
      range = req.headers.range;
      res.writeHead(206, { 'content-range': 'bytes 0-3/10', 'content-length': '4', 'accept-ranges': 'bytes' });
      res.end('0123');
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/file HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\nIf-Range: "e"\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.endsWith('0123'), 10_000, 'body');
    r.close();
    expect(range).to.equal('bytes=0-3');
    expect(t).to.match(/^HTTP\/1\.1 206/);
    expect(t.toLowerCase()).to.include('content-range: bytes 0-3/10');
  });

  it('redirect from the UEM: what Location does the client get?', async () => {
    up.setHandler((_req, res) => {
      res.writeHead(302, { location: `${up.baseUrl}/internal/next`, 'content-length': '0' });
      res.end();
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/redir HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.includes('\r\n\r\n'), 10_000, 'head');
    r.close();
    console.log('      [redirect]', headLines(t).filter((l) => /^location/i.test(l)));
  });

  it('a query with odd but legal characters is forwarded byte for byte', async () => {
    const q = "?filter=name:'a'&sort=-id&x=[1,2]&y={z}&p=a|b&c=^~!$*()+,;=@:/?&pct=%20%2B%26";
    up.setHandler((req, res) => {
      res.writeHead(200, { 'content-length': String(Buffer.byteLength(req.url ?? '')) });
      res.end(req.url);
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/q${q} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => /\r\n\r\n.+/.test(t), 10_000, 'body');
    r.close();
    expect(t).to.match(/^HTTP\/1\.1 200/);
    expect(t.split('\r\n\r\n')[1]).to.equal(`/q${q}`);
  });

  it('a query with a legal percent-escape of a non-UTF-8 byte (%FF, Latin-1 %FC) is forwarded', async () => {
    up.setHandler((req, res) => {
      res.writeHead(200, { 'content-length': String(Buffer.byteLength(req.url ?? '')) });
      res.end(req.url);
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/users?name=M%FCller HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => /\r\n\r\n.+/.test(t), 10_000, 'body');
    r.close();
    expect(t.split('\r\n')[0]).to.equal('HTTP/1.1 200 OK');
  });

  it('a long URL (path + query of 8000 characters) is forwarded', async () => {
    up.setHandler((req, res) => {
      res.writeHead(200, { 'content-length': String((req.url ?? '').length).length.toString() });
      res.end(String((req.url ?? '').length));
    });
    const path = `/long?ids=${'1234567,'.repeat(998)}1`;
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1${path} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => /\r\n\r\n\d+/.test(t), 10_000, 'body');
    r.close();
    expect(t.split('\r\n')[0]).to.equal('HTTP/1.1 200 OK');
    expect(t.split('\r\n\r\n')[1]).to.equal(String(path.length));
  });

  it('pipelined requests on one connection: answers in order, bodies intact', async () => {
    up.setHandler((req, res) => {
      const body = Buffer.alloc(600 * 1024, (req.url ?? '/x').charCodeAt(1));
      setTimeout(() => {
        res.writeHead(200, { 'content-length': String(body.length) });
        res.end(body);
      }, req.url === '/a' ? 300 : 0);
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/a HTTP/1.1\r\nHost: x\r\n${AUTH}\r\nGET /api/v1/relay/acme/t1/b HTTP/1.1\r\nHost: x\r\n${AUTH}\r\nGET /api/v1/relay/acme/t1/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${AUTH}\r\n`);
    await until(() => r.closed, 20_000, 'all three and close');
    const t = r.text;
    expect(statusLines(t)).to.have.length(3);
    const parts = t.split(/HTTP\/1\.1 200 OK\r\n[\s\S]*?\r\n\r\n/).slice(1);
    expect(parts.map((p) => [p.length, p[0]])).to.deep.equal([
      [600 * 1024, 'a'],
      [600 * 1024, 'b'],
      [600 * 1024, 'c'],
    ]);
  });

  it('Connection: close from the client: answer, then the connection closes', async () => {
    up.setHandler((_req, res) => {
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${AUTH}\r\n`);
    await until(() => r.closed, 10_000, 'closed');
    expect(r.text).to.match(/\r\n\r\nok$/);
    expect(r.text.toLowerCase()).to.include('connection: close');
  });

  for (const method of ['PATCH', 'OPTIONS', 'PROPFIND', 'DELETE']) {
    it(`${method} reaches the UEM with its body`, async () => {
      let got = '';
      up.setHandler(async (req, res) => {
        const cs: Buffer[] = [];
        for await (const c of req) cs.push(c as Buffer);
        got = `${req.method} ${Buffer.concat(cs).toString()}`;
        res.writeHead(200, { 'content-length': '2' });
        res.end('ok');
      });
      const r = await Raw.open(cloud.port);
      r.send(`${method} /api/v1/relay/acme/t1/m HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: 4\r\n${AUTH}\r\n<a/>`);
      const t = await r.waitFor((t) => t.endsWith('ok'), 10_000, 'answer');
      r.close();
      expect(t).to.match(/^HTTP\/1\.1 200/);
      expect(got).to.equal(`${method} <a/>`);
    });
  }

  it('POST with Content-Length: 0 reaches the UEM with Content-Length: 0', async () => {
    let seen: Record<string, unknown> = {};
    up.setHandler(async (req, res) => {
      for await (const _ of req) void _;
      seen = { cl: req.headers['content-length'], te: req.headers['transfer-encoding'] };
      res.writeHead(201, { 'content-length': '0' });
      res.end();
    });
    const r = await Raw.open(cloud.port);
    r.send(`POST /api/v1/relay/acme/t1/empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n${AUTH}\r\n`);
    await r.waitFor((t) => t.includes('\r\n\r\n'), 10_000, 'answer');
    r.close();
    expect(seen).to.deep.equal({ cl: '0', te: undefined });
  });

  it('a UEM that answers (413) before reading a large upload: the client gets the answer and the connection stays usable or closes cleanly', async () => {
    up.setHandler((req, res) => {
      if (req.url === '/big') {
        res.writeHead(413, { 'content-length': '3', connection: 'close' });
        res.end('big');
        return;
      }
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
    });
    const r = await Raw.open(cloud.port);
    const size = 6 * 1024 * 1024;
    r.send(`POST /api/v1/relay/acme/t1/big HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n${AUTH}\r\n`);
    // send the body in pieces, as a client would
    const chunk = Buffer.alloc(256 * 1024, 1);
    for (let i = 0; i < size / chunk.length && !r.closed; i++) {
      r.s.write(chunk);
      await sleep(5);
    }
    const t = await r.waitFor((t) => t.includes('big'), 20_000, '413');
    expect(t).to.match(/^HTTP\/1\.1 413/);
    if (!r.closed) {
      r.send(`GET /api/v1/relay/acme/t1/next HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
      await r.waitFor((t) => t.endsWith('ok'), 20_000, 'second answer');
      expect(r.text).to.match(/\r\n\r\nok$/);
    }
    r.close();
  });

  it('Date and Server: one Date, the UEM Server kept', async () => {
    up.setHandler((_req, res) => {
      res.writeHead(200, { 'content-length': '2', date: 'Wed, 21 Oct 2015 07:28:00 GMT', server: 'Microsoft-IIS/10.0' });
      res.end('ok');
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/d HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.endsWith('ok'), 10_000, 'answer');
    r.close();
    const lines = headLines(t).map((l) => l.toLowerCase());
    expect(lines.filter((l) => l.startsWith('date:'))).to.deep.equal(['date: wed, 21 oct 2015 07:28:00 gmt']);
    expect(lines).to.include('server: microsoft-iis/10.0');
  });

  it('a relay request carrying Upgrade: h2c (curl --http2 over http) is relayed, not answered 404', async () => {
    up.setHandler((_req, res) => {
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/devices HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.includes('\r\n\r\n'), 10_000, 'answer');
    await sleep(200);
    r.close();
    expect(t.split('\r\n')[0]).to.equal('HTTP/1.1 200 OK');
  });

  it('non-ASCII (obs-text) header bytes pass unchanged both ways', async () => {
    let got = '';
    raw.setScript((sock, head) => {
      got = Buffer.from(head, 'latin1').toString('hex');
      sock.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\ncontent-disposition: attachment; filename="'), Buffer.from('Müller', 'utf8'), Buffer.from('.pdf"\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok')]));
    });
    const r = await Raw.open(cloud.port);
    r.send(Buffer.concat([Buffer.from(`GET /api/v1/relay/acme/raw/n HTTP/1.1\r\nHost: x\r\nX-Name: `), Buffer.from('Müller', 'utf8'), Buffer.from(`\r\n${AUTH}\r\n`)]));
    await r.waitFor((t) => t.endsWith('ok'), 10_000, 'answer');
    r.close();
    expect(got).to.include(Buffer.from('x-name: Müller', 'utf8').toString('hex'));
    expect(r.buf.includes(Buffer.from('filename="Müller.pdf"', 'utf8'))).to.equal(true);
  });

  it('TRACE: the credentials the connector injects are not sent in a TRACE (RFC 9110 9.3.8), so the UEM cannot echo them to the client', async () => {
    up.setHandler((req, res) => {
      // What a server with TRACE enabled answers: the request it received, as message/http.
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      const body = `${lines.join('\r\n')}\r\n\r\n`;
      res.writeHead(200, { 'content-type': 'message/http', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
    const r = await Raw.open(cloud.port);
    r.send(`TRACE /api/v1/relay/acme/sec/anything HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => /\r\n\r\n[\s\S]*\r\n\r\n$/.test(t) || /x-uemlink-error/i.test(t), 10_000, 'answer');
    r.close();
    expect(t).to.not.include(Buffer.from('svc-uem:S3cret-Passw0rd').toString('base64'));
    expect(t).to.not.include('tenant-code-XYZ');
  });

  it('a path segment with a legal percent-escape of a non-UTF-8 byte (%E9) is forwarded', async () => {
    up.setHandler((req, res) => {
      res.writeHead(200, { 'content-length': String(Buffer.byteLength(req.url ?? '')) });
      res.end(req.url);
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/labels/Caf%E9 HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => /\r\n\r\n.+/.test(t), 10_000, 'body');
    r.close();
    expect(t.split('\r\n')[0]).to.equal('HTTP/1.1 200 OK');
  });

  it('absolute-form request target (RFC 9112 3.2.2: a server MUST accept it) is relayed', async () => {
    up.setHandler((_req, res) => {
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET http://127.0.0.1:${cloud.port}/api/v1/relay/acme/t1/abs HTTP/1.1\r\nHost: 127.0.0.1:${cloud.port}\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.includes('\r\n\r\n'), 10_000, 'answer');
    await sleep(100);
    r.close();
    expect(t.split('\r\n')[0]).to.equal('HTTP/1.1 200 OK');
  });

  it('Expect: 100-continue with a Content-Length over maxRequestBytes: the 413 comes instead of 100 Continue (RFC 9110 10.1.1)', async () => {
    const r = await Raw.open(cloud.port);
    r.send(`PUT /api/v1/relay/acme/t1/up HTTP/1.1\r\nHost: x\r\nContent-Length: ${100 * 1024 * 1024}\r\nExpect: 100-continue\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => / 413 /.test(t), 10_000, '413');
    r.close();
    expect(t).to.not.include('100 Continue');
  });

  it('Expect: 100-continue without credentials: the 401 comes instead of 100 Continue (RFC 9110 10.1.1)', async () => {
    const r = await Raw.open(cloud.port);
    r.send(`PUT /api/v1/relay/acme/t1/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n`);
    const t = await r.waitFor((t) => / 401 /.test(t), 10_000, '401');
    r.close();
    expect(t).to.not.include('100 Continue');
  });

  it('a UEM answer with Transfer-Encoding: gzip, chunked is not passed on as if it were identity-coded (RFC 9112 6.1)', async () => {
    const plain = '{"Devices":[],"Total":0}';
    const gz = gzipSync(Buffer.from(plain));
    raw.setScript((sock) => {
      sock.end(Buffer.concat([
        Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: gzip, chunked\r\nconnection: close\r\n\r\n${gz.length.toString(16)}\r\n`),
        gz,
        Buffer.from('\r\n0\r\n\r\n'),
      ]));
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/raw/tegz HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t = await r.waitFor((t) => t.includes('0\r\n\r\n') || /x-uemlink-error/i.test(t), 10_000, 'answer');
    r.close();
    const head = t.slice(0, t.indexOf('\r\n\r\n')).toLowerCase();
    // Either the relay undoes the gzip transfer coding (the client reads the JSON) or it refuses;
    // gzip bytes under a head that announces no coding at all are a corrupt body.
    const announcesGzip = /\r\n(content|transfer)-encoding:[^\r\n]*gzip/.test(head);
    const gzipBytesInBody = r.buf.subarray(t.indexOf('\r\n\r\n') + 4).includes(gz.subarray(0, 10));
    expect(gzipBytesInBody && !announcesGzip, `head:\n${head}`).to.equal(false);
  });

  it('HTTP/1.0 client, chunked UEM answer: close-delimited body, complete', async () => {
    up.setHandler((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('aaa');
      setTimeout(() => res.end('bbb'), 50);
    });
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/h10 HTTP/1.0\r\nHost: x\r\n${AUTH}\r\n`);
    await until(() => r.closed, 10_000, 'closed');
    expect(r.text).to.match(/^HTTP\/1\.1 200/);
    expect(r.text.toLowerCase()).to.not.include('transfer-encoding');
    expect(r.text.endsWith('\r\n\r\naaabbb')).to.equal(true);
  });

  it('path + query of exactly 8192 characters is accepted, 8193 refused (documented limit)', async () => {
    up.setHandler((req, res) => {
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
      void req;
    });
    const mk = (n: number): string => `/l?x=${'a'.repeat(n - 5)}`;
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1${mk(8192)} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t1 = await r.waitFor((t) => t.endsWith('ok'), 10_000, 'answer');
    expect(t1.split('\r\n')[0]).to.equal('HTTP/1.1 200 OK');
    r.send(`GET /api/v1/relay/acme/t1${mk(8193)} HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    const t2 = await r.waitFor((t) => statusLines(t).length >= 2 && t.endsWith('}'), 10_000, 'answer 2');
    expect(statusLines(t2)[1]).to.equal('HTTP/1.1 400 Bad Request');
    r.close();
  });

  it('OPTIONS with Max-Forwards: 0 is not forwarded (RFC 9110 7.6.2)', async () => {
    const before = up.seen.length;
    up.setHandler((_req, res) => {
      res.writeHead(200, { allow: 'GET, OPTIONS', 'content-length': '0' });
      res.end();
    });
    const r = await Raw.open(cloud.port);
    r.send(`OPTIONS /api/v1/relay/acme/t1/mf HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n${AUTH}\r\n`);
    await r.waitFor((t) => t.includes('\r\n\r\n'), 10_000, 'answer');
    r.close();
    expect(up.seen.length - before, 'requests that reached the UEM').to.equal(0);
  });
});

const handler: Handler = (req, res) => {
  if (req.url === '/slow') {
    // A live export: a line every 300 ms for 4.5 s (never idle longer than the 2 s relay timeout).
    res.writeHead(200, { 'content-type': 'text/plain' });
    let n = 0;
    const t = setInterval(() => {
      res.write(`line ${n}\n`);
      if (++n === 15) {
        clearInterval(t);
        res.end();
      }
    }, 300);
    return;
  }
  const body = Buffer.alloc(1024 * 1024, 98);
  res.writeHead(200, { 'content-length': String(body.length) });
  res.end(body);
};

describe('pipelined requests behind a long, live response (conformance review)', function () {
  this.timeout(60_000);
  let cloud: CloudServer;
  let daemon: ConnectorDaemon;
  let up: Upstream;
  const pki = createTestPki(['localhost', '127.0.0.1']);

  before(async () => {
    cloud = await startInprocCloud({ relayTimeoutMs: 2000 });
    up = await startUpstream({ pki });
    ({ daemon } = await startInprocConnector(cloud, { targets: [{ id: 't1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: pki.caCertPem } }] }));
    up.setHandler(handler);
  });
  after(async () => {
    await daemon?.shutdown();
    await cloud?.shutdown();
    await up?.close();
  });

  it('control: the slow answer alone streams to its end', async () => {
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${AUTH}\r\n`);
    await until(() => r.closed, 30_000, 'close');
    expect(r.text).to.include('line 14');
  });

  it('the second pipelined answer is not aborted for "idling" while it waits its turn behind a first answer that keeps streaming', async () => {
    const r = await Raw.open(cloud.port);
    r.send(`GET /api/v1/relay/acme/t1/slow HTTP/1.1\r\nHost: x\r\n${AUTH}\r\nGET /api/v1/relay/acme/t1/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${AUTH}\r\n`);
    await until(() => r.closed, 30_000, 'both answers and close');
    const t = r.text;
    expect(statusLines(t), `last bytes: ${JSON.stringify(t.slice(-120))}`).to.have.length(2);
    const second = t.slice(t.lastIndexOf('HTTP/1.1 200'));
    expect(second.length - (second.indexOf('\r\n\r\n') + 4)).to.equal(1024 * 1024);
    expect(r.errored, 'connection reset').to.equal(undefined);
  });
});
