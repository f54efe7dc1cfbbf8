/**
 * The tunnel's WebSocket: dialling one and accepting one. With ws-transport.ts (a WebSocket adapted
 * to the session's Transport interface) the only modules that touch the `ws` package. Compression
 * is off (payloads are mostly already compressed or tiny, and permessage-deflate costs CPU and
 * memory per connection).
 */
import type { Agent } from 'node:http';
import { isIP } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { isLoopbackHost } from '../common/config.js';
import { UemlinkError } from '../common/errors.js';
import { trustContext } from '../common/tls-trust.js';
import { WsTransport } from './ws-transport.js';

export { WsTransport, type TlsInfo, type TransportHandlers, type WsFraming } from './ws-transport.js';

/**
 * The TLS session of one tunnel client, so that a redial resumes it (a TLS 1.3 ticket) instead of
 * making a full handshake: the cloud skips its certificate signature (RSA: ~10 % of its CPU in a
 * reconnect storm of 10,000, docs/performance.md) and the connector the certificate chain check.
 * Node does not check a resumed session's certificate again, so a session is offered only to the
 * host and port that issued it and under the same trust (the same SecureContext: trustContext gives
 * one per set of extra CAs, so a changed cloud.caFile means a full handshake).
 *
 * Not Node's https.Agent, which keeps sessions too but forgets one on every failed connection: the
 * refused dials and resets while a cloud restarts would leave nothing to resume once it is back.
 * Here only a handshake that fails for a TLS reason (an alert, a certificate it refuses) forgets
 * it. Not used through a proxy: the proxy's agent makes the TLS connection there.
 */
export class TlsSessionCache {
  private last: { endpoint: string; trust: unknown; session: Buffer } | undefined;

  /** ws's `createConnection`: tls.connect as ws calls it, offering the last session. */
  readonly connect = (options: ConnectionOptions & { path?: string }): TLSSocket => {
    const servername = options.servername ?? (options.host && !isIP(options.host) ? options.host : '');
    const endpoint = JSON.stringify([options.host ?? '', options.port ?? '', servername]);
    const trust = options.secureContext;
    const last = this.last;
    const session = last && last.endpoint === endpoint && last.trust === trust ? last.session : undefined;
    const socket = tlsConnect({ ...options, path: undefined, servername, ...(session ? { session } : {}) } as ConnectionOptions);
    socket.on('session', (s: Buffer) => (this.last = { endpoint, trust, session: s }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // A handshake refused over TLS may have been refused over the session offered: do not offer
      // it again. Network errors (the cloud restarting, a balancer without backends) say nothing
      // about it.
      if (session && this.last?.session === session && !NETWORK_ERRORS.has(err.code ?? '')) this.last = undefined;
    });
    return socket;
  };
}

/** Errors of the connection, not of TLS ("socket disconnected before secure TLS connection" is ECONNRESET). */
const NETWORK_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND']);

export interface DialOptions {
  /** Extra trusted CA certificates (PEM) on top of the system ones, e.g. a re-signing proxy's. */
  ca?: string[];
  agent?: Agent;
  /** The proxy the agent goes through (no credentials), named in errors. */
  proxy?: string;
  headers?: Record<string, string>;
  /** Resume TLS sessions across dials (wss:// without a proxy). */
  tlsSessions?: TlsSessionCache;
  handshakeTimeoutMs: number;
  maxPayload: number;
  /** Aborts the dial. */
  signal?: AbortSignal;
}

/** Why a dial failed, with what a supervisor needs to decide the next wait. */
export class DialError extends UemlinkError {
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, opts: { status?: number; retryAfterMs?: number; cause?: unknown; permanent?: boolean } = {}) {
    super(opts.status === 503 || opts.status === 429 ? 'TUNNEL_OVERLOADED' : 'TUNNEL_DIAL_FAILED', message, {
      cause: opts.cause,
      retryable: !opts.permanent,
    });
    this.name = 'DialError';
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

function parseRetryAfter(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (!s) return undefined;
  const secs = Number(s);
  if (Number.isFinite(secs) && secs >= 0) return Math.min(secs, 3600) * 1000;
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.min(at - Date.now(), 3_600_000));
}

/**
 * RFC 6455 masking guards intermediaries that do not understand WebSocket from attacker-chosen
 * bytes (hostile browser script). Inside TLS no intermediary parses the bytes, and on loopback there
 * is none, while masking costs a copy and an XOR of every byte on both sides (60 % of the CPU of a
 * large download, docs/performance.md). There ws skips both when the mask is all zeros; a plain
 * ws:// tunnel across a network keeps random masks.
 */
export function maskingIsMoot(url: string): boolean {
  const u = new URL(url);
  if (u.protocol === 'wss:') return true;
  return isLoopbackHost(u.hostname);
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** Opens a WebSocket; resolves once it is open, rejects with a DialError that says why not. */
export function dialWebSocket(url: string, opts: DialOptions): Promise<WsTransport> {
  return new Promise((resolve, reject) => {
    const wsOpts: WebSocket.ClientOptions = {
      perMessageDeflate: false,
      handshakeTimeout: opts.handshakeTimeoutMs,
      maxPayload: opts.maxPayload,
      followRedirects: false,
      headers: opts.headers ?? {},
    };
    if (maskingIsMoot(url)) wsOpts.generateMask = zeroMask;
    if (opts.agent) {
      wsOpts.agent = opts.agent;
      // Through a CONNECT proxy the TLS layer does not learn the real host when it is an IP
      // address (https-proxy-agent drops it); verify against the URL's host explicitly.
      const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
      // (ws's typings describe a different callback; the option is handed to tls.connect as is.)
      (wsOpts as Record<string, unknown>).checkServerIdentity = (_h: string, cert: PeerCertificate) => checkServerIdentity(host, cert);
    } else if (opts.tlsSessions && new URL(url).protocol === 'wss:') {
      // (typed for net's createConnection; ws hands it the TLS options for a wss:// URL)
      (wsOpts as Record<string, unknown>).createConnection = opts.tlsSessions.connect;
    }
    if (opts.ca && opts.ca.length > 0) (wsOpts as Record<string, unknown>).secureContext = trustContext(opts.ca);
    let settled = false;
    const ws = new WebSocket(url, wsOpts);
    // The proxy's answer to CONNECT, once it came (https-proxy-agent tells its agent).
    let connectStatus: number | undefined;
    const onProxyConnect = (res: { statusCode?: number }): void => {
      connectStatus = res.statusCode ?? 0;
    };
    const agentEvents = opts.agent as unknown as { once?: (e: string, f: typeof onProxyConnect) => void; off?: (e: string, f: typeof onProxyConnect) => void } | undefined;
    agentEvents?.once?.('proxyConnect', onProxyConnect);
    // One deadline for the whole dial: ws's handshakeTimeout starts only once a socket is handed
    // over, which through a proxy is after the proxy answered CONNECT (one that never answers kept
    // the connector "connecting" for ever, and stop() waited on it); and over TLS Node re-armed it
    // once, doubling it.
    const giveUp = (err: DialError): void => {
      if (settled) return;
      settled = true;
      reject(err);
      ws.terminate();
    };
    const deadline = setTimeout(() => {
      giveUp(
        new DialError(
          opts.proxy && connectStatus === undefined
            ? `the proxy ${opts.proxy} did not answer CONNECT within ${opts.handshakeTimeoutMs} ms`
            : `no answer from ${redactUrl(url)}${opts.proxy ? ` through the proxy ${opts.proxy}` : ''} within ${opts.handshakeTimeoutMs} ms (timed out)`,
        ),
      );
    }, opts.handshakeTimeoutMs);
    const onAbort = (): void => giveUp(new DialError('the dial was stopped'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      clearTimeout(deadline);
      opts.signal?.removeEventListener('abort', onAbort);
      agentEvents?.off?.('proxyConnect', onProxyConnect);
    };
    ws.once('open', done);
    ws.once('close', done);
    ws.once('error', done);
    ws.once('unexpected-response', done);
    if (opts.signal?.aborted) onAbort();
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      const sock = (ws as unknown as { _socket?: { remoteAddress?: string } })._socket;
      resolve(new WsTransport(ws, sock?.remoteAddress ?? '', wsOpts.generateMask === zeroMask ? 'zero-mask' : 'ws'));
    });
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      settled = true;
      const status = res.statusCode ?? 0;
      const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 2048) body += c;
      });
      res.on('end', () => {
        let detail = '';
        try {
          const j = JSON.parse(body) as { message?: unknown };
          if (typeof j.message === 'string') detail = `: ${j.message}`;
        } catch {
          /* not JSON: status alone */
        }
        // Nothing an HTTP status says is permanent: a 404 may be a typo in cloudUrl, or a load
        // balancer between deploys. Retry with backoff; the status page shows the error.
        const o: { status: number; retryAfterMs?: number; permanent: boolean } = { status, permanent: false };
        if (retryAfterMs !== undefined) o.retryAfterMs = retryAfterMs;
        // Some proxies (tinyproxy) answer a failed CONNECT authentication with 401 rather than 407;
        // the cloud itself never answers an upgrade with either.
        const proxyAuth = status === 407 || (status === 401 && opts.proxy !== undefined);
        // The proxy's own refusal of CONNECT is not the cloud's answer (its 503 is no overload of
        // the cloud, its 404 no missing tunnel endpoint).
        const proxyRefused = opts.proxy !== undefined && connectStatus !== undefined && connectStatus !== 200;
        if (proxyRefused && !proxyAuth) {
          reject(new DialError(`the proxy ${opts.proxy} answered CONNECT with HTTP ${status}: it cannot reach the cloud, or does not allow its address or port`, { status: 0, permanent: false }));
          ws.terminate();
          return;
        }
        const msg = proxyAuth
            ? `the proxy ${opts.proxy ?? ''} refused the credentials (HTTP ${status}${status === 407 ? ' Proxy Authentication Required' : ''}): check the user and password in proxy.url / proxy.passwordFile`
            : status === 404
              ? `the cloud has no tunnel endpoint at ${redactUrl(url)} (HTTP 404${detail}): check cloudUrl`
              : `tunnel upgrade refused with HTTP ${status}${detail}${opts.proxy && !detail ? ` (through the proxy ${opts.proxy}: it may block the cloud's address or port)` : ''}`;
        reject(new DialError(msg, o));
        ws.terminate();
      });
      res.on('error', () => {});
    });
    ws.once('error', (e: Error) => {
      let err = e;
      if (settled) return;
      settled = true;
      const code = (err as NodeJS.ErrnoException).code;
      const words: Record<string, string> = { ECONNREFUSED: 'connection refused', ENOTFOUND: 'host name not found (DNS)', EAI_AGAIN: 'DNS lookup failed', ETIMEDOUT: 'timed out', EHOSTUNREACH: 'host unreachable', ECONNRESET: 'connection reset' };
      if (code && words[code]) err = new Error(`${words[code]} (${code})`);
      const viaProxy = opts.proxy && (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH');
      reject(new DialError(viaProxy ? `cannot reach the proxy ${opts.proxy}: ${err.message}` : `cannot reach ${redactUrl(url)}${opts.proxy ? ` through the proxy ${opts.proxy}` : ''}: ${err.message}`, { cause: err }));
    });
    ws.once('close', () => {
      if (settled) return;
      settled = true;
      reject(new DialError(`connection to ${redactUrl(url)} closed during the handshake`));
    });
  });
}

/** URLs may carry credentials (user:pass@); never print them. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = u.username ? '***' : '';
      u.password = u.password ? '***' : '';
    }
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

/** A WebSocket server bound to no port: the HTTP server hands it the upgrades it accepts. */
export function createTunnelServer(maxPayload: number): {
  accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<WsTransport>;
  close(): void;
} {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload, clientTracking: false });
  return {
    accept(req, socket, head) {
      return new Promise((resolve, reject) => {
        // ws answers a malformed upgrade (no Sec-WebSocket-Key, a wrong version, not a GET) with
        // 400/405 and destroys the socket without calling back: without this, the caller would wait
        // for ever (and storm control would count the upgrade as in progress for good).
        const refused = (): void => reject(new Error('the WebSocket upgrade was malformed, or the client left before it completed'));
        socket.once('close', refused);
        wss.handleUpgrade(req, socket, head, (ws) => {
          socket.off('close', refused);
          resolve(new WsTransport(ws, req.socket.remoteAddress ?? '', 'server'));
        });
      });
    },
    close() {
      wss.close();
    },
  };
}
