/**
 * The only module that touches the `ws` package: dialling a tunnel, accepting one, and adapting a
 * WebSocket to the session's Transport interface. Compression is off (payloads are mostly already
 * compressed or tiny, and permessage-deflate costs CPU and memory per connection).
 */
import type { Agent } from 'node:http';
import { isIP } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { UemlinkError } from '../common/errors.js';
import { trustContext } from '../common/tls-trust.js';
import type { Transport } from '../protocol/session.js';
import { wsHeaderLength, writeWsHeader } from './ws-frame.js';

export interface TransportHandlers {
  message(data: Buffer): void;
  drain(): void;
  close(code: number, reason: string): void;
}

/**
 * Who frames the messages WsTransport sends with headroom: this end itself, as a server (no mask)
 * or as a client with all-zero masks; or ws (a client with random masks, which change the payload).
 */
export type WsFraming = 'server' | 'zero-mask' | 'ws';

/** ws's private parts the direct write relies on; checked on every use, any surprise falls back to ws.send. */
interface WsInternals {
  _socket?: { write(chunk: Buffer, cb: (err?: Error | null) => void): boolean };
  _sender?: { _state?: unknown; _queue?: unknown[] };
}

/** A WebSocket seen through the session's eyes. Handlers can be swapped (handshake, then session). */
export class WsTransport implements Transport {
  private handlers: TransportHandlers | undefined;
  private closed = false;
  /** Messages (and a close) that arrived before anyone listened: ws may deliver the peer's first
   * message in the same tick as 'open', before the dialler's promise continuation runs. */
  private early: Buffer[] = [];
  private earlyClose: [number, string] | undefined;
  /** Address of the peer as the socket saw it. */
  readonly remoteAddress: string;
  /** The TLS under the WebSocket (wss://), for logs and diagnostics. */
  readonly tls: TlsInfo | undefined;

  /** Messages written straight to the socket with their header in the headroom (for tests). */
  directWrites = 0;

  constructor(
    private readonly ws: WebSocket,
    remoteAddress = '',
    private readonly framing: WsFraming = 'ws',
  ) {
    this.remoteAddress = remoteAddress;
    const sock = (ws as unknown as { _socket?: Partial<TLSSocket> })._socket;
    this.tls = typeof sock?.isSessionReused === 'function' && sock.encrypted ? { protocol: sock.getProtocol?.() ?? 'unknown', resumed: sock.isSessionReused() } : undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.close(4010, 'text messages are not part of the protocol');
        return;
      }
      if (this.handlers) this.handlers.message(data);
      else this.early.push(data);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = true;
      this.dropQueued();
      if (this.handlers) this.handlers.close(code, reason.toString('utf8'));
      else this.earlyClose = [code, reason.toString('utf8')];
    });
    // Errors are followed by 'close'; the close carries what the session needs.
    ws.on('error', () => {});
  }

  setHandlers(h: TransportHandlers): void {
    this.handlers = h;
    while (this.early.length > 0 && this.handlers === h) h.message(this.early.shift()!);
    if (this.earlyClose && this.handlers === h) {
      const [code, reason] = this.earlyClose;
      this.earlyClose = undefined;
      h.close(code, reason);
    }
  }

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  send(message: Buffer, sent?: () => void, headroom = 0): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      sent?.(); // nothing holds it
      return;
    }
    // Called once the socket has taken the bytes (or failed): then the buffer is free.
    const done = sent ? (): void => (sent(), this.afterSend()) : this.afterSend;
    if (this.inFlight || this.queue.length > 0) {
      // Behind a direct write: wait, so that messages keep their order (see writeDirect).
      this.queue.push({ message, headroom, done });
      this.queuedBytes += message.length;
      return;
    }
    this.dispatch(message, headroom, done);
  }

  /** Messages waiting for the direct write in flight, in order. */
  private queue: Array<{ message: Buffer; headroom: number; done: () => void }> = [];
  private queuedBytes = 0;
  /** A direct write has not called back yet. */
  private inFlight = false;

  private dispatch(message: Buffer, headroom: number, done: () => void): void {
    this.inFlight = true;
    const written = (): void => {
      this.inFlight = false;
      done();
      this.dispatchQueued();
    };
    if (headroom > 0 && this.writeDirect(message, headroom, written)) return;
    // ws frames it: one at a time as well, so that a direct write never joins it in the socket's buffer.
    this.ws.send(message, { binary: true }, written);
  }

  /**
   * Writes the frame header into the headroom in front of `message` and header and message to the
   * socket as one buffer. ws would write them as two, and Node's TLS layer joins the buffers of one
   * write into a fresh copy before encrypting: a copy of every byte a transfer sends
   * (docs/performance.md). For the same reason one write at a time (dispatch): writes made while
   * the socket is busy are buffered by the stream and leave together, joined again; the next
   * message waits for this one's callback instead (the socket's own buffer in the kernel keeps the
   * link busy meanwhile). Only while ws's sender has nothing queued (it queues only for compression,
   * off here, and Blobs, never sent), so frames keep their order; otherwise, or if ws's internals
   * are not what this expects, returns false and ws sends the message.
   */
  private writeDirect(message: Buffer, headroom: number, done: () => void): boolean {
    if (this.framing === 'ws') return false;
    const masked = this.framing === 'zero-mask';
    const hl = wsHeaderLength(message.length, masked);
    if (headroom < hl) return false;
    const { _socket: socket, _sender: sender } = this.ws as unknown as WsInternals;
    if (!socket || typeof socket.write !== 'function' || sender?._state !== 0 || !Array.isArray(sender._queue) || sender._queue.length > 0) return false;
    const frame = Buffer.from(message.buffer, message.byteOffset - hl, hl + message.length);
    writeWsHeader(frame, 0, message.length, masked);
    this.directWrites++;
    socket.write(frame, () => done());
    return true;
  }

  /** Hands every waiting message to the socket now, without waiting for the write in flight. */
  private writeQueuedNow(): void {
    const q = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const m of q) this.dispatch(m.message, m.headroom, m.done);
  }

  /** The connection is gone: the waiting messages are dropped and their buffers free. */
  private dropQueued(): void {
    const q = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const m of q) m.done();
  }

  private dispatchQueued(): void {
    while (!this.inFlight && this.queue.length > 0) {
      const m = this.queue.shift()!;
      this.queuedBytes -= m.message.length;
      if (this.ws.readyState === WebSocket.OPEN) this.dispatch(m.message, m.headroom, m.done);
      else m.done(); // dropped with the connection: its buffer is free
    }
  }

  private readonly afterSend = (): void => {
    this.handlers?.drain();
  };

  get bufferedAmount(): number {
    return this.ws.bufferedAmount + this.queuedBytes;
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.CLOSED || this.ws.readyState === WebSocket.CLOSING) return;
    // ws writes the Close frame at once: what waits behind the write in flight (the session's last
    // message, a GOAWAY saying why) goes to the socket first, in order, even if it leaves joined.
    // (A close started by the peer, or by ws on a protocol error, drops it: RFC 6455 lets an
    // endpoint stop sending once a Close is under way.)
    this.writeQueuedNow();
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers the close handshake must not hold the socket for ws's 30 s default.
    // (reason: at most 123 bytes, cut by the caller on a character boundary)
    const t = setTimeout(() => this.ws.terminate(), 2000);
    t.unref();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

export interface TlsInfo {
  /** 'TLSv1.3', 'TLSv1.2' */
  protocol: string;
  /** The session was resumed from a ticket (no certificate exchanged), see TlsSessionCache. */
  resumed: boolean;
}

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
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
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
    ws.once('open', () => {
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
