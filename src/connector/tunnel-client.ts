/**
 * One tunnel connection from the connector's side: dial (outbound only), wait for the cloud's HELLO,
 * answer with our HELLO and the signature over the cloud's nonce, wait for WELCOME, then run a
 * MuxSession. Failures come back as TunnelError, which tells the supervisor whether to retry and how
 * long the cloud asked it to wait.
 */
import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { Agent } from 'node:http';
import type { Clock } from '../common/clock.js';
import { UemlinkError, type ErrorCode } from '../common/errors.js';
import { GoAwayCodes, goAwayCodeForClose } from '../protocol/codes.js';
import { decodeMessage, encodeFrame, jsonPayload } from '../protocol/frame.js';
import {
  CloudHelloSchema,
  WelcomeSchema,
  authMessage,
  negotiateVersion,
  parseGoAway,
  parseJson,
  PROTOCOL_MAX,
  PROTOCOL_MIN,
  type CloudHello,
  type ConnectorHello,
  type Limits,
  type Welcome,
} from '../protocol/messages.js';
import { MuxSession, attachTransport, closeReason, maxMessageSize, type SessionClose } from '../protocol/session.js';
import { DialError, dialWebSocket, type TlsInfo, type TlsSessionCache, type WsTransport } from '../transport/ws.js';

export class TunnelError extends UemlinkError {
  readonly retryAfterMs: number | undefined;
  constructor(code: ErrorCode, message: string, opts: { permanent?: boolean; retryAfterMs?: number; cause?: unknown } = {}) {
    super(code, message, { retryable: !opts.permanent, cause: opts.cause });
    this.name = 'TunnelError';
    this.retryAfterMs = opts.retryAfterMs;
  }
}

export interface TunnelClientOptions {
  url: string;
  connectorId: string;
  /** The connector's key as a KeyObject (see privateKeyOf in daemon.ts: signing with a PEM parses it). */
  privateKey: KeyObject;
  hostname: string;
  software: string;
  targets: string[];
  limits: Limits;
  heartbeatMs: number;
  handshakeTimeoutMs: number;
  /** Aborts the dial (the supervisor stopping). */
  signal?: AbortSignal;
  ca?: string[];
  agent?: Agent;
  /** The proxy in use (no credentials), for messages. */
  proxy?: string;
  /** The supervisor's TLS sessions, resumed on redial (not for probes: they check the full chain). */
  tlsSessions?: TlsSessionCache;
  /** A diagnostic probe: authenticate, get WELCOME, and close without replacing the live session. */
  probe?: boolean;
  /**
   * Called with the new session before it reads any frame. The cloud may open a stream in the same
   * read as WELCOME (a request waiting for this connector): listeners attached only after
   * connectTunnel resolves would miss it, and the stream would be refused.
   */
  prepareSession?: (session: MuxSession) => void;
  clock: Clock;
}

export interface Connected {
  session: MuxSession;
  welcome: Welcome;
  cloud: CloudHello;
  remoteAddress: string;
  tls: TlsInfo | undefined;
  /**
   * Settles when the session closes, watched from its creation: it may close before the caller
   * gets to listen (a refused frame in the same read as WELCOME).
   */
  closed?: Promise<SessionClose>;
}

export async function connectTunnel(o: TunnelClientOptions): Promise<Connected> {
  let t: WsTransport;
  try {
    t = await dialWebSocket(o.url, {
      handshakeTimeoutMs: o.handshakeTimeoutMs,
      maxPayload: maxMessageSize(o.limits),
      headers: { 'user-agent': o.software },
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.agent ? { agent: o.agent } : {}),
      ...(o.proxy ? { proxy: o.proxy } : {}),
      ...(o.tlsSessions ? { tlsSessions: o.tlsSessions } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
  } catch (e) {
    if (e instanceof DialError) {
      throw new TunnelError(e.code, e.message, {
        permanent: !e.retryable,
        ...(e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}),
        cause: e,
      });
    }
    throw e;
  }
  return handshake(t, o);
}

function handshake(t: WsTransport, o: TunnelClientOptions): Promise<Connected> {
  return new Promise<Connected>((resolve, reject) => {
    let cloud: CloudHello | undefined;
    let settled = false;
    const fail = (err: TunnelError, close?: number): void => {
      if (settled) return;
      settled = true;
      o.clock.clearTimeout(timer);
      if (close !== undefined) t.close(close, closeReason(err.message));
      else t.terminate();
      reject(err);
    };
    const timer = o.clock.setTimeout(
      () => fail(new TunnelError('TUNNEL_HANDSHAKE_TIMEOUT', `the cloud did not complete the handshake within ${o.handshakeTimeoutMs} ms`)),
      o.handshakeTimeoutMs,
    );
    t.setHandlers({
      message: (m) => {
        if (settled) return;
        try {
          for (const f of decodeMessage(m, o.limits.maxFrameSize)) {
            if (f.kind === 'hello' && !cloud) {
              cloud = parseJson(CloudHelloSchema, f.json, 'cloud HELLO');
              sendHello(t, o, cloud);
            } else if (f.kind === 'goaway') {
              const g = parseGoAway(f.json);
              const c = GoAwayCodes[g.code];
              return fail(
                new TunnelError(c.error, `the cloud refused the tunnel: ${g.message}`, {
                  permanent: c.permanent,
                  ...(g.retryAfterMs !== undefined ? { retryAfterMs: g.retryAfterMs } : {}),
                }),
              );
            } else if (f.kind === 'welcome' && cloud) {
              const welcome = parseJson(WelcomeSchema, f.json, 'WELCOME');
              if (welcome.connectorId !== o.connectorId) throw new Error(`WELCOME for ${welcome.connectorId}, not for us`);
              settled = true;
              o.clock.clearTimeout(timer);
              const session = new MuxSession({
                role: 'connector',
                transport: t,
                local: o.limits,
                remote: cloud.limits,
                heartbeatMs: o.heartbeatMs,
                clock: o.clock,
                version: negotiateVersion(cloud.protocol) ?? PROTOCOL_MIN, // as sent in our HELLO
              });
              const closed = new Promise<SessionClose>((done) => session.once('close', done));
              o.prepareSession?.(session);
              attachTransport(session, t);
              resolve({ session, welcome, cloud, remoteAddress: t.remoteAddress, tls: t.tls, closed });
              return;
            } else {
              throw new Error(`unexpected ${f.kind.toUpperCase()} frame during the handshake`);
            }
          }
        } catch (e) {
          if (e instanceof TunnelError) return fail(e);
          return fail(new TunnelError('TUNNEL_PROTOCOL_ERROR', `handshake failed: ${(e as Error).message}`), GoAwayCodes.PROTOCOL_ERROR.close);
        }
      },
      drain: () => {},
      close: (code, reason) => {
        const g = goAwayCodeForClose(code);
        const c = g ? GoAwayCodes[g] : undefined;
        fail(new TunnelError(c?.error ?? 'TUNNEL_CLOSED', `the cloud closed the tunnel during the handshake (${code}${reason ? `: ${reason}` : ''})`, { permanent: c?.permanent ?? false }));
      },
    });
  });
}

function sendHello(t: WsTransport, o: TunnelClientOptions, cloud: CloudHello): void {
  const version = negotiateVersion(cloud.protocol);
  if (version === undefined) {
    const older = cloud.protocol.max < PROTOCOL_MIN;
    throw new TunnelError(
      'TUNNEL_UNSUPPORTED_VERSION',
      `the cloud speaks protocol ${cloud.protocol.min}..${cloud.protocol.max}, this connector ${PROTOCOL_MIN}..${PROTOCOL_MAX}: upgrade the ${older ? 'cloud' : 'connector'}`,
      { retryAfterMs: 300_000 },
    );
  }
  const hello: ConnectorHello = {
    protocol: version,
    software: o.software,
    hostname: o.hostname,
    connectorId: o.connectorId,
    limits: o.limits,
    heartbeatMs: o.heartbeatMs,
    targets: o.targets,
  };
  if (o.probe) hello.probe = true;
  const helloBytes = jsonPayload(hello);
  const nonce = Buffer.from(cloud.nonce, 'base64url');
  const signature = cryptoSign('sha256', authMessage(nonce, helloBytes), o.privateKey).toString('base64url');
  t.send(
    Buffer.concat([encodeFrame({ kind: 'hello', json: helloBytes }), encodeFrame({ kind: 'auth', json: jsonPayload({ alg: 'rsa-sha256', signature }) })]),
  );
}
