/**
 * The connector's side of the relay: each stream the cloud opens is one HTTP request for one target.
 * Everything is checked here again, whatever the cloud checked: tenant, target, path under the
 * target's base path, allow list, headers, replays. Then the request goes to the UEM with the
 * credentials only the connector holds, and the answer streams back through the tunnel's flow
 * control. Every request ends: with the UEM's answer, an error answer, or a reset.
 */
import { PassThrough, Transform, type Readable } from 'node:stream';
import type { RelayErrorCode } from '../common/api-codes.js';
import { Cancel } from '../common/cancel.js';
import type { Clock } from '../common/clock.js';
import { Episodes } from '../common/episodes.js';
import { IDEMPOTENT_METHODS, checkRelativePath, forwardableRequestHeaders, forwardableResponseHeaders, isAllowed, overrideProblem, pairsFromRaw, unsupportedTransferCoding } from '../common/http-policy.js';
import type { Logger } from '../common/log.js';
import { redactString } from '../common/redact.js';
import { StreamError } from '../protocol/codes.js';
import type { HeaderList } from '../protocol/messages.js';
import type { MuxStream } from '../protocol/stream.js';
import type { AuditLog } from '../common/audit.js';
import { IdempotencyCache } from './idempotency.js';
import type { Exchange } from './targets/exchange.js';
import { UpstreamError, type Target } from './targets/target.js';

/** Largest request body buffered so an OAuth2 401 can be retried with a fresh token. */
const REPLAY_BUFFER_LIMIT = 1024 * 1024;
const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);

export interface RelayDeps {
  target(id: string): Target | undefined;
  tenant(): string | undefined;
  connectorId(): string | undefined;
  audit: AuditLog;
  logger: Logger;
  clock: Clock;
  idempotency?: IdempotencyCache;
  /** Counts a finished request (metrics). */
  onFinished?(e: { target: string; status: number; bytesIn: number; bytesOut: number; durationMs: number; error?: string }): void;
}

/** Failures before any byte of the request left for the UEM (no connection, no name; TLS refused and no OAuth2 token: below). */
const UNSENT_CAUSES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether the UEM cannot have seen the request: the cloud may then send it through another
 * connector of the target, whatever its method (x-uemlink-unsent).
 */
export function neverSent(e: UpstreamError): boolean {
  return e.unsent || e.code === 'upstream_tls' || e.code === 'upstream_auth' || (e.code === 'upstream_unreachable' && e.nodeCode !== undefined && UNSENT_CAUSES.has(e.nodeCode));
}

/** An answer made by the connector itself (not the UEM): JSON error with a stable code. */
function respondError(s: MuxStream, status: number, code: RelayErrorCode, message: string, unsent = false): void {
  if (s.destroyed || s.response) return;
  // Goes to the cloud and its client: a UEM credential in an upstream error must not ride along.
  const body = Buffer.from(JSON.stringify({ error: code, message: redactString(message) }));
  s.respond({
    status,
    headers: [
      ['content-type', 'application/json'],
      ['content-length', String(body.length)],
      ['x-uemlink-error', code],
      ...(unsent ? ([['x-uemlink-unsent', '1']] as Array<[string, string]>) : []),
    ],
  });
  s.end(body);
}

/**
 * Stops feeding the request body to the exchange and throws the rest away. Once an answer is sent
 * the body may still be arriving: a UEM may answer (a 413, say) without reading it, and undici then
 * drops its copy of the body. Unread, the stream would return no window credit: the cloud's upload
 * would stall and the stream never end.
 */
function discardBody(s: MuxStream): void {
  if (s.readableEnded) return;
  s.unpipe();
  s.resume();
}

/**
 * Collects a small body whole (so it can be replayed); a larger one streams on, prefix first.
 * Rejects when `cancel` fires first: a reset stream's pipe just stops, and nothing else would end
 * the wait.
 */
function collectIfSmall(stream: Readable, limit: number, cancel: Cancel): Promise<Buffer | Readable> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      parts.push(c);
      size += c.length;
      if (size > limit) {
        cleanup();
        stream.pause();
        const pt = new PassThrough();
        for (const p of parts) pt.write(p);
        stream.pipe(pt);
        stream.on('error', (e) => pt.destroy(e));
        resolve(pt);
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(parts));
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const onCancel = (): void => onError(new UpstreamError('cancelled', 499, 'the request was cancelled while its body arrived'));
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      cancel.removeEventListener('abort', onCancel);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    cancel.addEventListener('abort', onCancel);
  });
}

function headerValue(headers: HeaderList, name: string): string | undefined {
  return headers.find(([n]) => n.toLowerCase() === name)?.[1];
}

/** The relay's stream handler, and a way to wait for the requests it is still finishing. */
export interface RelayHandler {
  (s: MuxStream): void;
  /** Resolves once every request handled so far has finished (audit line written), or after `maxMs`. */
  idle(maxMs: number): Promise<void>;
}

export function createRelayHandler(deps: RelayDeps): RelayHandler {
  const idem = deps.idempotency ?? new IdempotencyCache();
  // Per target: a UEM that is down is said once per minute with a count, not once per request.
  const upstream = new Episodes(deps.logger, deps.clock);
  const running = new Set<Promise<void>>();
  const handler = (s: MuxStream): void => {
    const p = handle(s).catch((err: unknown) => {
      deps.logger.error('relay handler failed', { err });
      if (!s.response) respondError(s, 500, 'internal', 'the connector failed to handle the request');
      else s.reset(StreamError.INTERNAL_ERROR, 'internal error');
    });
    running.add(p);
    void p.finally(() => running.delete(p));
  };
  handler.idle = async (maxMs: number): Promise<void> => {
    if (running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...running]), new Promise<void>((r) => (timer = setTimeout(r, maxMs)))]);
    clearTimeout(timer);
  };
  return handler;

  async function handle(s: MuxStream): Promise<void> {
    // Durations on the monotonic clock: a wall-clock step (NTP) gave negative audit durations and a
    // histogram _sum that fell, which rate() reads as a counter reset.
    const started = performance.now();
    const head = s.request;
    const method = head.method.toUpperCase();
    let bytesIn = 0;
    let bytesOut = 0;
    // handle() resolves when the request is finished (audit line written), not when its answer
    // starts streaming: shutdown waits for the requests its drain cut (see RelayHandler.idle).
    let finished!: () => void;
    const over = new Promise<void>((r) => (finished = r));
    const finish = (status: number, error?: string): void => {
      finished();
      const durationMs = Math.round(performance.now() - started);
      deps.audit.record({
        tenant: head.tenant ?? deps.tenant() ?? '',
        target: head.target,
        method,
        path: head.path,
        status,
        bytesIn,
        bytesOut,
        durationMs,
        connectorId: deps.connectorId() ?? '',
        ...(error ? { error } : {}),
        ...(head.idempotencyKey !== undefined ? { requestId: head.idempotencyKey } : {}),
      });
      deps.onFinished?.({ target: head.target, status, bytesIn, bytesOut, durationMs, ...(error ? { error } : {}) });
    };
    const refuse = (status: number, code: RelayErrorCode, message: string): void => {
      s.resume(); // discard any request body
      respondError(s, status, code, message);
      finish(status, code);
    };
    s.on('error', () => {}); // resets are handled through 'close' below

    // RFC 9110 §9.3.8: TRACE must not carry credentials, and a UEM (or a proxy before it) that
    // answers it echoes the request, the injected credentials included, back to the client.
    // CONNECT would make the UEM a tunnel to anywhere. Neither, whatever the allow list says.
    if (method === 'TRACE' || method === 'CONNECT') return refuse(405, 'method_not_allowed', `${method} is never relayed (it would expose the UEM credentials or open a tunnel)`);
    const tenant = deps.tenant();
    if (head.tenant !== undefined && head.tenant !== tenant) return refuse(403, 'wrong_tenant', `this connector serves tenant "${tenant}", not "${head.tenant}"`);
    const target = deps.target(head.target);
    if (!target) return refuse(404, 'unknown_target', `this connector has no target "${head.target}"`);
    const path = checkRelativePath(head.path);
    if (!path.ok) return refuse(400, 'bad_path', `${path.reason}`);
    if (!isAllowed(target.allow, method, path.path)) {
      return refuse(403, 'not_allowed', `${method} ${path.path} is not allowed for target "${target.id}" by the connector's policy`);
    }
    const hdrs = forwardableRequestHeaders(head.headers, target.credentials.headerNames);
    if (!hdrs.ok) return refuse(400, 'bad_header', hdrs.reason);
    const override = overrideProblem(method, hdrs.headers);
    if (override) return refuse(400, 'bad_header', override);
    if (head.idempotencyKey && !IDEMPOTENT_METHODS.has(method) && !idem.claim(head.idempotencyKey)) {
      return refuse(409, 'duplicate_request', 'this request was already delivered to the UEM once; it is not sent again');
    }

    const cancel = new Cancel();
    let done = false;
    // The cloud reset the stream (client went away) before we finished: abort the upstream call.
    s.once('close', () => {
      if (!done) cancel.abort();
    });

    // Without Content-Length, GET/HEAD/OPTIONS/DELETE carry no body unless the cloud flags one of
    // unknown length (the client sent it chunked); anything else streams with chunked encoding.
    const len = headerValue(hdrs.headers, 'content-length');
    const bodiless = len === undefined ? NO_BODY_METHODS.has(method) && !head.body : len === '0';
    let body: Readable | Buffer | null = null;
    if (bodiless) s.resume();
    else {
      // Piped at once (not on first use): a listener added later would miss what already flowed.
      const counted = s.pipe(
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            bytesIn += chunk.length;
            cb(null, chunk);
          },
        }),
      );
      body = counted;
      if (target.credentials.kind === 'oauth2' && (len === undefined || Number(len) <= REPLAY_BUFFER_LIMIT)) {
        try {
          body = await collectIfSmall(counted, REPLAY_BUFFER_LIMIT, cancel);
        } catch (e) {
          done = true;
          if (!cancel.aborted) throw e;
          finish(499, 'cancelled');
          return;
        }
      }
      // Collected bodies go to undici as a Buffer, whose own length it sends: a cloud that ended
      // the body short (or long) of its Content-Length must not make it look whole to the UEM.
      if (Buffer.isBuffer(body) && len !== undefined && body.length !== Number(len)) {
        return refuse(400, 'bad_header', `the request body has ${body.length} bytes but its Content-Length says ${len}`);
      }
    }

    const timeoutMs = Math.min(target.timeoutMs, head.timeoutMs ?? target.timeoutMs);
    let res: Exchange;
    try {
      res = await target.exchange({ method, path: `${path.path}${path.query}`, headers: hdrs.headers, body, signal: cancel, timeoutMs });
    } catch (e) {
      done = true;
      const err = e instanceof UpstreamError ? e : new UpstreamError('upstream_unreachable', 502, (e as Error).message);
      if (err.code === 'cancelled') {
        finish(499, 'cancelled');
        return;
      }
      upstream.failed(target.id, err.code, 'upstream request failed', { target: target.id, code: err.code, reason: err.message, requestId: head.idempotencyKey });
      discardBody(s);
      respondError(s, err.status, err.code, err.message, neverSent(err));
      finish(err.status, err.code);
      return;
    }
    const status = res.statusCode;
    if (s.destroyed) {
      res.abort(new Error('cancelled'));
      done = true;
      finish(499, 'cancelled');
      return;
    }
    const rawHead = pairsFromRaw(res.rawHeaders);
    const coding = unsupportedTransferCoding(rawHead);
    if (coding !== undefined) {
      // undici undoes only the chunking, and Transfer-Encoding is hop-by-hop (not forwarded): the
      // client would get still-coded bytes under a head that says nothing of them (RFC 9112 §6.1).
      res.abort(new Error('unsupported transfer coding'));
      done = true;
      const message = `the UEM answered with Transfer-Encoding "${coding.slice(0, 64)}": only "chunked" can be relayed (a Content-Encoding would pass through untouched)`;
      upstream.failed(target.id, 'upstream_protocol', 'upstream response refused', { target: target.id, code: 'upstream_protocol', transferEncoding: coding.slice(0, 64) });
      discardBody(s);
      respondError(s, 502, 'upstream_protocol', message);
      finish(502, 'upstream_protocol');
      return;
    }
    try {
      s.respond({ status, headers: forwardableResponseHeaders(rawHead, 'uem') });
    } catch (e) {
      // The UEM's headers do not fit in one frame (TUNNEL_FRAME_TOO_LARGE): answer with our own
      // error instead, and let go of the upstream response.
      res.abort(e as Error);
      done = true;
      const message = `the UEM's response headers do not fit through the tunnel (${(e as Error).message})`;
      upstream.failed(target.id, 'upstream_headers_too_large', 'upstream response refused', { target: target.id, code: 'upstream_headers_too_large' });
      discardBody(s);
      respondError(s, 502, 'upstream_headers_too_large', message);
      finish(502, 'upstream_headers_too_large');
      return;
    }
    // Only once the answer is on its way: a UEM that keeps sending what cannot be relayed is one
    // episode, not a failure and a recovery per request.
    upstream.succeeded(target.id, 'upstream reachable again', { target: target.id });
    // The tunnel's flow control is the body's backpressure: a full stream pauses the UEM's answer.
    s.on('drain', () => res.resume());
    res.pipe({
      data(c) {
        bytesOut += c.length;
        return s.write(c);
      },
      end() {
        done = true; // the exchange is over: the stream closing now must not abort anything
        s.end();
        discardBody(s);
        finish(status);
      },
      error() {
        done = true;
        // The client went away (the cloud reset the stream): the exchange was aborted on purpose.
        if (cancel.aborted) {
          finish(499, 'cancelled');
          return;
        }
        // The UEM reset or stalled mid-body: the cloud must see an abort, never a complete answer.
        s.reset(StreamError.INTERNAL_ERROR, 'the UEM ended the response early');
        finish(status, 'upstream_reset');
      },
    });
    await over;
  }
}
