/**
 * A small JSON-over-HTTP(S) client for the connector's own calls to the cloud (pairing). It speaks
 * through the same agent (proxy) and trust (extra CA) as the tunnel, and turns network failures into
 * sentences an admin can act on.
 */
import { request as httpRequest, type Agent } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls';

function urlHost(u: URL): string {
  return u.hostname.replace(/^\[|\]$/g, '');
}
import { redactUrl } from '../transport/ws.js';
import { trustContext } from '../common/tls-trust.js';

export interface JsonResponse {
  status: number;
  body: unknown;
}

export interface JsonRequestOptions {
  method: string;
  body?: unknown;
  ca?: string[];
  /**
   * Trust exactly this certificate (PEM) and nothing else, whatever its issuer and names: for the
   * CLI reading the connector's own local page, whose certificate it has from the config (the
   * page may have a CA-issued certificate naming the host, while the CLI dials loopback).
   */
  pinnedCertPem?: string;
  agent?: Agent;
  timeoutMs?: number;
  headers?: Record<string, string>;
}

/** Explains a socket/TLS error code in plain words. */
export function describeNetworkError(err: NodeJS.ErrnoException, target: string): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return `cannot connect to ${target}: connection refused (is the service running and the port right?)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve the host name of ${target} (DNS)`;
    case 'ETIMEDOUT':
    case 'ECONNRESET':
      return `connection to ${target} ${err.code === 'ETIMEDOUT' ? 'timed out' : 'was reset'} (firewall or proxy in the way?)`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `no route to ${target}`;
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return `TLS: the certificate of ${target} is not trusted (${err.code}); add its CA with cloud.caFile`;
    case 'CERT_HAS_EXPIRED':
      return `TLS: the certificate of ${target} has expired`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `TLS: the certificate of ${target} is not valid for that host name`;
    default:
      return `request to ${target} failed: ${err.message}`;
  }
}

export function requestJson(url: string, o: JsonRequestOptions): Promise<JsonResponse> {
  const u = new URL(url);
  const isHttps = u.protocol === 'https:' || u.protocol === 'wss:';
  const body = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
  const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
  if (body) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
  }
  const target = redactUrl(`${u.protocol}//${u.host}`);
  const pinned = o.pinnedCertPem ? new X509Certificate(o.pinnedCertPem).raw : undefined;
  return new Promise((resolve, reject) => {
    const opts = {
      method: o.method,
      hostname: u.hostname.replace(/^\[|\]$/g, ''),
      port: u.port || (isHttps ? 443 : 80),
      path: `${u.pathname}${u.search}`,
      headers,
      timeout: o.timeoutMs ?? 30_000,
      // Through a CONNECT proxy, verify against the URL's host even when it is an IP address.
      ...(o.agent ? { agent: o.agent, checkServerIdentity: (_h: string, cert: PeerCertificate) => checkServerIdentity(urlHost(u), cert) } : {}),
      ...(isHttps && o.ca?.length ? { secureContext: trustContext(o.ca) } : {}),
      // Pinned: the chain and name checks are replaced by comparing the certificate itself (below).
      ...(isHttps && pinned ? { rejectUnauthorized: false } : {}),
    };
    const req = (isHttps ? httpsRequest : httpRequest)(opts, (res) => {
      if (pinned && !samePeer(res.socket as TLSSocket, pinned)) {
        req.destroy(Object.assign(new Error(`the certificate presented at ${target} is not the one configured (health.tls.certFile)`), { code: 'ERR_UEMLINK_PIN_MISMATCH' }));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 1024 * 1024) req.destroy(new Error('response larger than 1 MiB'));
        else chunks.push(c);
      });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          /* not JSON: keep the text */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    if (pinned) {
      // Checked again before anything is sent (the response check above is what the answer rests on).
      req.once('socket', (sock) =>
        sock.once('secureConnect', () => {
          if (!samePeer(sock as TLSSocket, pinned)) req.destroy(Object.assign(new Error(`the certificate presented at ${target} is not the one configured (health.tls.certFile)`), { code: 'ERR_UEMLINK_PIN_MISMATCH' }));
        }),
      );
    }
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => reject(Object.assign(new Error(describeNetworkError(err, target)), { code: err.code })));
    req.end(body);
  });
}

function samePeer(socket: TLSSocket, der: Buffer): boolean {
  const raw = socket.getPeerCertificate?.()?.raw;
  return Buffer.isBuffer(raw) && raw.equals(der);
}
