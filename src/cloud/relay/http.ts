/**
 * `ANY /api/v1/relay/{tenant}/{target}/{path...}`: the relay over HTTP. The raw request target is
 * parsed here (not Express's decoded path), so what is checked is exactly what is forwarded.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { Transform, type TransformCallback } from 'node:stream';
import { isRelayErrorCode } from '../../common/api-codes.js';
import { Cancel } from '../../common/cancel.js';
import { checkRelativePath, forwardableRequestHeaders, forwardableResponseHeaders, overrideProblem, pairsFromRaw } from '../../common/http-policy.js';
import type { Logger } from '../../common/log.js';
import { StreamError } from '../../protocol/codes.js';
import { BATCH_BYTES } from '../../protocol/writer.js';
import { TARGET_ID_RE } from '../../connector/targets/schema.js';
import { TENANT_RE } from '../state.js';
import { ApiError } from '../http-errors.js';
import { principalOf, requireTenant, type PrincipalDeps } from '../principal.js';
import { RelayError, type Relay, type RelayResponse } from './relay.js';

const PREFIX = '/api/v1/relay/';

export interface RelayHttpDeps extends PrincipalDeps {
  relay: Relay;
  logger: Logger;
  maxRequestBytes: number;
  /** Response body idle timeout. */
  idleTimeoutMs: number;
  draining(): boolean;
  /** Each call, once it has ended (metrics, the access log). */
  onFinished?(e: RelayFinished): void;
  /** Responses not yet finished, so a drain can let them reach their clients (CloudServer.shutdown). */
  inflight?: Set<ServerResponse>;
}

/** What the relay learnt about a call while it handled it (gathered only when someone reports calls). */
interface CallFacts {
  /** The tenant and target named in the URL (the caller's claim until `authorized`). */
  tenant?: string;
  target?: string;
  /** The path (and query) relative to the target, as forwarded once checked, as requested before. */
  path?: string;
  authorized: boolean;
  principal?: string;
  connectorId?: string;
  requestId?: string;
}

/** A call as reported when it has ended. */
export interface RelayFinished {
  /** The tenant the call was authorized for; undefined when it was refused before (a metrics label). */
  tenant: string | undefined;
  /** The tenant named in the URL, authorized or not. */
  requestedTenant: string | undefined;
  target: string | undefined;
  method: string;
  path: string | undefined;
  status: number;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  errorCode: string | undefined;
  /** `admin` or `key:<id>`; undefined when the caller was not authenticated. */
  principal: string | undefined;
  connectorId: string | undefined;
  requestId: string | undefined;
  client: string | undefined;
}

/** Passes a body through until it exceeds `limit` bytes, then fails (and remembers why). */
class ByteLimit extends Transform {
  private seen = 0;
  exceeded = false;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) {
      this.exceeded = true;
      cb(new Error('request body too large'));
      return;
    }
    cb(null, chunk);
  }
}

export function parseRelayUrl(raw: string): { tenant: string; target: string; rest: string } | undefined {
  if (!raw.startsWith(PREFIX)) return undefined;
  const after = raw.slice(PREFIX.length);
  const m = /^([^/?#]+)\/([^/?#]+)(.*)$/s.exec(after);
  if (!m) return undefined;
  const rest = m[3]!;
  // ".../target?x" and ".../target" mean the target's base path.
  return { tenant: m[1]!, target: m[2]!, rest: rest === '' || rest.startsWith('?') ? `/${rest}` : rest };
}

/** Is this request for the relay? (Matched on the raw target, before any framework sees it.) */
export function isRelayUrl(url: string): boolean {
  return url.startsWith(PREFIX) || url === PREFIX.slice(0, -1) || url.startsWith(`${PREFIX.slice(0, -1)}?`);
}

/**
 * Ends a response that failed mid-body so that the client cannot take it for a complete one. Over
 * plain TCP the connection is reset: a clean close would end an HTTP/1.0 (close-delimited) body as
 * if whole. Over TLS, destroying sends no close_notify, which TLS clients report as truncation.
 */
function abortResponse(res: ServerResponse): void {
  const sock = res.socket;
  if (sock instanceof Socket && !(sock instanceof TLSSocket) && !sock.destroyed) {
    try {
      sock.resetAndDestroy();
      return;
    } catch {
      // not a TCP handle (a test's pipe, say): destroy as below
    }
  }
  res.destroy();
}

/** The body length a response head promises, when the client will frame the body by it. */
function promisedLength(method: string, status: number, headers: readonly (readonly [string, string])[]): number | undefined {
  if (method === 'HEAD' || status === 204 || status === 304 || status < 200) return undefined;
  for (const [n, v] of headers) if (n === 'content-length') return /^\d{1,15}$/.test(v) ? Number(v) : undefined;
  return undefined;
}

/** Responses that sent 100 Continue (the client's body is on its way, or has come). */
const continued = new WeakSet<ServerResponse>();
/** The x-uemlink-error a response carries (the relay's or the connector's), by response. */
const errorCode = new WeakMap<ServerResponse, string>();

/** A JSON error without Express (the relay bypasses it, see relayHttp). */
function sendError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    abortResponse(res);
    return;
  }
  const body = JSON.stringify({ error: err.code, message: err.message });
  // Refused before 100 Continue: the client may send the body anyway, which this connection
  // would then have to read through; it is closed after the answer instead.
  if (/100-continue/i.test(res.req?.headers.expect ?? '') && !continued.has(res)) res.setHeader('connection', 'close');
  const code = err.headers['x-uemlink-error'];
  if (code !== undefined) errorCode.set(res, code);
  res.writeHead(err.status, { ...err.headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * The relay's request listener. It is called by the HTTP server before Express: routing,
 * middleware and pipeline() cost more than half of the cloud's CPU per small relayed call
 * (docs/performance.md), and the relay wants none of them (no body parsing, no security headers
 * added to the UEM's answers).
 */
export function relayHttp(deps: RelayHttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const inflight = deps.inflight;
  const forget = function (this: ServerResponse): void {
    inflight!.delete(this);
  };
  return (req, res) => {
    const facts: CallFacts | undefined = deps.onFinished ? { authorized: false } : undefined;
    if (facts) watch(req, res, facts, deps.onFinished!);
    if (inflight) {
      inflight.add(res);
      res.once('close', forget);
    }
    void handle(req, res, facts).catch((e: unknown) => {
      // Errors made by the relay itself carry the same header as those made by the connector.
      if (e instanceof ApiError) return sendError(res, new ApiError(e.status, e.code, e.message, { ...e.headers, 'x-uemlink-error': e.code }));
      if (e instanceof RelayError) return sendError(res, new ApiError(e.status, e.code, e.message, { 'x-uemlink-error': e.code }));
      deps.logger.error('relay failed', { err: e });
      // With the header too: without it a client takes the answer for the UEM's own 500.
      sendError(res, new ApiError(500, 'internal', 'internal error; the cloud log has the details', { 'x-uemlink-error': 'internal' }));
    });
  };

  /**
   * Reports the call when its response ends (or is cut: status 0 when nothing was answered).
   * Bytes are what the client's connection carried while the call lasted (in: the request body;
   * out: the response, head included), from the socket's totals, so the body paths need no
   * counting of their own.
   */
  function watch(req: IncomingMessage, res: ServerResponse, facts: CallFacts, report: NonNullable<RelayHttpDeps['onFinished']>): void {
    const started = performance.now();
    const sock = req.socket;
    const readAtStart = sock.bytesRead;
    const writtenAtStart = sock.bytesWritten;
    const client = sock.remoteAddress; // read now: a destroyed socket may no longer say
    res.once('close', () => {
      report({
        tenant: facts.authorized ? facts.tenant : undefined,
        requestedTenant: facts.tenant,
        target: facts.target,
        method: req.method ?? 'GET',
        path: facts.path,
        status: res.headersSent ? res.statusCode : 0,
        bytesIn: Math.max(0, sock.bytesRead - readAtStart),
        bytesOut: Math.max(0, sock.bytesWritten - writtenAtStart),
        durationMs: performance.now() - started,
        errorCode: errorCode.get(res),
        principal: facts.principal,
        connectorId: facts.connectorId,
        requestId: facts.requestId,
        client,
      });
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse, facts: CallFacts | undefined): Promise<void> {
    const cancel = new Cancel();
    // The client went away before the answer was complete: cancel, which resets the stream and
    // makes the connector abort its call to the UEM. Watched from the start: the client may leave
    // while its credential is checked, and the request must then go no further.
    res.on('close', () => {
      if (!res.writableFinished) cancel.abort();
    });
    if (deps.draining()) throw new ApiError(503, 'draining', 'this relay is shutting down; retry', { 'Retry-After': '1' });
    const parsed = parseRelayUrl(req.url ?? '');
    if (!parsed) throw new ApiError(400, 'bad_path', 'use /api/v1/relay/{tenant}/{target}/{path}');
    if (facts) {
      // As requested, bounded: a refused call's URL is the caller's, of any length.
      facts.tenant = parsed.tenant.slice(0, 64);
      facts.target = parsed.target.slice(0, 64);
      facts.path = parsed.rest.slice(0, 2048);
    }
    const principal = await principalOf(req, deps);
    if (facts) facts.principal = principal.kind === 'admin' ? 'admin' : `key:${principal.keyId}`;
    const method = req.method ?? 'GET';
    // Refused here as well as by the connector (relay.ts says why): no TRACE or CONNECT reaches one.
    if (method === 'TRACE' || method === 'CONNECT') throw new ApiError(405, 'method_not_allowed', `${method} is never relayed (it would expose the UEM credentials or open a tunnel)`, { Allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' });
    if (!TENANT_RE.test(parsed.tenant)) throw new ApiError(400, 'bad_path', `"${parsed.tenant.slice(0, 64)}" is not a tenant name`);
    requireTenant(principal, parsed.tenant);
    // Named in metrics only now: a label per name any anonymous caller puts in a URL would grow
    // without bound.
    if (facts) facts.authorized = true;
    if (!TARGET_ID_RE.test(parsed.target)) throw new ApiError(400, 'bad_path', `"${parsed.target.slice(0, 64)}" is not a target id`);
    const path = checkRelativePath(parsed.rest);
    if (!path.ok) throw new ApiError(400, 'bad_path', path.reason);
    if (facts) facts.path = `${path.path}${path.query}`;
    // RFC 9110 §7.6.2: OPTIONS with Max-Forwards 0 is answered by the first recipient, not forwarded.
    if (method === 'OPTIONS' && String(req.headers['max-forwards'] ?? '').trim() === '0') {
      res.writeHead(200, { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS', 'content-length': 0 });
      res.end();
      return;
    }
    const headers = forwardableRequestHeaders(pairsFromRaw(req.rawHeaders));
    if (!headers.ok) throw new ApiError(400, 'bad_header', headers.reason);
    const override = overrideProblem(req.method ?? 'GET', headers.headers);
    if (override) throw new ApiError(400, 'bad_header', override);
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
      res.setHeader('connection', 'close');
      // RFC 9112 6.3: a request whose final transfer coding is not chunked cannot be framed.
      if (te.split(',').pop()!.trim().toLowerCase() !== 'chunked') throw new ApiError(400, 'bad_header', 'Transfer-Encoding must end with "chunked"');
      // RFC 9112 6.1: Node undoes only the chunking; the UEM would get the still-coded bytes as the
      // body, with nothing saying so (Transfer-Encoding is hop-by-hop and not forwarded).
      throw new ApiError(501, 'unsupported_transfer_coding', `Transfer-Encoding "${te.slice(0, 64)}" is not supported: only "chunked"`);
    }
    const len = req.headers['content-length'];
    const hasBody = len !== undefined ? len !== '0' : req.headers['transfer-encoding'] !== undefined;
    if (len !== undefined && Number(len) > deps.maxRequestBytes) {
      throw new ApiError(413, 'too_large', `the request body is larger than the relay's limit of ${deps.maxRequestBytes} bytes`);
    }
    if (cancel.aborted) return; // the client left while we checked: nobody to relay for
    // The head passed every check: now the client may send the body it asked to send.
    if (hasBody && /100-continue/i.test(req.headers.expect ?? '')) {
      res.writeContinue();
      continued.add(res);
    }
    const body = hasBody ? new ByteLimit(deps.maxRequestBytes) : null;
    if (body) {
      req.pipe(body);
      req.on('error', (e) => body.destroy(e));
    }
    let r: RelayResponse;
    try {
      r = await deps.relay.request({
        tenant: parsed.tenant,
        target: parsed.target,
        method: req.method ?? 'GET',
        path: `${path.path}${path.query}`,
        headers: headers.headers,
        body,
        signal: cancel,
      });
    } catch (e) {
      if (body?.exceeded) {
        // The rest of the body is not read: this connection cannot carry another request.
        res.setHeader('connection', 'close');
        throw new ApiError(413, 'too_large', `the request body is larger than the relay's limit of ${deps.maxRequestBytes} bytes`);
      }
      throw e;
    }
    const out: string[] = [];
    const forwarded = forwardableResponseHeaders(r.head.headers);
    for (const [n, v] of forwarded) {
      out.push(n, v);
      if (n === 'x-uemlink-error') errorCode.set(res, isRelayErrorCode(v) ? v : 'other');
    }
    out.push('x-uemlink-connector', r.connectorId, 'x-uemlink-request-id', r.requestId);
    if (facts) {
      facts.connectorId = r.connectorId;
      facts.requestId = r.requestId;
    }
    try {
      res.writeHead(r.head.status, out);
    } catch (e) {
      // A header Node will not write (a control character in a value: only a faulty connector
      // sends one, undici refuses them from the UEM). The stream must not be left open.
      r.body.reset(StreamError.PROTOCOL_ERROR, 'response head refused');
      throw new ApiError(502, 'upstream_protocol', `the connector's response head cannot be sent on: ${(e as Error).message}`);
    }
    // The client frames the body by the Content-Length it was given, and Node does not check what
    // is written against it: a connector that sent more would have the excess read as the next
    // response on the connection, one that sent less would have the next response read as the
    // rest of this body. Either is a broken stream: reset it and abort the response.
    let left = promisedLength(req.method ?? 'GET', r.head.status, forwarded);
    let failed = false;
    const broken = (): void => {
      if (failed) return;
      failed = true;
      clearTimeout(idle);
      r.body.reset(StreamError.PROTOCOL_ERROR, 'the body does not match its Content-Length');
      abortResponse(res);
    };
    // An idle body (the UEM or the tunnel stalled) must not hold the client for ever. Counted from
    // when the response has the connection: a pipelined answer waiting behind one that is still
    // streaming is not idle, and was cut for it.
    let idle: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (!failed) idle = setTimeout(onIdle, deps.idleTimeoutMs);
    };
    if (res.socket) arm();
    else res.once('socket', arm);
    function onIdle(): void {
      r.body.reset(StreamError.TIMEOUT, 'no data');
      abortResponse(res);
    }
    cancel.addEventListener('abort', () => r.body.destroy());
    // Not pipeline() (it allocates an AbortController per call) and not pipe(): chunks that arrive
    // together (one tunnel message carries several DATA frames) leave in one write, corked until
    // the end of this tick, rather than one system call per frame.
    let corked = false;
    const uncork = (): void => {
      corked = false;
      res.uncork();
    };
    r.body.on('data', (chunk: Buffer) => {
      if (left !== undefined && (left -= chunk.length) < 0) return broken();
      idle?.refresh(); // re-arms the same timer: cheaper than a new one per chunk
      if (!corked) {
        corked = true;
        res.cork();
        process.nextTick(uncork);
      }
      // Pause only once a tunnel message's worth is waiting, not at the socket's own mark: over
      // TLS that mark is Node's 16 KiB default (https.Server does not pass `highWaterMark` on
      // to its TLSSocket), which left a download in one TLS write per DATA frame.
      if (!res.write(chunk) && res.writableLength >= BATCH_BYTES) r.body.pause();
    });
    res.on('drain', () => r.body.resume());
    r.body.once('end', () => {
      if (left !== undefined && left > 0) return broken();
      clearTimeout(idle);
      res.end();
    });
    r.body.once('error', () => {
      clearTimeout(idle);
      // A stream reset mid-body aborts the response: the client sees an abort, never a
      // truncated body that looks complete.
      abortResponse(res);
    });
    res.once('close', () => clearTimeout(idle));
  }
}
