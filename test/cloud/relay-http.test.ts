/**
 * The relay API's HTTP path against a hand-driven connector (connectAs) and raw client sockets, so
 * every byte on both sides is under the test's control: framing, early exits, mid-body failures.
 */
import { expect } from 'chai';
import { Raw } from '../helpers/raw-client.js';
import { gzipSync } from 'node:zlib';
import type { CloudServer } from '../../src/cloud/server.js';
import type { MuxStream } from '../../src/protocol/stream.js';
import type { Connected } from '../../src/connector/tunnel-client.js';
import { createApiKey } from '../../src/cloud/api-keys.js';
import { systemClock } from '../../src/common/clock.js';
import { connectAs, pairInproc, startInprocCloud, type TestIdentity } from '../helpers/inproc.js';
import { ADMIN_TOKEN, sleep, until } from '../helpers/procs.js';
import { collect } from '../helpers/sessions.js';


/** The connector side writes 64 KiB chunks as its window allows, until the stream is gone. */
function writeForever(s: MuxStream): void {
  const chunk = Buffer.alloc(64 * 1024, 7);
  const pump = (): void => {
    while (!s.destroyed && s.write(chunk));
    if (!s.destroyed) s.once('drain', pump);
  };
  pump();
}

const AUTH = `Authorization: Bearer ${ADMIN_TOKEN}\r\n`;

describe('relay API: HTTP framing and endings (raw client, hand-driven connector)', function () {
  this.timeout(20_000);
  let cloud: CloudServer;
  let id: TestIdentity;
  let c: Connected;
  let onStream: (s: MuxStream) => void = () => {};

  before(async () => {
    cloud = await startInprocCloud({ relayTimeoutMs: 3000 });
    id = await pairInproc(cloud);
    c = await connectAs(cloud, id); // target t1
    c.session.on('stream', (s) => {
      s.on('error', () => {});
      onStream(s);
    });
    await until(() => cloud.registry.get(id.connectorId) !== undefined, 3000, 'connected');
  });
  after(async () => {
    c.session.close();
    await cloud.shutdown();
  });

  it('a connector that ends a body short of its Content-Length: the response is aborted, the next one is not read as its rest', async () => {
    onStream = (s) => {
      s.resume();
      if (s.request.path === '/short') {
        s.respond({ status: 200, headers: [['content-length', '10']] });
        s.end(Buffer.from('abc'));
      } else {
        s.respond({ status: 200, headers: [['content-length', '5']] });
        s.end(Buffer.from('SECND'));
      }
    };
    const r = await Raw.open(cloud.port);
    r.s.write(`GET /api/v1/relay/acme/t1/short HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await sleep(300);
    r.s.write(`GET /api/v1/relay/acme/t1/second HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await sleep(500);
    r.s.destroy();
    // What the client parses as the first body: "abc" + the start of the second response.
    expect(r.text, 'second response leaked into the first body').to.not.match(/abcHTTP\/1\.1 200/);
  });

  it('a connector that sends more than its Content-Length: the excess never reaches the client as a next response', async () => {
    onStream = (s) => {
      s.resume();
      s.respond({ status: 200, headers: [['content-length', '3']] });
      s.end(Buffer.from('abcHTTP/1.1 200 OK\r\nX-Injected: 1\r\nContent-Length: 0\r\n\r\n'));
    };
    const r = await Raw.open(cloud.port);
    r.s.write(`GET /api/v1/relay/acme/t1/long HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await sleep(500);
    r.s.destroy();
    expect(r.text).to.not.include('X-Injected');
  });

  /** A cloud of its own whose connector answers "partial-" and then loses its tunnel; what `request` got. */
  async function tunnelLostMidBody(request: string): Promise<Raw> {
    const own = await startInprocCloud({ relayTimeoutMs: 3000 });
    const oid = await pairInproc(own);
    const oc = await connectAs(own, oid);
    try {
      oc.session.on('stream', (s) => {
        s.on('error', () => {});
        s.resume();
        s.respond({ status: 200, headers: [['content-type', 'text/plain']] });
        s.write(Buffer.from('partial-'));
        setTimeout(() => oc.session.close(), 200);
      });
      await until(() => own.registry.get(oid.connectorId) !== undefined, 3000, 'connected');
      const r = await Raw.open(own.port);
      r.s.write(request);
      await until(() => r.closed, 5000, 'client connection closed');
      return r;
    } finally {
      await own.shutdown();
    }
  }

  it('tunnel lost mid-body (no Content-Length, chunked to the client): no terminating chunk', async () => {
    const r = await tunnelLostMidBody(`GET /api/v1/relay/acme/t1/x HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    expect(r.text).to.include('partial-');
    expect(r.text.endsWith('0\r\n\r\n'), r.text).to.equal(false);
  });

  it('tunnel lost mid-body for an HTTP/1.0 client (close-delimited body): the connection is reset, not closed cleanly', async () => {
    const r = await tunnelLostMidBody(`GET /api/v1/relay/acme/t1/x HTTP/1.0\r\nHost: x\r\n${AUTH}\r\n`);
    // A clean FIN here is indistinguishable from a complete body.
    expect(r.errored, `client saw a clean close after: ${JSON.stringify(r.text)}`).to.not.equal(undefined);
  });

  it('Transfer-Encoding: gzip, chunked is refused (501), never forwarded with the coding dropped', async () => {
    let seen: { headers: unknown; body: Buffer } | undefined;
    onStream = (s) => {
      void collect(s).then((body) => {
        seen = { headers: s.request.headers, body };
        s.respond({ status: 200, headers: [['content-length', '0']] });
        s.end();
      });
    };
    const payload = gzipSync(Buffer.from('hello world'));
    const r = await Raw.open(cloud.port);
    r.s.write(`POST /api/v1/relay/acme/t1/te HTTP/1.1\r\nHost: x\r\n${AUTH}Transfer-Encoding: gzip, chunked\r\n\r\n${payload.length.toString(16)}\r\n`);
    r.s.write(payload);
    r.s.write('\r\n0\r\n\r\n');
    await sleep(500);
    r.s.destroy();
    const status = /^HTTP\/1\.1 (\d+)/.exec(r.text)?.[1];
    // RFC 9112 6.1/6.3: a coding the relay does not apply/forward must be refused (501), not stripped.
    expect({ status, reachedConnector: seen ? { headers: seen.headers, body: seen.body.toString('hex') } : undefined }).to.deep.equal({ status: '501', reachedConnector: undefined });
  });

  it('Expect: 100-continue upload is relayed', async () => {
    let got = '';
    onStream = (s) => {
      void collect(s).then((body) => {
        got = body.toString();
        s.respond({ status: 200, headers: [['content-length', '2']] });
        s.end(Buffer.from('ok'));
      });
    };
    const r = await Raw.open(cloud.port);
    r.s.write(`POST /api/v1/relay/acme/t1/exp HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
    await until(() => r.text.includes('100 Continue'), 3000, '100 Continue');
    r.s.write('hello');
    await until(() => r.text.includes('\r\n\r\nok'), 3000, 'answer');
    r.s.destroy();
    expect(got).to.equal('hello');
  });

  it('HEAD: headers with Content-Length, no body, connection reusable', async () => {
    onStream = (s) => {
      s.resume();
      if (s.request.method === 'HEAD') {
        s.respond({ status: 200, headers: [['content-length', '1234']] });
        s.end();
      } else {
        s.respond({ status: 200, headers: [['content-length', '2']] });
        s.end(Buffer.from('ok'));
      }
    };
    const r = await Raw.open(cloud.port);
    r.s.write(`HEAD /api/v1/relay/acme/t1/h HTTP/1.1\r\nHost: x\r\n${AUTH}\r\nGET /api/v1/relay/acme/t1/g HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await until(() => r.text.endsWith('\r\n\r\nok'), 3000, `both answers: ${JSON.stringify(r.text)}`);
    r.s.destroy();
    expect(r.text.match(/HTTP\/1\.1 200/g)).to.have.length(2);
    expect(r.text).to.match(/content-length: 1234/i);
  });

  it('client leaves mid-request-body (Content-Length upload): the stream is reset and freed', async () => {
    let stream: MuxStream | undefined;
    let closed = false;
    onStream = (s) => {
      stream = s;
      s.resume();
      s.on('close', () => (closed = true));
    };
    const before = cloud.registry.get(id.connectorId)!.session.activeStreams;
    const r = await Raw.open(cloud.port);
    r.s.write(`POST /api/v1/relay/acme/t1/up HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 100000\r\n\r\n${'a'.repeat(1000)}`);
    await until(() => stream !== undefined, 3000, 'stream opened');
    r.s.destroy();
    await until(() => closed, 3000, 'connector side stream closed');
    await until(() => cloud.registry.get(id.connectorId)!.session.activeStreams === before, 3000, 'cloud stream freed');
  });

  it('client leaves mid-response: stream reset and freed on both sides', async () => {
    let closed = false;
    onStream = (s) => {
      s.resume();
      s.on('close', () => (closed = true));
      s.respond({ status: 200, headers: [['content-length', String(64 << 20)]] });
      writeForever(s);
    };
    const before = cloud.registry.get(id.connectorId)!.session.activeStreams;
    const r = await Raw.open(cloud.port);
    r.s.write(`GET /api/v1/relay/acme/t1/big HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await until(() => r.buf.length > 1 << 20, 5000, 'some body');
    r.s.destroy();
    await until(() => closed, 3000, 'connector side stream closed');
    await until(() => cloud.registry.get(id.connectorId)!.session.activeStreams === before, 3000, 'cloud stream freed');
  });

  it('a large body to a client that stops reading for a while, then reads: intact', async () => {
    const size = 8 << 20;
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >> 12)) & 0xff;
    onStream = (s) => {
      s.resume();
      s.respond({ status: 200, headers: [['content-length', String(size)]] });
      let off = 0;
      const pump = (): void => {
        while (off < size) {
          const n = Math.min(70_000, size - off);
          const ok = s.write(data.subarray(off, off + n));
          off += n;
          if (!ok) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    };
    const r = await Raw.open(cloud.port);
    r.s.pause();
    r.s.write(`GET /api/v1/relay/acme/t1/slow HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await sleep(1000);
    r.s.resume();
    await until(() => {
      const i = r.buf.indexOf('\r\n\r\n');
      return i >= 0 && r.buf.length - i - 4 >= size;
    }, 10_000, 'whole body');
    const i = r.buf.indexOf('\r\n\r\n');
    expect(r.buf.subarray(i + 4).equals(data)).to.equal(true);
    r.s.destroy();
  });
  it('a client that leaves while its credential is being checked (slow store read): the request goes no further', async () => {
    const { key } = await createApiKey(cloud.store, 'acme', 'review', systemClock);
    let opened: MuxStream | undefined;
    onStream = (s) => {
      opened = s;
      s.resume(); // never answers: a UEM that waits for the whole body
    };
    const store = cloud.store as unknown as { read: () => Promise<unknown> };
    const real = store.read.bind(store);
    store.read = async () => {
      await sleep(300); // a slow disk / a reload: any await here is a window
      return real();
    };
    const before = cloud.registry.get(id.connectorId)!.session.activeStreams;
    try {
      const r = await Raw.open(cloud.port);
      r.s.write(`POST /api/v1/relay/acme/t1/race HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 100000\r\n\r\n${'a'.repeat(1000)}`);
      await sleep(50);
      r.s.destroy(); // the client is gone before the relay even looked at the tunnel
    } finally {
      setTimeout(() => (store.read = real), 400);
    }
    await sleep(1500);
    const open = cloud.registry.get(id.connectorId)!.session.activeStreams - before;
    expect({ forwardedToConnector: opened !== undefined, streamsStillOpen1500msLater: open }).to.deep.equal({ forwardedToConnector: false, streamsStillOpen1500msLater: 0 });
  });

  it('a response head Node refuses (bad header value from the connector): 502 upstream_protocol, and the stream is not left open', async () => {
    onStream = (s) => {
      s.resume();
      s.respond({ status: 200, headers: [['x-bad', 'a\nb']] });
      writeForever(s);
    };
    const before = cloud.registry.get(id.connectorId)!.session.activeStreams;
    const r = await Raw.open(cloud.port);
    r.s.write(`GET /api/v1/relay/acme/t1/badhead HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await until(() => /^HTTP\/1\.1 \d+/.test(r.text), 3000, 'an answer');
    expect(r.text).to.match(/^HTTP\/1\.1 502/);
    expect(r.text).to.include('"error":"upstream_protocol"');
    await until(() => cloud.registry.get(id.connectorId)!.session.activeStreams === before, 3000, 'stream retired');
    r.s.destroy();
  });

  it('pipelined: a large first answer and a small second one keep their order and bytes', async () => {
    const size = 3 << 20;
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 13 + (i >> 10)) & 0xff;
    onStream = (s) => {
      s.resume();
      if (s.request.path === '/one') {
        s.respond({ status: 200, headers: [['content-length', String(size)]] });
        let off = 0;
        const pump = (): void => {
          while (off < size) {
            const n = Math.min(50_000, size - off);
            const ok = s.write(data.subarray(off, off + n));
            off += n;
            if (!ok) return void s.once('drain', pump);
          }
          s.end();
        };
        setTimeout(pump, 100);
      } else {
        s.respond({ status: 201, headers: [['content-length', '3']] });
        s.end(Buffer.from('two'));
      }
    };
    const r = await Raw.open(cloud.port);
    r.s.write(`GET /api/v1/relay/acme/t1/one HTTP/1.1\r\nHost: x\r\n${AUTH}\r\nGET /api/v1/relay/acme/t1/two HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
    await until(() => r.buf.subarray(r.buf.length - 3).toString() === 'two', 10_000, 'both');
    const h1 = r.buf.indexOf('\r\n\r\n');
    expect(r.buf.subarray(h1 + 4, h1 + 4 + size).equals(data)).to.equal(true);
    expect(r.buf.subarray(h1 + 4 + size).toString('latin1')).to.match(/^HTTP\/1\.1 201/);
    r.s.destroy();
  });

  it('a request Node cannot parse gets the JSON error (and x-uemlink-error): 431 headers_too_large for an oversized head, 400 bad_request for garbage', async () => {
    const big = await Raw.open(cloud.port);
    big.s.write(`GET /api/v1/relay/acme/t1/x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
    await until(() => big.closed, 3000, 'closed');
    expect(big.text).to.match(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(big.text.slice(big.text.indexOf('\r\n\r\n') + 4))).to.include({ error: 'headers_too_large' });
    const bad = await Raw.open(cloud.port);
    bad.s.write('NOT HTTP AT ALL\r\n\r\n');
    await until(() => bad.closed, 3000, 'closed');
    expect(bad.text).to.match(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(bad.text.slice(bad.text.indexOf('\r\n\r\n') + 4))).to.include({ error: 'bad_request' });
    // As every error of the relay: a client tells ours from the UEM's by it.
    expect(big.text).to.contain('\r\nx-uemlink-error: headers_too_large\r\n');
    expect(bad.text).to.contain('\r\nx-uemlink-error: bad_request\r\n');
  });

  it("a relayed upload may take as long as relay.timeoutSeconds: Node's 300 s request timeout is lifted above it (an upload was cut with 408 at 300 s whatever the relay allowed)", async () => {
    const long = await startInprocCloud({ relayTimeoutMs: 3_600_000 });
    try {
      const server = (long as unknown as { server: { requestTimeout: number } }).server;
      expect(server.requestTimeout).to.be.greaterThan(3_600_000);
    } finally {
      await long.shutdown();
    }
  });

  it("the relay's own 500 carries x-uemlink-error (found in review: without it, it passed for the UEM's)", async () => {
    const { key } = await createApiKey(cloud.store, 'acme', 'review-500', systemClock);
    const store = cloud.store as unknown as { read: () => Promise<unknown> };
    const real = store.read.bind(store);
    store.read = async () => {
      throw new Error('simulated: the state cannot be read');
    };
    let r: Response;
    try {
      r = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/relay/acme/t1/x`, { headers: { authorization: `Bearer ${key}` } });
    } finally {
      store.read = real;
    }
    expect(r.status).to.equal(500);
    expect(r.headers.get('x-uemlink-error')).to.equal('internal');
    expect(await r.json()).to.include({ error: 'internal' });
  });

  it('relay.fetch answers a header fetch itself refuses (CR/LF) with 400 bad_header, not a TypeError (found in review)', async () => {
    const r = await cloud.relay.fetch('acme', 't1', '/x', { headers: [['x-bad', 'a\r\nb']] as [string, string][] });
    expect(r.status).to.equal(400);
    expect(r.headers.get('x-uemlink-error')).to.equal('bad_header');
  });
});
