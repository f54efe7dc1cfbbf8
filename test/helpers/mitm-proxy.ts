/**
 * A TLS-inspecting corporate proxy, as some networks have: it accepts CONNECT, presents a certificate
 * for the requested host signed by its own "inspection" CA, and opens its own TLS connection to the
 * real server. The connector must either refuse it (untrusted issuer, named in diagnostics) or, once
 * the admin adds the inspection CA, work through it — tunnel auth does not rely on mutual TLS.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { generateRsaKeyPair, issueCertificate } from '../../src/common/pki.js';

export interface MitmProxy {
  url: string;
  caPem: string;
  connects: number;
  close(): Promise<void>;
}

export async function startMitmProxy(upstreamCa: string): Promise<MitmProxy> {
  const caKeys = generateRsaKeyPair(2048);
  const caPem = issueCertificate({ subject: { CN: 'Corp TLS Inspection CA', O: 'Example Corp' }, publicKeyPem: caKeys.publicKeyPem, signingKeyPem: caKeys.privateKeyPem, days: 365, isCa: true });
  const leafKeys = generateRsaKeyPair(2048);
  const certs = new Map<string, string>();
  const certFor = (host: string): string => {
    let c = certs.get(host);
    if (!c) {
      c = issueCertificate({ subject: { CN: host, O: 'Example Corp' }, publicKeyPem: leafKeys.publicKeyPem, issuerCertPem: caPem, signingKeyPem: caKeys.privateKeyPem, days: 30, serverNames: [host], serverAuth: true });
      certs.set(host, c);
    }
    return c;
  };
  const sockets = new Set<Socket>();
  const state = { connects: 0 };
  const server: Server = createServer((_req, res) => {
    res.writeHead(405);
    res.end();
  });
  server.on('connect', (req, client: Socket, head: Buffer) => {
    state.connects++;
    sockets.add(client);
    const [host, portStr] = (req.url ?? '').split(':');
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) client.unshift(head);
    const inner = new TLSSocket(client, { isServer: true, key: leafKeys.privateKeyPem, cert: certFor(host!) });
    const upstream = tlsConnect({ host: host!, port: Number(portStr), ca: upstreamCa });
    sockets.add(upstream);
    inner.pipe(upstream).pipe(inner);
    const end = (): void => {
      inner.destroy();
      upstream.destroy();
    };
    inner.on('error', end);
    upstream.on('error', end);
    client.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caPem,
    get connects() {
      return state.connects;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
