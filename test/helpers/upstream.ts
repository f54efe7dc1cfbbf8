/**
 * A real HTTPS server standing in for a UEM in relay tests, with a CA generated per test run. It
 * records every request it receives (so tests can prove that something did NOT reach it) and lets
 * each test script the answers.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestPki } from '../../src/common/pki.js';

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bodyBytes: number;
  /** The client went away before the exchange finished. */
  aborted: boolean;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void | Promise<void>;

export interface Upstream {
  server: Server;
  port: number;
  baseUrl: string;
  caPem: string;
  certPem: string;
  seen: Seen[];
  setHandler(h: Handler): void;
  close(): Promise<void>;
}

/** Echoes what arrived as JSON (after reading the whole body). */
export const echo: Handler = async (req, res, seen) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  seen.bodyBytes = body.length;
  const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
  res.end(out);
};

/** Reads the whole body and answers {n, sha} (its length and SHA-256, hex): an upload sink that checks integrity. */
export async function answerWithDigest(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const h = createHash('sha256');
  let n = 0;
  for await (const c of req) {
    h.update(c as Buffer);
    n += (c as Buffer).length;
  }
  res.end(JSON.stringify({ n, sha: h.digest('hex') }));
}

export async function startUpstream(opts: { names?: string[]; pki?: ReturnType<typeof createTestPki>; handler?: Handler } = {}): Promise<Upstream> {
  const pki = opts.pki ?? createTestPki(opts.names ?? ['localhost', '127.0.0.1']);
  let handler: Handler = opts.handler ?? echo;
  const seen: Seen[] = [];
  const server = createServer({ key: pki.keyPem, cert: pki.certPem, keepAliveTimeout: 30_000 }, (req, res) => {
    const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes: 0, aborted: false };
    seen.push(s);
    res.on('close', () => {
      if (!res.writableFinished) s.aborted = true;
    });
    void Promise.resolve(handler(req, res, s)).catch(() => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    baseUrl: `https://127.0.0.1:${port}`,
    caPem: pki.caCertPem,
    certPem: pki.certPem,
    seen,
    setHandler(h) {
      handler = h;
    },
    close() {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
