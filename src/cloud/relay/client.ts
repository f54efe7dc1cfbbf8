/**
 * `relay.fetch(tenant, target, path, init)`: the relay for the cloud's own code (the integration
 * engine), with the standard fetch types. It answers exactly what an HTTP client of the relay API
 * would get — relay errors included, as JSON responses — without going through a socket.
 */
import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebStream } from 'node:stream/web';
import type { RelayErrorCode } from '../../common/api-codes.js';
import { checkRelativePath, forwardableRequestHeaders, forwardableResponseHeaders } from '../../common/http-policy.js';
import type { HeaderList } from '../../protocol/messages.js';
import { TARGET_ID_RE } from '../../connector/targets/schema.js';
import { TENANT_RE } from '../state.js';
import { RelayError, type Relay } from './relay.js';
import { StreamError } from '../../protocol/codes.js';

/** Statuses a fetch Response must have no body for (the tunnel carries no 1xx heads). */
const NULL_BODY_STATUS = new Set([204, 205, 304]);

function errorResponse(status: number, code: RelayErrorCode, message: string): Response {
  return new Response(JSON.stringify({ error: code, message }), { status, headers: { 'content-type': 'application/json', 'x-uemlink-error': code } });
}

function toReadable(body: unknown): { stream: Readable | null; length?: number } {
  if (body === undefined || body === null) return { stream: null };
  if (typeof body === 'string' || body instanceof Uint8Array) {
    // Copied, as fetch does: the caller may reuse its bytes once the call returns, and the tunnel
    // frames a written chunk later, by reference (src/protocol/stream.ts).
    const b = Buffer.from(body);
    // Empty: no stream (Content-Length: 0 still goes), so the relay may retry it like any request
    // without a body (a stream, even empty, is a body it cannot replay).
    if (b.length === 0) return { stream: null, length: 0 };
    return { stream: Readable.from([b]), length: b.length };
  }
  if (body instanceof URLSearchParams) return toReadable(body.toString());
  if (typeof (body as ReadableStream).getReader === 'function') return { stream: Readable.fromWeb(body as NodeWebStream) };
  throw new TypeError('relay.fetch: body must be a string, bytes, URLSearchParams or a ReadableStream');
}

export class RelayClient {
  /** `idleMs`: an answer nobody reads for this long is reset (the relay API's timeout for a stalled client). */
  constructor(
    private readonly relay: Relay,
    private readonly idleMs = 0,
  ) {}

  /** `route.group`: only the tenant's connectors of that group may carry the call. */
  async fetch(tenant: string, target: string, path: string, init: RequestInit = {}, route: { group?: string } = {}): Promise<Response> {
    if (!TENANT_RE.test(tenant)) return errorResponse(400, 'bad_path', `"${tenant.slice(0, 64)}" is not a tenant name`);
    if (!TARGET_ID_RE.test(target)) return errorResponse(400, 'bad_path', `"${target.slice(0, 64)}" is not a target id`);
    const checked = checkRelativePath(path);
    if (!checked.ok) return errorResponse(400, 'bad_path', checked.reason);
    const method = (init.method ?? 'GET').toUpperCase();
    const pairs: HeaderList = [];
    try {
      new Headers(init.headers).forEach((v, k) => pairs.push([k, v]));
    } catch (e) {
      // The fetch Headers class refuses CR, LF or NUL itself: answered like the relay's own check.
      return errorResponse(400, 'bad_header', `a header is not valid: ${(e as Error).message}`);
    }
    const { stream, length } = toReadable(init.body);
    if (length !== undefined && !pairs.some(([k]) => k === 'content-length')) pairs.push(['content-length', String(length)]);
    const headers = forwardableRequestHeaders(pairs);
    if (!headers.ok) return errorResponse(400, 'bad_header', headers.reason);
    try {
      const r = await this.relay.request({
        tenant,
        ...(route.group !== undefined ? { group: route.group } : {}),
        target,
        method,
        path: `${checked.path}${checked.query}`,
        headers: headers.headers,
        body: stream,
        ...(init.signal ? { signal: init.signal } : {}),
      });
      const h = new Headers();
      for (const [k, v] of forwardableResponseHeaders(r.head.headers)) h.append(k, v);
      h.set('x-uemlink-connector', r.connectorId);
      if (method === 'HEAD' || NULL_BODY_STATUS.has(r.head.status)) {
        r.body.resume();
        return new Response(null, { status: r.head.status, headers: h });
      }
      const signal = init.signal;
      if (signal) {
        // The listener must go when the body does: integrations pass one long-lived signal to every
        // call of a sync, and a listener left behind keeps its whole stream alive (50,000 calls of
        // an app sync once held ~400 MiB this way).
        const onAbort = (): void => void r.body.destroy();
        signal.addEventListener('abort', onAbort, { once: true });
        r.body.once('close', () => signal.removeEventListener('abort', onAbort));
      }
      const web = Readable.toWeb(r.body) as ReadableStream<Uint8Array>;
      if (this.idleMs > 0) {
        // As the relay API does for a client that stops reading: an answer left unread (a caller
        // that forgot it) held its stream, its window of data and the connector's UEM connection for
        // ever, and once the target's connections were all held, every later call timed out.
        // Watched after toWeb, which pauses the stream while its reader does not read.
        const body = r.body;
        const timer = setTimeout(() => body.reset(StreamError.TIMEOUT, 'the answer was not read within the relay timeout'), this.idleMs);
        timer.unref();
        body.on('data', () => timer.refresh());
        body.once('close', () => clearTimeout(timer));
      }
      return new Response(web, { status: r.head.status, headers: h });
    } catch (e) {
      if (e instanceof RelayError) {
        if (e.code === 'cancelled') throw new DOMException('the request was aborted', 'AbortError');
        return errorResponse(e.status, e.code, e.message);
      }
      throw e;
    }
  }
}
