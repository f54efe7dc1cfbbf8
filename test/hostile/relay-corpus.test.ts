/**
 * Hostile input against the relay's HTTP front: a fixed corpus of SSRF and request-smuggling
 * attempts, hand-written HTTP/1.1 over raw sockets to a real in-process cloud, relayed through a
 * real connector to an HTTPS upstream that records everything it sees.
 *
 * For every attempt:
 * - a second ("forbidden") upstream on another port never sees a request;
 * - everything the allowed upstream sees stays below the target's base path and its allow rule
 *   (`/base` + `/api`, whole segments), has no dot segment in any single-decoded form, no empty
 *   segment, no backslash, and the connector's own Host;
 * - attempts that must be refused are answered 4xx (or the connection is closed by the parser);
 * - nothing desynchronises: a normal request sent right after on the same keep-alive connection (or,
 *   when the server closed it, on a new one) gets its own, correct answer, and the tunnel session
 *   is the same one at the end (no attempt tore it down).
 */
import { expect } from 'chai';
import { connect, type Socket } from 'node:net';
import type { CloudServer } from '../../src/cloud/server.js';
import { startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** A hand-driven HTTP/1.1 client connection that parses responses as they come (keep-alive). */
class RawConn {
  private buf = Buffer.alloc(0);
  closed = false;
  private waiters: Array<() => void> = [];
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }
  static open(port: number): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  write(data: string | Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(data);
  }
  /** The next complete response, or undefined when the connection closed first (or timed out). */
  async next(timeoutMs = 8000): Promise<RawResponse | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.tryParse();
      if (r) return r;
      if (this.closed || Date.now() > deadline) return undefined;
      await new Promise<void>((res) => {
        this.waiters.push(res);
        setTimeout(res, 50);
      });
    }
  }
  private tryParse(): RawResponse | undefined {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let off = end + 4;
    let body: Buffer;
    if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      for (;;) {
        const le = this.buf.indexOf('\r\n', off);
        if (le < 0) return undefined;
        const size = parseInt(this.buf.subarray(off, le).toString('latin1'), 16);
        if (this.buf.length < le + 2 + size + 2) return undefined;
        parts.push(this.buf.subarray(le + 2, le + 2 + size));
        off = le + 2 + size + 2;
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (this.buf.length < off + n) return undefined;
      body = this.buf.subarray(off, off + n);
      off += n;
    } else if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = Buffer.alloc(0);
    } else {
      // No length: the body runs to the close.
      if (!this.closed) return undefined;
      body = this.buf.subarray(off);
      off = this.buf.length;
    }
    this.buf = this.buf.subarray(off);
    return { status, headers, body };
  }
  close(): void {
    this.socket.destroy();
  }
}

type Expect = 'refused' | 'safe';
interface Attack {
  name: string;
  /** The raw request bytes; {AUTH}, {UP} and {FORBIDDEN} are replaced. */
  raw: string;
  expect: Expect;
}

const R = '/api/v1/relay/acme/uem';
const H = (extra = ''): string => `Host: relay.example\r\nAuthorization: Bearer {AUTH}\r\n${extra}`;
const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\n${H(extra)}\r\n`;

/** The corpus. "refused": must not reach the upstream at all. "safe": may reach it, only inside the rules. */
const CORPUS: Attack[] = [
  // --- dot segments in every encoding ---
  { name: 'raw ../', raw: get(`${R}/api/../secret`), expect: 'refused' },
  { name: 'raw ./', raw: get(`${R}/api/./x`), expect: 'refused' },
  { name: '%2e%2e', raw: get(`${R}/api/%2e%2e/secret`), expect: 'refused' },
  { name: '%2E%2e mixed case', raw: get(`${R}/api/%2E%2e/secret`), expect: 'refused' },
  { name: '.%2e', raw: get(`${R}/api/.%2e/secret`), expect: 'refused' },
  { name: 'double-encoded %252e%252e', raw: get(`${R}/api/%252e%252e/secret`), expect: 'refused' },
  { name: 'triple-encoded %25252e%25252e', raw: get(`${R}/api/%25252e%25252e/secret`), expect: 'refused' },
  { name: 'Tomcat ..;', raw: get(`${R}/api/..;/secret`), expect: 'refused' },
  { name: '%2e%2e;x=1', raw: get(`${R}/api/%2e%2e;x=1/secret`), expect: 'refused' },
  { name: 'escape the base from the first segment', raw: get(`${R}/../base2/x`), expect: 'refused' },
  { name: 'dot segments before the target', raw: get('/api/v1/relay/acme/../globex/uem/api/x'), expect: 'refused' },
  { name: 'encoded slash %2f', raw: get(`${R}/api%2f..%2fsecret`), expect: 'refused' },
  { name: 'double-encoded slash %252f', raw: get(`${R}/api/..%252fsecret`), expect: 'refused' },
  { name: 'encoded slash inside the target segment', raw: get('/api/v1/relay/acme/uem%2f..%2fother/api/x'), expect: 'refused' },
  // --- backslashes ---
  { name: 'raw backslash', raw: get(`${R}/api\\..\\secret`), expect: 'refused' },
  { name: '%5c backslash', raw: get(`${R}/api/..%5csecret`), expect: 'refused' },
  { name: 'double-encoded %255c', raw: get(`${R}/api/..%255csecret`), expect: 'refused' },
  // --- other origins: //, @, absolute-form, CONNECT ---
  { name: 'protocol-relative //host', raw: get(`${R}//127.0.0.1:{FORBIDDEN}/x`), expect: 'refused' },
  { name: '@ userinfo in the target segment', raw: get(`/api/v1/relay/acme/uem@127.0.0.1:{FORBIDDEN}/api/x`), expect: 'refused' },
  { name: '@ userinfo as a path segment', raw: get(`${R}/@127.0.0.1:{FORBIDDEN}/api/x`), expect: 'refused' },
  { name: '@ inside an allowed path (stays a path)', raw: get(`${R}/api/@127.0.0.1:{FORBIDDEN}/x`), expect: 'safe' },
  { name: 'absolute-form request target to another host', raw: `GET http://127.0.0.1:{FORBIDDEN}${R}/api/x HTTP/1.1\r\n${H()}\r\n`, expect: 'refused' },
  { name: 'absolute-form https to the upstream itself', raw: `GET https://127.0.0.1:{UP}/base/api/x HTTP/1.1\r\n${H()}\r\n`, expect: 'refused' },
  { name: 'absolute URL as the relayed path', raw: get(`${R}/http://127.0.0.1:{FORBIDDEN}/x`), expect: 'refused' },
  { name: 'CONNECT to another host', raw: `CONNECT 127.0.0.1:{FORBIDDEN} HTTP/1.1\r\nHost: 127.0.0.1:{FORBIDDEN}\r\n\r\n`, expect: 'refused' },
  { name: 'asterisk-form', raw: `OPTIONS * HTTP/1.1\r\n${H()}\r\n`, expect: 'refused' },
  { name: 'Host header naming another origin', raw: get(`${R}/api/host`, `Host: 127.0.0.1:{FORBIDDEN}\r\n`), expect: 'safe' },
  { name: 'X-Forwarded-Host / X-Original-URL', raw: get(`${R}/api/xfh`, 'X-Forwarded-Host: 127.0.0.1:{FORBIDDEN}\r\nX-Original-URL: /secret\r\nX-Rewrite-URL: /secret\r\n'), expect: 'safe' },
  // --- allow-rule bypasses ---
  { name: 'prefix without segment boundary (/apix)', raw: get(`${R}/apix/secret`), expect: 'refused' },
  { name: 'case change (/API)', raw: get(`${R}/API/x`), expect: 'refused' },
  { name: 'method not allowed (DELETE)', raw: `DELETE ${R}/api/x HTTP/1.1\r\n${H()}\r\n`, expect: 'refused' },
  { name: 'method override header', raw: get(`${R}/api/mo`, 'X-HTTP-Method-Override: DELETE\r\n'), expect: 'safe' },
  // --- CR/LF/NUL ---
  { name: 'NUL in the path', raw: `GET ${R}/api/x\u0000y HTTP/1.1\r\n${H()}\r\n`, expect: 'refused' },
  { name: '%00 in the path', raw: get(`${R}/api/x%00y`), expect: 'refused' },
  { name: '%00 in the query', raw: get(`${R}/api/x?a=%00`), expect: 'refused' },
  { name: '%0d%0a header injection in the path', raw: get(`${R}/api/x%0d%0aX-Injected:%201`), expect: 'refused' },
  { name: '%0d%0a in the query', raw: get(`${R}/api/x?a=%0d%0aHost:%20evil`), expect: 'refused' },
  { name: 'double-encoded %250d%250a in the query', raw: get(`${R}/api/x?a=%250d%250aX:1`), expect: 'refused' },
  // Node reads "GET /…/api/x" as a version-less request line and "X-Injected: 1 HTTP/1.1" as a header:
  // a plain request inside the rules, nothing injected anywhere else.
  { name: 'raw CR/LF splitting the request line', raw: `GET ${R}/api/x\r\nX-Injected: 1 HTTP/1.1\r\n${H()}\r\n`, expect: 'safe' },
  { name: 'bare CR in a header value', raw: get(`${R}/api/x`, 'X-A: a\rX-B: b\r\n'), expect: 'refused' },
  { name: 'bare LF in a header value', raw: get(`${R}/api/x`, 'X-A: a\nX-B: b\r\n'), expect: 'refused' },
  { name: 'NUL in a header value', raw: get(`${R}/api/x`, 'X-A: a\u0000b\r\n'), expect: 'refused' },
  { name: 'obs-fold continuation line', raw: get(`${R}/api/fold`, 'X-A: a\r\n b\r\n'), expect: 'safe' },
  { name: 'space before the colon', raw: get(`${R}/api/x`, 'X-A : b\r\n'), expect: 'refused' },
  { name: 'non-ASCII raw in the path', raw: `GET ${R}/api/\u00e9 HTTP/1.1\r\n${H()}\r\n`, expect: 'refused' },
  { name: 'tab in the path', raw: `GET ${R}/api/a\tb HTTP/1.1\r\n${H()}\r\n`, expect: 'refused' },
  { name: 'fragment in the path', raw: get(`${R}/api/x#frag`), expect: 'refused' },
  // --- duplicate Host / Content-Length, Transfer-Encoding tricks (smuggling) ---
  { name: 'duplicate Host', raw: `GET ${R}/api/dh HTTP/1.1\r\nHost: a.example\r\nHost: 127.0.0.1:{FORBIDDEN}\r\nAuthorization: Bearer {AUTH}\r\n\r\n`, expect: 'safe' },
  { name: 'conflicting Content-Length', raw: `POST ${R}/api/cl HTTP/1.1\r\n${H('Content-Length: 5\r\nContent-Length: 40\r\n')}\r\nhello`, expect: 'refused' },
  { name: 'duplicate equal Content-Length', raw: `POST ${R}/api/cl2 HTTP/1.1\r\n${H('Content-Length: 5\r\nContent-Length: 5\r\n')}\r\nhello`, expect: 'safe' },
  { name: 'Content-Length list "5, 5"', raw: `POST ${R}/api/cl3 HTTP/1.1\r\n${H('Content-Length: 5, 5\r\n')}\r\nhello`, expect: 'safe' },
  { name: 'signed / non-numeric Content-Length', raw: `POST ${R}/api/cl4 HTTP/1.1\r\n${H('Content-Length: +5\r\n')}\r\nhello`, expect: 'refused' },
  {
    name: 'CL.TE: Content-Length and chunked with a smuggled request',
    raw: `POST ${R}/api/clte HTTP/1.1\r\n${H('Content-Length: 62\r\nTransfer-Encoding: chunked\r\n')}\r\n0\r\n\r\nGET ${R}/api/SMUGGLED HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AUTH}\r\n\r\n`,
    expect: 'refused',
  },
  {
    name: 'TE.CL: chunked then Content-Length',
    raw: `POST ${R}/api/tecl HTTP/1.1\r\n${H('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n')}\r\n5c\r\nGET ${R}/api/SMUGGLED HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n`,
    expect: 'refused',
  },
  { name: 'Transfer-Encoding: xchunked', raw: `POST ${R}/api/te1 HTTP/1.1\r\n${H('Transfer-Encoding: xchunked\r\n')}\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'refused' },
  { name: 'Transfer-Encoding: chunked, identity', raw: `POST ${R}/api/te2 HTTP/1.1\r\n${H('Transfer-Encoding: chunked, identity\r\n')}\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'refused' },
  { name: 'two Transfer-Encoding headers', raw: `POST ${R}/api/te3 HTTP/1.1\r\n${H('Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n')}\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'refused' },
  { name: 'Transfer-Encoding via obs-fold', raw: `POST ${R}/api/te4 HTTP/1.1\r\n${H('Transfer-Encoding:\r\n chunked\r\n')}\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'refused' },
  { name: 'Transfer-Encoding with a space before the colon', raw: `POST ${R}/api/te5 HTTP/1.1\r\n${H('Transfer-Encoding : chunked\r\n')}\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'refused' },
  { name: 'Transfer-Encoding:\\tchunked (tab)', raw: `POST ${R}/api/te6 HTTP/1.1\r\n${H('Transfer-Encoding:\tchunked\r\n')}\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'safe' },
  { name: 'TE on HTTP/1.0', raw: `POST ${R}/api/te7 HTTP/1.0\r\n${H('Transfer-Encoding: chunked\r\n')}\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'safe' },
  { name: 'chunk size overflow', raw: `POST ${R}/api/ch1 HTTP/1.1\r\n${H('Transfer-Encoding: chunked\r\n')}\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n`, expect: 'safe' },
  { name: 'chunk extension with bare LF', raw: `POST ${R}/api/ch2 HTTP/1.1\r\n${H('Transfer-Encoding: chunked\r\n')}\r\n5;a=b\nhello\r\n0\r\n\r\n`, expect: 'safe' },
  { name: 'chunked body with trailers (a header smuggled as a trailer)', raw: `POST ${R}/api/ch3 HTTP/1.1\r\n${H('Transfer-Encoding: chunked\r\n')}\r\n5\r\nhello\r\n0\r\nHost: 127.0.0.1:{FORBIDDEN}\r\nX-Trailer: 1\r\n\r\n`, expect: 'safe' },
  { name: 'Connection: header naming Authorization (hop-by-hop strip)', raw: get(`${R}/api/conn`, 'Connection: keep-alive, X-Keep, Authorization\r\nX-Keep: 1\r\n'), expect: 'safe' },
  { name: 'Upgrade: websocket to the UEM', raw: get(`${R}/api/upg`, 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'), expect: 'safe' },
  // --- huge heads ---
  { name: 'one 20 KiB header (over the 16 KiB head limit)', raw: get(`${R}/api/huge`, `X-Big: ${'a'.repeat(20 * 1024)}\r\n`), expect: 'refused' },
  { name: 'a 9 KiB path', raw: get(`${R}/api/${'a'.repeat(9 * 1024)}`), expect: 'refused' },
  { name: '600 small headers (over the protocol\'s 500)', raw: get(`${R}/api/many`, Array.from({ length: 600 }, (_, i) => `X-H${i}: v\r\n`).join('')), expect: 'refused' },
  { name: 'lower-case method', raw: `get ${R}/api/x HTTP/1.1\r\n${H()}\r\n`, expect: 'refused' },
  { name: 'unknown method token', raw: `FOO ${R}/api/x HTTP/1.1\r\n${H()}\r\n`, expect: 'refused' },
  { name: 'HTTP/0.9 style request line', raw: `GET ${R}/api/x\r\n\r\n`, expect: 'refused' },
  { name: 'HTTP/2 preface', raw: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', expect: 'refused' },
];

describe('hostile input: relay path and header corpus (raw sockets, real cloud and connector)', function () {
  this.timeout(120_000);
  let cloud: CloudServer;
  let up: Upstream;
  let forbidden: Upstream;
  let stop: () => Promise<void>;
  let connectorId: string;
  let epoch: number;
  const table: Array<{ name: string; status: string; reached: number }> = [];

  before(async () => {
    cloud = await startInprocCloud({ relayTimeoutMs: 5000 });
    up = await startUpstream();
    forbidden = await startUpstream();
    const { daemon, id } = await startInprocConnector(cloud, {
      targets: [{ id: 'uem', baseUrl: `${up.baseUrl}/base`, auth: { type: 'none' }, tls: { ca: up.caPem }, allow: [{ methods: ['GET', 'POST'], pathPrefix: '/api' }] }],
    });
    stop = () => daemon.shutdown();
    connectorId = id.connectorId;
    epoch = cloud.registry.get(connectorId)!.epoch;
  });
  after(async () => {
    if (process.env.HOSTILE_TABLE) console.table(table);
    await stop?.();
    await cloud?.shutdown();
    await up?.close();
    await forbidden?.close();
  });

  const fill = (s: string): string =>
    s.replaceAll('{AUTH}', cloud.config.adminToken).replaceAll('{UP}', String(up.port)).replaceAll('{FORBIDDEN}', String(forbidden.port));

  /** A normal request that must get its own answer (the echo of its own marker path). */
  async function control(conn: RawConn, marker: string): Promise<'same-connection' | 'new-connection'> {
    const path = `${R}/api/ok/${marker}`;
    const req = fill(`GET ${path} HTTP/1.1\r\nHost: relay.example\r\nAuthorization: Bearer {AUTH}\r\n\r\n`);
    let how: 'same-connection' | 'new-connection' = 'same-connection';
    let r: RawResponse | undefined;
    if (!conn.closed) {
      conn.write(req);
      r = await conn.next();
    }
    if (!r) {
      // The server closed the connection after the attack (that is fine): a new one must work.
      how = 'new-connection';
      const fresh = await RawConn.open(cloud.port);
      fresh.write(req);
      r = await fresh.next();
      fresh.close();
    }
    expect(r, `control request after "${marker}" answered`).to.not.equal(undefined);
    expect(r!.status, `control after "${marker}": ${r!.body.toString().slice(0, 200)}`).to.equal(200);
    expect(JSON.parse(r!.body.toString()).url).to.equal(`/base/api/ok/${marker}`);
    return how;
  }

  function checkSeen(): void {
    expect(forbidden.seen, 'the forbidden upstream saw nothing').to.have.length(0);
    for (const s of up.seen) {
      const path = s.url.split('?')[0]!;
      expect(path === '/base/api' || path.startsWith('/base/api/'), `upstream path inside base + allow rule: ${s.url}`).to.equal(true);
      const segs = path.split('/').slice(1);
      segs.forEach((seg, i) => {
        let d = seg;
        try {
          d = decodeURIComponent(seg);
        } catch {
          /* left encoded: not a dot segment for the UEM either */
        }
        expect(d === '.' || d === '..' || /^\.\.?;/.test(d), `no dot segment in ${s.url}`).to.equal(false);
        expect(seg === '' && i < segs.length - 1, `no empty segment in ${s.url}`).to.equal(false);
        expect(d.includes('\\') || d.includes('/'), `no backslash or encoded slash in ${s.url}`).to.equal(false);
      });
      expect(s.url).to.not.match(/SMUGGLED/);
      expect(s.headers.host).to.equal(`127.0.0.1:${up.port}`);
      expect(s.headers.authorization, 'the relay credential never reaches the UEM').to.equal(undefined);
      expect(s.headers['x-original-url'] === undefined || s.headers['x-original-url'] === '/secret').to.equal(true);
    }
  }

  CORPUS.forEach((a, i) => {
    it(`${a.expect === 'refused' ? 'refuses' : 'contains'}: ${a.name}`, async () => {
      const before = up.seen.length;
      const conn = await RawConn.open(cloud.port);
      try {
        conn.write(fill(a.raw));
        const r = await conn.next();
        // Whatever the answer: never a success for something that must be refused, never a 5xx
        // from the cloud itself (a crash), and at most one answer for one request.
        const reached = up.seen.length - before;
        table.push({ name: a.name, status: r ? String(r.status) : 'closed', reached });
        if (a.expect === 'refused') {
          expect(reached, `"${a.name}" reached the upstream: ${up.seen.slice(before).map((s) => s.url).join(', ')}`).to.equal(0);
          if (r) expect(r.status, `"${a.name}" answered ${r.status}: ${r.body.toString().slice(0, 200)}`).to.be.within(400, 499);
        } else if (r) {
          expect(r.status, `"${a.name}": ${r.body.toString().slice(0, 200)}`).to.not.equal(500);
        }
        await control(conn, `c${i}`);
        // Nothing else arrives on the connection (a smuggled second request would answer here).
        if (!conn.closed) {
          const extra = await conn.next(150);
          expect(extra, `an unexpected extra response after "${a.name}"`).to.equal(undefined);
        }
      } finally {
        conn.close();
      }
      checkSeen();
      // The tunnel was not torn down by the attempt (no protocol error, no reconnect).
      expect(cloud.registry.get(connectorId)?.epoch).to.equal(epoch);
    });
  });

  it('pipelined: attack and control in one write never mix their answers', async () => {
    for (const [i, a] of CORPUS.entries()) {
      if (a.raw.includes('X-Big') || a.name.includes('HTTP/2')) continue;
      const conn = await RawConn.open(cloud.port);
      const marker = `p${i}`;
      conn.write(fill(a.raw) + fill(`GET ${R}/api/ok/${marker} HTTP/1.1\r\nHost: relay.example\r\nAuthorization: Bearer {AUTH}\r\n\r\n`));
      const answers: RawResponse[] = [];
      while (answers.length < 2) {
        const r = await conn.next(5000);
        if (!r) break;
        answers.push(r);
      }
      if (answers.length === 2) {
        const extra = await conn.next(100);
        if (extra) answers.push(extra);
      }
      conn.close();
      // The control's answer, if it came, is its own (never the attack's or a smuggled one).
      const mine = answers.filter((r) => r.status === 200 && r.body.toString().includes(`/ok/${marker}`));
      expect(answers.length, `"${a.name}" pipelined: ${answers.map((r) => r.status).join(',')}`).to.be.at.most(2);
      for (const r of answers.slice(0, -1)) expect(r.body.toString()).to.not.include(`/ok/${marker}`);
      if (answers.length === 2) expect(mine, `"${a.name}" pipelined: the second answer is the control's`).to.have.length(1);
      checkSeen();
    }
    expect(cloud.registry.get(connectorId)?.epoch).to.equal(epoch);
  });
});
