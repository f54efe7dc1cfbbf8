/**
 * A target at run time: its trust, credentials, keep-alive connection pool and the one function that
 * sends a request to it (undici's Pool). Errors come back as UpstreamError with the relay's stable
 * codes (upstream_unreachable, upstream_tls, upstream_timeout, upstream_auth, upstream_protocol,
 * upstream_headers_too_large).
 */
import type { Readable } from 'node:stream';
import { Pool, buildConnector, type Dispatcher } from 'undici';
import { Exchange, readableBody } from './exchange.js';
import { Cancel, type CancelSignal } from '../../common/cancel.js';
import type { Clock } from '../../common/clock.js';
import type { UemlinkError } from '../../common/errors.js';
import { joinUnderBase, type AllowRule } from '../../common/http-policy.js';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { certInfo, type CertInfo } from '../../common/pki.js';
import { redactString } from '../../common/redact.js';
import type { HeaderList } from '../../protocol/messages.js';
import { OAuthError, createCredentials, type Credentials } from './auth.js';
import { resolveLocalDefinitions, resolveTarget, type ResolveContext, type ResolvedTarget, type TargetOrigin } from './resolve.js';
import type { CloudTargetDefinition, TargetDefinition } from './schema.js';
import { describeTlsFailure, isTlsError, probePeerCertificate, tlsOptionsFor } from './trust.js';

export type UpstreamErrorCode =
  | 'upstream_unreachable'
  | 'upstream_tls'
  | 'upstream_timeout'
  | 'upstream_busy'
  | 'upstream_auth'
  | 'upstream_protocol'
  | 'upstream_headers_too_large'
  | 'cancelled';

export interface UpstreamErrorDetails {
  /** The certificate the server presented, when TLS verification failed. */
  peerCert?: CertInfo | undefined;
  /** Node's error code underneath (CERT_HAS_EXPIRED, ECONNREFUSED, ...), for diagnostics. */
  nodeCode?: string | undefined;
  /** Known never to have left for the UEM (queued, or no connection): safe to send elsewhere. */
  unsent?: boolean;
}

export class UpstreamError extends Error {
  readonly peerCert: CertInfo | undefined;
  readonly nodeCode: string | undefined;
  readonly unsent: boolean;

  constructor(
    readonly code: UpstreamErrorCode,
    readonly status: number,
    message: string,
    details: UpstreamErrorDetails = {},
  ) {
    super(message);
    this.name = 'UpstreamError';
    this.peerCert = details.peerCert;
    this.nodeCode = details.nodeCode;
    this.unsent = details.unsent ?? false;
  }
}

/**
 * The last health check of a target (status page, readiness, metrics): an HTTP status when the UEM
 * answered, else why not. (`?: undefined` lets readers ask `h.status` or `h.error` of either kind.)
 */
export type TargetHealth = {
  latencyMs: number;
  checkedAt: string;
  /** The server certificate as presented (subject, issuer, expiry). */
  peerCert?: CertInfo;
} & ({ reachable: true; status: number; error?: undefined } | { reachable: false; status?: undefined; error: { code: UpstreamErrorCode; message: string } });

export interface TargetStats {
  inFlight: number;
  requests: number;
  lastStatus?: number;
  lastLatencyMs?: number;
  lastError?: { code: string; message: string; at: string };
}

export interface UpstreamRequest {
  method: string;
  /** Path and query relative to the target's base path (already checked). */
  path: string;
  /** Forwardable headers (already filtered); credentials and Host are added here. */
  headers: HeaderList;
  body: Readable | Buffer | null;
  signal: CancelSignal;
  timeoutMs: number;
  /** Keep the server certificate (DER) on the response as `peerCertDer` (health checks). */
  capturePeerCert?: boolean;
}

/** The UEM's answer: status and head at once, the body still streaming (it must be read or destroyed). */
export interface UpstreamResponse {
  statusCode: number;
  /** Header names and values alternating, as the UEM sent them. */
  rawHeaders: string[];
  body: Readable;
  /** The certificate (DER) of the connection's server, when `capturePeerCert` asked for it. */
  peerCertDer?: Buffer;
}

/** The WWW-Authenticate values of a response (joined), or undefined. */
function challengeOf(raw: string[]): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'www-authenticate') out = out === undefined ? raw[i + 1]! : `${out}, ${raw[i + 1]!}`;
  return out;
}

/** How long an idle keep-alive connection to the UEM is kept when the UEM gives no Keep-Alive hint. */
const KEEP_ALIVE_MS = 10_000;
/** Headers that must not reach undici as they are: it frames the body and handles 100-continue itself. */
const FRAMING_HEADERS = new Set(['content-length', 'expect']);

/**
 * The config file's targets (resolveLocalDefinitions): every target's problem is reported at once,
 * and a target is built only once all of them resolved, so none is left open by a failure.
 */
export function resolveLocalTargets(
  configFile: string,
  defs: readonly TargetDefinition[],
  extra?: (def: TargetDefinition) => Partial<ResolveContext>,
  /** Given (diagnose): a target whose files cannot be read or used is reported here and left out, not thrown. */
  unresolved?: (def: TargetDefinition, err: UemlinkError) => void,
): Target[] {
  const built: Target[] = [];
  try {
    // Building opens pools and TLS contexts: one that throws closes those built before it.
    for (const r of resolveLocalDefinitions(configFile, defs, extra, unresolved)) built.push(new Target(r));
  } catch (e) {
    for (const t of built) t.close();
    throw e;
  }
  return built;
}

export class Target {
  readonly stats: TargetStats = { inFlight: 0, requests: 0 };
  health: TargetHealth | undefined;
  private readonly pool: Pool;
  /** The certificate the UEM presented on the newest connection (health checks show it). */
  private peerCertDer: Buffer | undefined;
  private readonly clock: Clock;
  private readonly host: string;
  private readonly port: number;
  private readonly hostHeader: string;

  readonly id: string;
  readonly baseUrl: URL;
  readonly trust: ResolvedTarget['trust'];
  readonly credentials: Credentials;
  readonly allow: AllowRule[];
  readonly timeoutMs: number;
  readonly maxConcurrent: number;
  readonly healthPath: string | undefined;
  readonly origin: TargetOrigin;
  /**
   * Requests handed to the pool that undici is not done with. The pool can be full only when at
   * least maxConcurrent are, and its stats walk every connection five times (13 µs, ~5 % of the
   * connector's CPU per relayed call at 64 connections, read for each): they are read only then.
   * (A request behind a connection that is still being opened is not "busy" either: the pool opens
   * another, so a deadline that passes is "no connection", not "all connections busy".)
   */
  private handedOver = 0;
  private readonly released = (): void => {
    this.handedOver--;
  };

  /** From resolveTarget (resolve.ts), or Target.resolve, which does both. */
  constructor(r: ResolvedTarget) {
    this.id = r.id;
    this.baseUrl = r.baseUrl;
    this.trust = r.trust;
    this.credentials = createCredentials(r.auth, r.trust, r.oauthHooks, r.clock);
    this.allow = r.allow;
    this.timeoutMs = r.timeoutMs;
    this.maxConcurrent = r.maxConcurrent;
    this.healthPath = r.healthPath;
    this.origin = r.origin;
    this.clock = r.clock;
    this.host = r.baseUrl.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(r.baseUrl.port || 443);
    this.hostHeader = r.baseUrl.host;
    // undici rather than node:https: its HTTP/1.1 client costs about half the CPU per request
    // (docs/performance.md), and the connector's CPU is what limits small-request throughput.
    const tlsConnect = buildConnector({ ...tlsOptionsFor(r.trust, this.host), timeout: r.timeoutMs });
    this.pool = new Pool(r.baseUrl.origin, {
      connections: r.maxConcurrent,
      keepAliveTimeout: KEEP_ALIVE_MS,
      connect: (opts, cb) =>
        tlsConnect(opts, (err, socket) => {
          const raw = err ? undefined : (socket as TLSSocket | null)?.getPeerCertificate?.().raw;
          if (raw) this.peerCertDer = raw;
          if (err) cb(err, null);
          else cb(null, socket!);
        }),
    });
  }

  /** Builds a target from its definition; throws a config error naming file, key and problem. */
  static resolve(def: TargetDefinition | CloudTargetDefinition, ctx: ResolveContext): Target {
    return new Target(resolveTarget(def, ctx));
  }

  /**
   * Sends one request and resolves with the response head, the body still streaming as a Readable
   * (health checks, diagnose, and the cloud's direct route to a UEM: uem/target-fetch.ts). It is
   * exchange() underneath: undici's request() held a request waiting for one of the target's busy
   * connections past its deadline and its cancel until a connection freed up, so a health check or
   * `diagnose` hung while a UEM was saturated.
   */
  async send(r: UpstreamRequest): Promise<UpstreamResponse> {
    const x = await this.exchange(r);
    const out: UpstreamResponse = { statusCode: x.statusCode, rawHeaders: x.rawHeaders, body: readableBody(x) };
    if (r.capturePeerCert && this.peerCertDer) out.peerCertDer = this.peerCertDer;
    return out;
  }

  /**
   * One request, its body handed to a sink (Exchange.pipe) rather than a Readable: the relay's
   * path, which costs less per call (see exchange.ts). With OAuth2, a 401 is retried once with a
   * fresh token when the body can be replayed (a Buffer or none).
   */
  async exchange(r: UpstreamRequest): Promise<Exchange> {
    this.stats.inFlight++;
    this.stats.requests++;
    const started = this.clock.now();
    try {
      let creds = this.credentials.ready() ?? (await this.credentialsFor(r));
      let res = await this.dispatchOnce(r, creds);
      const replayable = r.body === null || Buffer.isBuffer(r.body);
      if (res.statusCode === 401 && replayable && this.credentials.rejected(creds, challengeOf(res.rawHeaders))) {
        res.discard();
        creds = await this.credentialsFor(r);
        res = await this.dispatchOnce(r, creds);
      }
      this.stats.lastStatus = res.statusCode;
      this.stats.lastLatencyMs = this.clock.now() - started;
      return res;
    } catch (e) {
      const err = e instanceof UpstreamError ? e : new UpstreamError('upstream_unreachable', 502, (e as Error).message);
      if (err.code !== 'cancelled') this.stats.lastError = { code: err.code, message: redactString(err.message), at: new Date(this.clock.now()).toISOString() };
      throw err;
    } finally {
      this.stats.inFlight--;
    }
  }

  /**
   * The credentials for one request, waited for no longer than its cancel or deadline: a slow
   * OAuth2 token endpoint held requests past both (a cancelled call was still sent once the token
   * came). The token request itself is shared and goes on for the calls that still want it.
   */
  private credentialsFor(r: UpstreamRequest): Promise<HeaderList> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        r.signal.removeEventListener('abort', onCancel);
        settle();
      };
      const onCancel = (): void => finish(() => reject(new UpstreamError('cancelled', 499, 'cancelled by the client')));
      const timer = this.clock.setTimeout(() => finish(() => reject(new UpstreamError('upstream_timeout', 504, `credentials: the OAuth2 token endpoint gave no token within ${r.timeoutMs} ms`))), r.timeoutMs);
      r.signal.addEventListener('abort', onCancel, { once: true });
      if (r.signal.aborted) return onCancel();
      this.credentialHeaders().then(
        (h) => finish(() => resolve(h)),
        (e: unknown) => finish(() => reject(e)),
      );
    });
  }

  private async credentialHeaders(): Promise<HeaderList> {
    try {
      return await this.credentials.headers();
    } catch (e) {
      if (e instanceof OAuthError) throw new UpstreamError('upstream_auth', 502, `OAuth2: ${e.message}`);
      throw new UpstreamError('upstream_auth', 502, `credentials: ${(e as Error).message}`);
    }
  }

  /** undici's options for one attempt: the request's own headers, the credentials and Host. */
  private dispatchOptions(r: UpstreamRequest, creds: HeaderList): Dispatcher.DispatchOptions {
    const headers: string[] = [];
    // Content-Length goes to undici as the body's length (it checks the body against it).
    let contentLength: string | undefined;
    for (const [n, v] of r.headers) {
      if (!FRAMING_HEADERS.has(n)) headers.push(n, v);
      else if (n === 'content-length') contentLength = v;
    }
    for (const [n, v] of creds) headers.push(n, v);
    headers.push('host', this.hostHeader);
    if (contentLength !== undefined && !Buffer.isBuffer(r.body)) headers.push('content-length', contentLength);
    return {
      method: r.method as 'GET',
      path: joinUnderBase(this.baseUrl.pathname, r.path),
      headers,
      body: r.body,
      headersTimeout: r.timeoutMs,
      bodyTimeout: r.timeoutMs,
    };
  }

  /**
   * Watches the caller's cancel and the deadline for the answer's head (on our clock; after the
   * head, undici's bodyTimeout ends a body that stalls for timeoutMs). `why` tells a deadline from a
   * cancel, whatever error undici reports for the abort.
   */
  private watch(r: UpstreamRequest, stop: (why: 'timeout' | 'cancelled') => void): { why(): 'timeout' | 'cancelled' | undefined; headArrived(): void; over(): void } {
    let why: 'timeout' | 'cancelled' | undefined;
    const halt = (reason: 'timeout' | 'cancelled'): void => {
      if (why) return;
      why = reason;
      stop(reason);
    };
    const onCancel = (): void => halt('cancelled');
    r.signal.addEventListener('abort', onCancel, { once: true });
    let headTimer: ReturnType<Clock['setTimeout']> | undefined = this.clock.setTimeout(() => halt('timeout'), r.timeoutMs);
    const headArrived = (): void => {
      if (headTimer !== undefined) this.clock.clearTimeout(headTimer);
      headTimer = undefined;
    };
    if (r.signal.aborted) halt('cancelled');
    return {
      why: () => why,
      headArrived,
      over: () => {
        headArrived();
        r.signal.removeEventListener('abort', onCancel);
      },
    };
  }

  private dispatchOnce(r: UpstreamRequest, creds: HeaderList): Promise<Exchange> {
    return new Promise((resolve, reject) => {
      const x: Exchange = new Exchange(
        (err) => {
          if (!err) {
            w.headArrived();
            resolve(x);
          } else this.classify(err as NodeJS.ErrnoException, w.why(), r.timeoutMs, x.sent, busyAtDeadline).then(reject, reject);
        },
        () => w.over(),
        this.released,
      );
      // The cancel still aborts while the body streams (over() stops watching once it has ended).
      // Whether it has to wait behind the target's busy connections is read as it is handed over:
      // by its deadline, requests ending at the same moment may have closed theirs.
      const busyAtDeadline = this.poolFull();
      const w = this.watch(r, (why) => x.abort(new Error(why === 'timeout' ? 'no answer before the deadline' : 'cancelled')));
      // Cancelled already: the exchange fails in a microtask (abort() above). Dispatched, it would
      // take a connection (or open one) only for undici to destroy it at once.
      if (w.why() !== undefined) return;
      const opts = this.dispatchOptions(r, creds);
      this.handedOver++;
      this.pool.dispatch(opts, x);
    });
  }

  /** Whether a request handed to the pool now would wait behind the target's busy connections. */
  private poolFull(): boolean {
    if (this.handedOver < this.maxConcurrent) return false;
    const s = this.pool.stats;
    return s.running >= this.maxConcurrent || s.pending > 0;
  }

  private async classify(e: NodeJS.ErrnoException, why: 'timeout' | 'cancelled' | undefined, timeoutMs: number, sent?: boolean, busy = false): Promise<UpstreamError> {
    const where = `${this.baseUrl.host}`;
    if (why === 'cancelled') return new UpstreamError('cancelled', 499, 'cancelled by the client');
    // The deadline passed before the request had a connection: it never left, and saying "the UEM
    // is slow" (504, not retried elsewhere) was wrong. Waiting for one of the target's connections
    // (all maxConcurrent busy) is this connector's queue; otherwise no connection could be made.
    if (why === 'timeout' && sent === false) {
      return busy
        ? new UpstreamError('upstream_busy', 503, `${where}: all ${this.maxConcurrent} connections of this connector stayed busy for ${timeoutMs} ms; the request was not sent`, { nodeCode: 'queued', unsent: true })
        : new UpstreamError('upstream_timeout', 504, `${where}: no connection within ${timeoutMs} ms; the request was not sent`, { nodeCode: 'connect', unsent: true });
    }
    if (why === 'timeout' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') {
      return new UpstreamError('upstream_timeout', 504, `${where}: no answer within ${timeoutMs} ms`, { nodeCode: e.code });
    }
    if (e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'ETIMEDOUT') return new UpstreamError('upstream_timeout', 504, `${where}: no connection within ${timeoutMs} ms`, { nodeCode: e.code, unsent: true });
    if (isTlsError(e)) {
      const cert = await probePeerCertificate(this.host, this.port, this.trust.serverName ?? this.host);
      const subject = cert ? `certificate "${cert.subject}" (issuer "${cert.issuer}", expires ${cert.notAfter})` : 'its certificate';
      return new UpstreamError('upstream_tls', 502, `${where}: ${subject} was rejected: ${describeTlsFailure(e.code)}`, { peerCert: cert, nodeCode: e.code });
    }
    if (e.code === 'UND_ERR_HEADERS_OVERFLOW') return new UpstreamError('upstream_headers_too_large', 502, `${where} sent response headers larger than 16 KiB`, { nodeCode: e.code });
    // undici's parser errors do not always carry an HPE_ code: their name says what they are.
    if (e.name === 'HTTPParserError' || e.code?.startsWith('HPE_') || e.code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || e.code === 'UND_ERR_INFO') {
      const what = e.message.replace(/^Response does not match the HTTP\/1\.1 protocol /, '');
      return new UpstreamError('upstream_protocol', 502, `${where} sent a malformed HTTP response ${what}`, { nodeCode: e.code });
    }
    if (e.code === 'UND_ERR_INVALID_ARG' || e.code === 'UND_ERR_NOT_SUPPORTED' || e.code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
      return new UpstreamError('upstream_protocol', 502, `the request cannot be sent to ${where}: ${e.message}`, { nodeCode: e.code });
    }
    const reasons: Record<string, string> = {
      ECONNREFUSED: 'connection refused',
      ENOTFOUND: 'host name not found (DNS)',
      EAI_AGAIN: 'DNS lookup failed',
      EHOSTUNREACH: 'host unreachable',
      ENETUNREACH: 'network unreachable',
      ECONNRESET: 'connection reset before the answer',
      // undici's name for a connection the UEM closed before answering
      UND_ERR_SOCKET: 'connection reset before the answer',
      UND_ERR_CLOSED: 'connection closed before the answer',
      EPIPE: 'connection closed while sending',
    };
    return new UpstreamError('upstream_unreachable', 502, `${where}: ${reasons[e.code ?? ''] ?? e.message}`, { nodeCode: e.code });
  }

  /**
   * An authenticated GET of healthPath (or the base path) to tell whether the UEM answers, with the
   * certificate it presents. Any HTTP answer means reachable; `status` says whether it liked us.
   */
  async checkHealth(timeoutMs = 10_000): Promise<TargetHealth> {
    const started = this.clock.now();
    let h: TargetHealth;
    try {
      const res = await this.send({ method: 'GET', path: this.healthPath ?? '/', headers: [['accept', 'application/json']], body: null, signal: new Cancel(), timeoutMs, capturePeerCert: true });
      const raw = res.peerCertDer;
      res.body.resume();
      h = { reachable: true, status: res.statusCode, latencyMs: this.clock.now() - started, checkedAt: new Date(this.clock.now()).toISOString() };
      // A resumed TLS session may not expose the certificate again: it is the one seen before.
      if (raw) h.peerCert = certInfo(new X509Certificate(raw));
      else if (this.health?.peerCert) h.peerCert = this.health.peerCert;
    } catch (e) {
      const err = e instanceof UpstreamError ? e : new UpstreamError('upstream_unreachable', 502, (e as Error).message);
      h = { reachable: false, latencyMs: this.clock.now() - started, checkedAt: new Date(this.clock.now()).toISOString(), error: { code: err.code, message: err.message } };
      if (err.peerCert) h.peerCert = err.peerCert;
    }
    this.health = h;
    return h;
  }

  close(): void {
    this.pool.destroy().catch(() => {});
    this.credentials.oauth?.close();
  }
}
