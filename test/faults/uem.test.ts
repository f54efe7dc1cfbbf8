/**
 * A misbehaving UEM, under load: a raw TLS server of the test's own (so HTTP can be malformed, late,
 * cut or reset at the byte) answers half the requests, the healthy UEM the other half. Each fault
 * must end its requests with a clear error (or an abort mid-body) in time, and never disturb the
 * requests to the healthy target.
 */
import { expect } from 'chai';
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, createSecureContext } from 'node:tls';
import { createTestPki } from '../../src/common/pki.js';
import { freePort, sleep } from '../helpers/procs.js';
import { RELAY_TIMEOUT_MS, startLab, type Lab, type ReqSpec } from './lab.js';

interface RawUem {
  port: number;
  caPem: string;
  /** Requests seen per behaviour. */
  seen: Map<string, number>;
  close(): Promise<void>;
}

/** Writes `text` one byte every `everyMs` until done or the socket closes. */
function dribble(s: TLSSocket, text: string, everyMs: number): void {
  let i = 0;
  const t = setInterval(() => {
    if (s.destroyed || i >= text.length) {
      clearInterval(t);
      return;
    }
    s.write(text[i++]!);
  }, everyMs);
  s.once('close', () => clearInterval(t));
}

async function startRawUem(): Promise<RawUem> {
  const pki = createTestPki(['localhost', '127.0.0.1']);
  const ctx = createSecureContext({ key: pki.keyPem, cert: pki.certPem });
  const seen = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => {});
    const s = new TLSSocket(raw, { isServer: true, secureContext: ctx });
    s.on('error', () => {});
    let head = '';
    let handled = false;
    s.on('data', (d: Buffer) => {
      if (handled) return;
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      handled = true;
      const path = /^[A-Z]+ (\S+) /.exec(head)?.[1] ?? '/';
      const what = path.split('?')[0]!.slice(1);
      seen.set(what, (seen.get(what) ?? 0) + 1);
      const partial = Buffer.alloc(1000, 0x62);
      switch (what) {
        case 'stall-head':
          return; // reads the request, never answers
        case 'stall-body':
          s.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\nx-fault-len: 100000\r\n\r\n');
          s.write(partial);
          return; // …and nothing more
        case 'reset-body':
          s.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\nx-fault-len: 100000\r\n\r\n');
          s.write(partial);
          setTimeout(() => raw.resetAndDestroy(), 50);
          return;
        case 'fin-body':
          // Chunked, ended (TLS close_notify + FIN) before the terminating chunk.
          s.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nx-fault-len: 100000\r\n\r\n');
          s.write(`${partial.length.toString(16)}\r\n`);
          s.write(partial);
          s.write('\r\n');
          setTimeout(() => s.end(), 50);
          return;
        case 'slow-head':
          // Slow loris: the head, one byte every 300 ms (about 20 s in all).
          dribble(s, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nx-fault-len: 2\r\n\r\nok', 300);
          return;
        case 'slow-body':
          // Slow but steady: the head at once, then 12 bytes one every 250 ms (3 s: always some data
          // within the 3 s idle timeout). This one is answered, slowly and completely.
          s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nx-fault-len: 12\r\nConnection: close\r\n\r\n');
          dribble(s, 'slow-answer!', 250);
          return;
        case 'huge-head': {
          const lines = Array.from({ length: 40 }, (_, i) => `x-filler-${i}: ${'h'.repeat(1000)}\r\n`).join('');
          s.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${lines}Content-Length: 2\r\n\r\nok`);
          return;
        }
        case 'malformed':
          s.end('HTTP/1.1 2OO BANANA\r\nContent-Length: yes\r\n\r\n<html>not http</html>');
          return;
        default:
          s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-fault-len: 2\r\nConnection: close\r\n\r\nok');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    caPem: pki.caCertPem,
    seen,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe('faults: the UEM misbehaves (raw TLS server, under load)', function () {
  this.timeout(90_000);
  let lab: Lab;
  let raw: RawUem;

  before(async function () {
    this.timeout(60_000);
    raw = await startRawUem();
    const closed = await freePort(); // nothing listens there: connection refused
    lab = await startLab({
      targets: () => [
        { id: 'raw', baseUrl: `https://127.0.0.1:${raw.port}`, auth: { type: 'none' }, tls: { ca: raw.caPem }, timeoutMs: 3000 },
        { id: 'refused', baseUrl: `https://127.0.0.1:${closed}`, auth: { type: 'none' }, tls: { ca: raw.caPem }, timeoutMs: 3000 },
      ],
    });
  });
  after(async () => {
    await lab?.stop();
    await raw?.close();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && lab) process.stderr.write(lab.logs());
  });

  /** Half the requests to the faulty path (GETs and POSTs), half the default mix on the healthy UEM. */
  function half(faultPath: string): (n: number) => ReqSpec {
    return (n) => {
      if (n % 2 === 1) return { ...lab.mix(n >> 1), tag: 'healthy' };
      return { method: n % 4 === 0 ? 'POST' : 'GET', path: faultPath, tag: 'fault' };
    };
  }

  const cases: Array<{ name: string; path: string; expect: string[]; forMs?: number }> = [
    { name: 'UEM refuses connections', path: 'acme/refused/x', expect: ['upstream_unreachable'] },
    { name: 'UEM stalls before headers', path: 'acme/raw/stall-head', expect: ['upstream_timeout'] },
    { name: 'UEM stalls mid-body', path: 'acme/raw/stall-body', expect: ['aborted'] },
    // On a loaded machine the head and the reset 50 ms later can reach the cloud in one tunnel
    // message: it then answers 502 connector_error before any body byte, also never a short 200.
    { name: 'UEM resets mid-body (RST)', path: 'acme/raw/reset-body', expect: ['aborted', 'connector_error'] },
    { name: 'UEM ends mid-body (FIN, chunked)', path: 'acme/raw/fin-body', expect: ['aborted'] },
    { name: 'UEM slow loris (head 1 byte/300 ms)', path: 'acme/raw/slow-head', expect: ['upstream_timeout'] },
    { name: 'UEM slow body (1 byte/250 ms)', path: 'acme/raw/slow-body', expect: ['ok'] },
    { name: 'UEM response head over the limit (40 KB)', path: 'acme/raw/huge-head', expect: ['upstream_headers_too_large'] },
    { name: 'UEM malformed HTTP', path: 'acme/raw/malformed', expect: ['upstream_protocol'] },
  ];

  for (const c of cases) {
    it(`${c.name}: ${c.expect.join(' or ')}, in time; the healthy target is not disturbed`, async () => {
      const r = await lab.scenario(c.name, {
        pick: half(c.path),
        // A mid-body failure destroys the client's connection: if the answer's head had not left
        // the cloud yet, the client sees the connection close with no answer at all (`net:*`,
        // "socket hang up"), which is the same abort.
        allowed: [...c.expect.filter((x) => x !== 'ok'), ...(c.expect.includes('aborted') ? ['net:*'] : [])],
        warmupMs: 200,
        afterMs: 0,
        recover: false, // the tunnel is not at fault: the healthy target's requests are checked below
        fault: () => sleep(c.forMs ?? 4000),
      });
      const faulty = r.outcomes.filter((o) => o.spec.tag === 'fault');
      const healthy = r.outcomes.filter((o) => o.spec.tag === 'healthy');
      expect(faulty.length, 'requests to the faulty UEM').to.be.greaterThan(2);
      for (const o of faulty) expect(o.kind === 'net' && c.expect.includes('aborted') ? 'aborted' : o.code, `${o.spec.method} ${o.spec.path}`).to.be.oneOf(c.expect);
      expect(healthy.filter((o) => o.kind !== 'ok').map((o) => o.code), 'healthy-target requests that failed').to.deep.equal([]);
      expect(healthy.length, 'healthy-target requests answered').to.be.greaterThan(2);
      // Every request ended within the relay timeout (+ the connector's 3 s + slack), not just "not hung".
      const slowest = Math.max(...faulty.map((o) => o.endedAt - o.startedAt));
      r.t.notes.push(`slowest faulty request ${slowest} ms`);
      expect(slowest).to.be.below(RELAY_TIMEOUT_MS + 2000);
    });
  }
});
