/**
 * The cloud's side of the relay, independent of HTTP: route a request to a connector of the tenant
 * that advertises the target (least busy first), open a stream, send the body, wait for the answer.
 *
 * Retries are decided by what can be proven about an attempt, and each connector is tried once:
 *  - the stream was never accepted (open refused, REFUSED_STREAM, GOAWAY above its id): nothing
 *    reached the connector, so the request moves to another connector — if its body was not used;
 *  - the tunnel dropped before any response byte: only GET/HEAD/OPTIONS are retried, once;
 *  - the connector answered that the UEM never saw the request (`x-uemlink-unsent`: no connection,
 *    none within the deadline, its connections all busy, no DNS name, TLS refused, no OAuth2 token): any method without a body goes to the next
 *    connector, and that connector is tried last for the target for a while (UNSENT_AVOID_MS);
 *  - anything else is reported, never replayed (a POST may have reached the UEM).
 * One deadline covers all attempts: every request ends within the relay timeout, with the answer,
 * an error answer, or an abort.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { RelayErrorCode } from '../../common/api-codes.js';
import type { CancelSignal } from '../../common/cancel.js';
import type { Clock } from '../../common/clock.js';
import { IDEMPOTENT_METHODS } from '../../common/http-policy.js';
import { StreamError, StreamResetError } from '../../protocol/codes.js';
import type { HeaderList, ResponseHead } from '../../protocol/messages.js';
import type { MuxStream } from '../../protocol/stream.js';
import type { LiveSession, SessionRegistry } from '../registry.js';
import type { CloudStore } from '../state.js';

export class RelayError extends Error {
  constructor(
    readonly status: number,
    readonly code: RelayErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RelayError';
  }
}

export interface RelayRequest {
  tenant: string;
  /** Only connectors of this group of the tenant (an integration routed through one site's connectors). */
  group?: string;
  target: string;
  method: string;
  /** Checked path and query, relative to the target. */
  path: string;
  /** Forwardable headers (already filtered). */
  headers: HeaderList;
  /** Null when the request has no body. */
  body: Readable | null;
  /** Aborting cancels the relayed request (and the upstream call on the connector). */
  signal?: CancelSignal;
}

export interface RelayResponse {
  head: ResponseHead;
  body: MuxStream;
  connectorId: string;
  /**
   * The id the connector's audit line and warnings carry for this request (the head's
   * idempotencyKey), given to the client as x-uemlink-request-id.
   */
  requestId: string;
}

export interface RelayOptions {
  registry: SessionRegistry;
  store: CloudStore;
  clock: Clock;
  /** Presence noted but not yet written: a connector that just left may not be in the file yet. */
  book?: { peek(connectorId: string): { targets?: string[] } | undefined };
  /** Longest wait for the response head; the connector is given a little less so it answers first. */
  timeoutMs: number;
}

/** Least in-flight streams first; ties broken at random so equal connectors share load. */
export function pickConnector(candidates: LiveSession[]): LiveSession | undefined {
  let best: LiveSession | undefined;
  let ties = 0;
  for (const c of candidates) {
    if (!best || c.session.activeStreams < best.session.activeStreams) {
      best = c;
      ties = 1;
    } else if (c.session.activeStreams === best.session.activeStreams && Math.random() * ++ties < 1) {
      best = c;
    }
  }
  return best;
}

/** How long a connector that could not reach a target's UEM is tried after the others for it. */
const UNSENT_AVOID_MS = 10_000;

function isUnprocessed(e: unknown): boolean {
  return e instanceof StreamResetError && e.streamError === StreamError.REFUSED_STREAM;
}

export class Relay {
  /** `connectorId \n target` -> until when it is tried last for that target (it could not reach the UEM). */
  private readonly unreachable = new Map<string, number>();

  constructor(private readonly o: RelayOptions) {}

  /**
   * The candidates, those that lately could not reach the target's UEM left out while another
   * remains: least-busy-first favoured them, since their fast error answers kept their streams few.
   */
  private preferred(cands: LiveSession[], target: string): LiveSession[] {
    if (this.unreachable.size === 0) return cands;
    const now = this.o.clock.now();
    const ok = cands.filter((c) => {
      const key = `${c.connectorId}\n${target}`;
      const until = this.unreachable.get(key);
      if (until === undefined) return true;
      if (until <= now) {
        this.unreachable.delete(key);
        return true;
      }
      return false;
    });
    return ok.length > 0 ? ok : cands;
  }

  private candidates(r: RelayRequest, exclude: ReadonlySet<string>): LiveSession[] {
    return this.o.registry
      .list({ tenant: r.tenant })
      .filter((s) => s.session.acceptsStreams && s.targets.includes(r.target) && (r.group === undefined || s.group === r.group) && !exclude.has(s.connectorId));
  }

  /** 404 when no connector of the tenant (and group) ever advertised the target, 503 when none is connected now. */
  private async noRoute(r: RelayRequest): Promise<RelayError> {
    const { tenant, group, target } = r;
    const inGroup = (g: string): boolean => group === undefined || g === group;
    const state = await this.o.store.read();
    const known =
      Object.values(state.connectors).some((c) => c.tenant === tenant && inGroup(c.group) && !c.revokedAt && (this.o.book?.peek(c.id)?.targets ?? c.targets).includes(target)) ||
      this.o.registry.list({ tenant }).some((s) => inGroup(s.group) && s.targets.includes(target));
    const who = group === undefined ? `tenant "${tenant}"` : `group "${group}" of tenant "${tenant}"`;
    if (!known) return new RelayError(404, 'unknown_target', `no connector of ${who} offers a target "${target}"`);
    return new RelayError(503, 'no_connector', `no connector of ${who} serving "${target}" is connected right now`);
  }

  async request(r: RelayRequest): Promise<RelayResponse> {
    const exclude = new Set<string>();
    const idempotencyKey = randomUUID();
    const deadline = this.o.clock.now() + this.o.timeoutMs;
    const idempotent = IDEMPOTENT_METHODS.has(r.method.toUpperCase());
    const bodyUsed = r.body !== null;
    let retriedAfterDrop = false;
    let lastError: RelayError | undefined;
    /** A connector's error answer saying the UEM never saw the request, kept in case no other connector is left. */
    let unsentAnswer: RelayResponse | undefined;
    // Each connector is tried at most once, so this ends.
    for (;;) {
      const live = pickConnector(this.preferred(this.candidates(r, exclude), r.target));
      if (!live) {
        if (unsentAnswer) return unsentAnswer;
        throw lastError ?? (await this.noRoute(r));
      }
      exclude.add(live.connectorId);
      let stream: MuxStream;
      try {
        stream = live.session.openStream({
          method: r.method,
          path: r.path,
          headers: r.headers,
          target: r.target,
          tenant: r.tenant,
          idempotencyKey,
          timeoutMs: Math.max(1000, deadline - this.o.clock.now() - 1000),
          ...(bodyUsed && !r.headers.some(([k]) => k.toLowerCase() === 'content-length') ? { body: true as const } : {}),
        });
      } catch (e) {
        if ((e as { code?: string }).code === 'TUNNEL_FRAME_TOO_LARGE') throw new RelayError(431, 'headers_too_large', (e as Error).message);
        // Refused locally (going away, stream limit): nothing was sent, try another connector.
        lastError = new RelayError(503, 'no_connector', `the connectors serving "${r.target}" are busy or restarting; retry`);
        continue;
      }
      // Errors are reported through exchange() and the body pipeline; a late one must not crash.
      stream.on('error', () => {});
      try {
        const head = await this.exchange(stream, r, Math.max(1, deadline - this.o.clock.now()));
        // RESPONSE and a RESET handled in one pass (one tunnel message, or two in one socket read):
        // the stream failed before our caller could listen to it, and would wait for its idle
        // timer. Answer as for a reset before the head; nothing has been sent to the client yet.
        if (stream.errored) throw stream.errored;
        const answer = { head, body: stream, connectorId: live.connectorId, requestId: idempotencyKey };
        // (502 no connection, 503 all the connector's connections to the UEM busy, 504 none made in time)
        if (head.status >= 502 && head.status <= 504 && !bodyUsed && head.headers.some(([k, v]) => v === '1' && k.toLowerCase() === 'x-uemlink-unsent')) {
          // Entries of connectors gone for good are never looked at again: bounded by a reset.
          if (this.unreachable.size >= 10_000) this.unreachable.clear();
          this.unreachable.set(`${live.connectorId}\n${r.target}`, this.o.clock.now() + UNSENT_AVOID_MS);
          if (this.candidates(r, exclude).length > 0 && !r.signal?.aborted && this.o.clock.now() < deadline) {
            unsentAnswer?.body.destroy();
            unsentAnswer = answer;
            continue;
          }
        }
        unsentAnswer?.body.destroy();
        return answer;
      } catch (e) {
        unsentAnswer?.body.destroy();
        unsentAnswer = undefined;
        if (e instanceof RelayError) throw e;
        const reset = e as StreamResetError;
        const unprocessed = isUnprocessed(e);
        const dropped = reset.streamError === StreamError.TUNNEL_CLOSED && reset.beforeResponse;
        if (unprocessed) lastError = new RelayError(503, 'no_connector', `connector ${live.connectorId} refused the request while going away`);
        else if (dropped) {
          lastError = new RelayError(
            502,
            'connector_lost',
            `the tunnel to connector ${live.connectorId} dropped before the UEM answered${idempotent ? '' : `; a ${r.method} is not retried because it may already have reached the UEM`}`,
          );
        } else lastError = new RelayError(502, 'connector_error', `connector ${live.connectorId} ended the request: ${reset.message}`);
        const canRetry = !bodyUsed && (unprocessed || (dropped && idempotent && !retriedAfterDrop));
        if (dropped) retriedAfterDrop = true;
        if (!canRetry || r.signal?.aborted || this.o.clock.now() >= deadline) throw lastError;
      }
    }
  }

  /** Sends the body and resolves with the response head, or rejects (reset, timeout, abort). */
  private exchange(stream: MuxStream, r: RelayRequest, timeoutMs: number): Promise<ResponseHead> {
    return new Promise<ResponseHead>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        this.o.clock.clearTimeout(timer);
        r.signal?.removeEventListener('abort', onAbort);
        stream.off('error', onError);
        fn();
      };
      const timer = this.o.clock.setTimeout(() => {
        stream.reset(StreamError.TIMEOUT, 'the cloud stopped waiting');
        settle(() => reject(new RelayError(504, 'upstream_timeout', `no answer from the connector within ${this.o.timeoutMs} ms`)));
      }, timeoutMs);
      const onAbort = (): void => {
        stream.reset(StreamError.CANCEL, 'client went away');
        settle(() => reject(new RelayError(499, 'cancelled', 'the client cancelled the request')));
      };
      const onError = (e: Error): void => settle(() => reject(e));
      if (r.signal?.aborted) return onAbort();
      r.signal?.addEventListener('abort', onAbort, { once: true });
      stream.on('error', onError);
      stream.once('response', (head: ResponseHead) => settle(() => resolve(head)));
      if (r.body) {
        r.body.on('error', () => stream.reset(StreamError.CANCEL, 'request body failed'));
        r.body.pipe(stream);
      } else stream.end();
    });
  }
}
