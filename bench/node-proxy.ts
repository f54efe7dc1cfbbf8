/**
 * `npm run bench -- --node-proxy`'s fourth way: the simplest Node HTTPS reverse proxy, one process,
 * client -> this (HTTPS) -> backend (HTTPS, an undici keep-alive pool). It is the floor for any
 * relay written in Node on the same machine: one Node hop where uemlink has two and a tunnel between
 * them, and none of a relay's work (no authentication, policy, credentials, audit, metrics or
 * timeouts). Whatever this cannot reach against ssh -R, no Node relay can.
 *
 * It runs with the daemons' V8 settings (NODE_FLAGS on its command line from bench/lib.ts, and
 * tuneV8() here), so that what differs from uemlink is the design, not the tuning. undici's
 * `stream()` writes the answer into the response directly (no intermediate Readable): undici's own
 * recommendation for a proxy.
 *
 *   node --initial-old-space-size=128 dist/bench/node-proxy.js <dir with tls.crt, tls.key> <backend URL> <backend CA file>
 *
 * Prints one JSON line {"port"} on stdout once it listens.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Pool, type Dispatcher } from 'undici';
import { tuneV8 } from '../src/common/v8-tuning.js';

tuneV8();

const [dir, backendUrl, caFile] = process.argv.slice(2);
if (!dir || !backendUrl || !caFile) {
  process.stderr.write('usage: node-proxy.js <dir with tls.crt and tls.key> <backend URL> <backend CA file>\n');
  process.exit(2);
}

/** RFC 9110 7.6.1: connection-specific fields a proxy must not forward (and Host, set per hop). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

function forwardable(h: Record<string, unknown>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if ((typeof v === 'string' || Array.isArray(v)) && !HOP_BY_HOP.has(k)) out[k] = v as string | string[];
  return out;
}

const pool = new Pool(backendUrl, { connect: { ca: readFileSync(caFile, 'utf8') }, keepAliveTimeout: 120_000 });

const server = createServer({ cert: readFileSync(join(dir, 'tls.crt')), key: readFileSync(join(dir, 'tls.key')), keepAliveTimeout: 120_000 }, (req, res) => {
  const len = req.headers['content-length'];
  const hasBody = len !== undefined ? len !== '0' : req.headers['transfer-encoding'] !== undefined;
  pool
    .stream({ path: req.url ?? '/', method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: forwardable(req.headers), body: hasBody ? req : null }, ({ statusCode, headers }) => {
      res.writeHead(statusCode, forwardable(headers));
      return res;
    })
    .catch((e: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = JSON.stringify({ error: 'bad_gateway', message: (e as Error).message });
      res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void pool.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
