/**
 * A UemFetch over a Target: the cloud's direct route to a UEM (no connector) uses the same trust,
 * credentials, pooling, timeouts and error classification as the connector does on premises, and
 * answers errors the way the relay does (status + JSON + x-uemlink-error), so adapters see one shape.
 */
import { Readable } from 'node:stream';
import { checkRelativePath, forwardableRequestHeaders, forwardableResponseHeaders, pairsFromRaw } from '../common/http-policy.js';
import type { HeaderList } from '../protocol/messages.js';
import { UpstreamError, type Target } from '../connector/targets/target.js';
import type { UemFetch } from './adapter.js';

function errorResponse(status: number, code: string, message: string): Response {
  return new Response(JSON.stringify({ error: code, message }), { status, headers: { 'content-type': 'application/json', 'x-uemlink-error': code } });
}

export function targetFetch(target: Target): UemFetch {
  return async (path, init = {}) => {
    const checked = checkRelativePath(path);
    if (!checked.ok) return errorResponse(400, 'bad_path', checked.reason);
    const pairs: HeaderList = [];
    new Headers(init.headers).forEach((v, k) => pairs.push([k, v]));
    let body: Buffer | null = null;
    if (init.body !== undefined && init.body !== null) {
      if (typeof init.body === 'string') body = Buffer.from(init.body);
      else if (init.body instanceof Uint8Array) body = Buffer.from(init.body);
      else if (init.body instanceof URLSearchParams) body = Buffer.from(init.body.toString());
      else throw new TypeError('targetFetch: body must be a string, bytes or URLSearchParams');
    }
    const headers = forwardableRequestHeaders(pairs, target.credentials.headerNames);
    if (!headers.ok) return errorResponse(400, 'bad_header', headers.reason);
    try {
      const res = await target.send({
        method: (init.method ?? 'GET').toUpperCase(),
        path: `${checked.path}${checked.query}`,
        headers: headers.headers,
        body,
        signal: init.signal ?? new AbortController().signal,
        timeoutMs: target.timeoutMs,
      });
      const h = new Headers();
      for (const [k, v] of forwardableResponseHeaders(pairsFromRaw(res.rawHeaders), 'uem')) h.append(k, v);
      const status = res.statusCode;
      if ([101, 103, 204, 205, 304].includes(status) || init.method === 'HEAD') {
        res.body.resume();
        return new Response(null, { status, headers: h });
      }
      return new Response(Readable.toWeb(res.body) as ReadableStream<Uint8Array>, { status, headers: h });
    } catch (e) {
      if (e instanceof UpstreamError) {
        if (e.code === 'cancelled') throw new DOMException('the request was aborted', 'AbortError');
        return errorResponse(e.status, e.code, e.message);
      }
      throw e;
    }
  };
}
