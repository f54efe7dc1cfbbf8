/**
 * The benchmark backend: a minimal Node HTTPS server (no framework, no logging, nothing recorded per
 * request) with a generated CA, run as its own process by bench/lib.ts. Prints one JSON line
 * {"port", "caPem"} on stdout once it listens.
 *
 *   GET  /small          a ~200-byte JSON body (content-length, keep-alive)
 *   GET  /download?mib=N N MiB of octets, written in 1 MiB chunks with backpressure
 *   POST /upload         a sink: reads the body, answers {"received": bytes}
 *   GET  /slow?ms=N&jitter=J   the small body after N±J ms (in-flight streams for bench:scale)
 *   GET  /stats          {connections, requests}: TLS connections accepted and requests served so far
 */
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createTestPki } from '../src/common/pki.js';

const MiB = 1024 * 1024;
const pki = createTestPki(['localhost', '127.0.0.1']);

const SMALL = Buffer.from(
  JSON.stringify({
    id: 'dev-000042',
    name: 'Android tablet 42',
    platform: 'android',
    os: '14.0',
    compliant: true,
    lastSeen: '2026-01-01T12:00:00.000Z',
    owner: 'user42@example.com',
    tags: ['bench', 'uemlink'],
    serial: 'R58N12345678',
  }),
);
const SMALL_HEAD = { 'content-type': 'application/json', 'content-length': String(SMALL.length) };
const CHUNK = Buffer.alloc(MiB);
for (let i = 0; i < CHUNK.length; i++) CHUNK[i] = (i * 31 + (i >> 10)) & 0xff;

/** TLS connections accepted and requests served (GET /stats, not counted): keep-alive at work? */
const counters = { connections: 0, requests: 0 };

const server = createServer({ key: pki.keyPem, cert: pki.certPem, keepAliveTimeout: 120_000 }, (req, res) => {
  const url = req.url ?? '/';
  if (url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(counters));
    return;
  }
  counters.requests++;
  if (url === '/small') {
    res.writeHead(200, SMALL_HEAD);
    res.end(SMALL);
    return;
  }
  if (url.startsWith('/download')) {
    const mib = Number(new URL(url, 'https://x').searchParams.get('mib') ?? '256');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(mib * MiB) });
    let sent = 0;
    const pump = (): void => {
      while (sent < mib) {
        sent++;
        if (!res.write(CHUNK)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
    return;
  }
  if (url.startsWith('/upload')) {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      const out = JSON.stringify({ received: n });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(out)) });
      res.end(out);
    });
    return;
  }
  if (url.startsWith('/slow')) {
    const q = new URL(url, 'https://x').searchParams;
    const jitter = Number(q.get('jitter') ?? '0');
    const ms = Number(q.get('ms') ?? '1000') + (Math.random() * 2 - 1) * jitter;
    const t = setTimeout(() => {
      res.writeHead(200, SMALL_HEAD);
      res.end(SMALL);
    }, ms);
    res.on('close', () => clearTimeout(t));
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});
server.on('secureConnection', () => counters.connections++);
server.on('clientError', (_e, socket) => socket.destroy());
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port, caPem: pki.caCertPem })}\n`);
});
const quit = (): void => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
