/**
 * `ANY /api/v1/relay/{tenant}/{target}/{path...}`: the relay over HTTP. The raw request target is
 * parsed here (not Express's decoded path), so what is checked is exactly what is forwarded.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { Cancel } from '../../common/cancel.js';
import { checkRelativePath, forwardableRequestHeaders, forwardableResponseHeaders, pairsFromRaw } from '../../common/http-policy.js';
import type { Logger } from '../../common/log.js';
import { StreamError } from '../../protocol/codes.js';
import { BATCH_BYTES } from '../../protocol/session.js';
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

/** A JSON error without Express (the relay bypasses it, see relayHttp). */
function sendError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: err.code, message: err.message });
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
  return (req, res) => {
    void handle(req, res).catch((e: unknown) => {
      // Errors made by the relay itself carry the same header as those made by the connector.
      if (e instanceof ApiError) return sendError(res, new ApiError(e.status, e.code, e.message, { ...e.headers, 'x-uemlink-error': e.code }));
      if (e instanceof RelayError) return sendError(res, new ApiError(e.status, e.code, e.message, { 'x-uemlink-error': e.code }));
      deps.logger.error('relay failed', { err: e });
      sendError(res, new ApiError(500, 'internal', 'internal error; the cloud log has the details'));
    });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (deps.draining()) throw new ApiError(503, 'draining', 'this relay is shutting down; retry', { 'Retry-After': '1' });
    const parsed = parseRelayUrl(req.url ?? '');
    if (!parsed) throw new ApiError(400, 'bad_path', 'use /api/v1/relay/{tenant}/{target}/{path}');
    const principal = await principalOf(req, deps);
    if (!TENANT_RE.test(parsed.tenant)) throw new ApiError(400, 'bad_path', `"${parsed.tenant.slice(0, 64)}" is not a tenant name`);
    requireTenant(principal, parsed.tenant);
    if (!TARGET_ID_RE.test(parsed.target)) throw new ApiError(400, 'bad_path', `"${parsed.target.slice(0, 64)}" is not a target id`);
    const path = checkRelativePath(parsed.rest);
    if (!path.ok) throw new ApiError(400, 'bad_path', path.reason);
    const headers = forwardableRequestHeaders(pairsFromRaw(req.rawHeaders));
    if (!headers.ok) throw new ApiError(400, 'bad_header', headers.reason);
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && te.split(',').pop()!.trim().toLowerCase() !== 'chunked') {
      // RFC 9112 6.3: a request whose final transfer coding is not chunked cannot be framed.
      res.setHeader('connection', 'close');
      throw new ApiError(400, 'bad_header', 'Transfer-Encoding must end with "chunked"');
    }
    const len = req.headers['content-length'];
    const hasBody = len !== undefined ? len !== '0' : req.headers['transfer-encoding'] !== undefined;
    if (len !== undefined && Number(len) > deps.maxRequestBytes) {
      throw new ApiError(413, 'too_large', `the request body is larger than the relay's limit of ${deps.maxRequestBytes} bytes`);
    }
    const body = hasBody ? new ByteLimit(deps.maxRequestBytes) : null;
    if (body) {
      req.pipe(body);
      req.on('error', (e) => body.destroy(e));
    }
    const cancel = new Cancel();
    // The client went away before the answer was complete: cancel, which resets the stream and
    // makes the connector abort its call to the UEM.
    res.on('close', () => {
      if (!res.writableFinished) cancel.abort();
    });
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
    for (const [n, v] of forwardableResponseHeaders(r.head.headers)) out.push(n, v);
    out.push('x-uemlink-connector', r.connectorId);
    res.writeHead(r.head.status, out);
    // An idle body (the UEM or the tunnel stalled) must not hold the client for ever.
    const idle = setTimeout(onIdle, deps.idleTimeoutMs);
    function onIdle(): void {
      r.body.reset(StreamError.TIMEOUT, 'no data');
      res.destroy();
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
      idle.refresh(); // re-arms the same timer: cheaper than a new one per chunk
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
      clearTimeout(idle);
      res.end();
    });
    r.body.once('error', () => {
      clearTimeout(idle);
      // A stream reset mid-body destroys the response: the client sees an abort, never a
      // truncated body that looks complete.
      res.destroy();
    });
    res.once('close', () => clearTimeout(idle));
  }
}
