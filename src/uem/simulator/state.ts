/**
 * What every simulated UEM vendor shares and tests look at: the clock, a log of the requests served,
 * counters, the OAuth tokens handed out (and a way to revoke them all), and the fault hook where later
 * work plugs stalls, resets, slow or huge answers in. Vendor data (devices, groups, tags) lives in
 * the vendor's own module; this file knows nothing about Workspace ONE.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { systemClock, type Clock } from '../../common/clock.js';

export const SIMULATOR_VENDORS = ['workspace-one', 'ivanti-epmm', 'hexnode'] as const;
export type SimulatorVendor = (typeof SIMULATOR_VENDORS)[number];

/** The secrets a client needs; the same set for every vendor (unused ones are simply ignored). */
export interface SimulatorCredentials {
  username: string;
  password: string;
  /** Workspace ONE's REST API key, sent as the `aw-tenant-code` header. */
  apiKey: string;
  clientId: string;
  clientSecret: string;
  /** For the test-only control endpoint (/_simulator/faults), sent as `x-simulator-control`. */
  controlToken: string;
}

/** How the request presented itself (the scheme of its Authorization header), not whether it passed. */
export type AuthScheme = 'none' | 'basic' | 'bearer' | 'other';

export interface RequestRecord {
  /** ISO-8601 UTC, from the simulator's clock. */
  time: string;
  method: string;
  /** Path without the query string, as the client sent it (case kept: `/API/...` vs `/api/...`). */
  path: string;
  query: string;
  /** 0 when the connection ended before a response was complete (faults, client aborts). */
  status: number;
  auth: AuthScheme;
  correlationId?: string;
  durationMs: number;
}

export interface SimulatorCounters {
  /** Requests that reached the app (every path, including the token endpoint). */
  requests: number;
  tokensIssued: number;
  /** Token requests refused (invalid_client, unsupported_grant_type, invalid_request). */
  tokenRequestsRejected: number;
  /** API requests refused with 401 or 403. */
  authFailures: number;
  /** API requests refused with 429. */
  rateLimited: number;
  /** Calls to revokeAllTokens(). */
  revocations: number;
}

export type TokenCheck = 'valid' | 'expired' | 'unknown';

/**
 * Runs before any vendor route. Call `next()` to let the request through, or take over the
 * response / socket (stall, reset, slow drip, oversized body). Set on `state.fault`; undefined = no fault.
 */
export type FaultHook = (req: Request, res: Response, next: NextFunction) => void;

/**
 * Fault modes, switchable while the simulator runs (tests set `state.faults`; the control endpoint
 * does the same over HTTP). Generic ones are applied by shared middleware before any vendor route;
 * `truncatePages` and `flapDevices` are applied by each vendor's device listing.
 */
export interface FaultConfig {
  /** Added delay before every API answer. */
  latencyMs?: number;
  /** Every API request answers 500 (or this many next requests, when a number). */
  serverErrors?: boolean | number;
  /** Every API request answers 429 with this Retry-After (seconds) (or this many next requests). */
  rateLimit?: { retryAfterSeconds: number; count?: number };
  /** Device list pages are cut short: fewer items than the page says (the client must notice). */
  truncatePages?: boolean;
  /** Each device listing omits this share (0..1) of the devices, a different share each call. */
  flapDevices?: number;
  /** Credentials stop working: basic auth and tokens are refused with 401 until cleared. */
  authExpired?: boolean;
}

export interface SimulatorStateOptions {
  clock?: Clock;
  /** Oldest entries are dropped beyond this (benchmarks make millions of requests). Default 10 000. */
  maxRequestLog?: number;
}

interface IssuedToken {
  clientId: string;
  expiresAt: number;
}

export class SimulatorState {
  readonly clock: Clock;
  readonly requests: RequestRecord[] = [];
  readonly counters: SimulatorCounters = { requests: 0, tokensIssued: 0, tokenRequestsRejected: 0, authFailures: 0, rateLimited: 0, revocations: 0 };
  /** See FaultHook. Tests may set and clear it while the server runs. */
  fault: FaultHook | undefined;
  /** See FaultConfig. Empty = healthy. */
  faults: FaultConfig = {};
  private readonly maxRequestLog: number;
  /** Keyed by a hash of the token, so a heap dump of the simulator does not hold usable tokens. */
  private readonly tokens = new Map<string, IssuedToken>();
  private readonly listeners: Array<(r: RequestRecord) => void> = [];

  constructor(opts: SimulatorStateOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.maxRequestLog = opts.maxRequestLog ?? 10_000;
  }

  /** Called for every finished (or aborted) request, after it is logged. */
  onRequest(fn: (r: RequestRecord) => void): void {
    this.listeners.push(fn);
  }

  recordRequest(r: RequestRecord): void {
    this.requests.push(r);
    if (this.requests.length > this.maxRequestLog) this.requests.splice(0, this.requests.length - this.maxRequestLog);
    for (const fn of this.listeners) fn(r);
  }

  clearRequestLog(): void {
    this.requests.length = 0;
  }

  /** Issues an opaque bearer token valid for `ttlSeconds` from now (simulator clock). */
  issueToken(clientId: string, ttlSeconds: number): { accessToken: string; expiresAt: number } {
    const accessToken = randomBytes(32).toString('base64url');
    const expiresAt = this.clock.now() + ttlSeconds * 1000;
    this.tokens.set(tokenKey(accessToken), { clientId, expiresAt });
    this.counters.tokensIssued++;
    return { accessToken, expiresAt };
  }

  checkToken(accessToken: string): TokenCheck {
    const t = this.tokens.get(tokenKey(accessToken));
    if (!t) return 'unknown';
    if (this.clock.now() >= t.expiresAt) return 'expired';
    return 'valid';
  }

  /** Forgets every token issued so far: a client holding one gets 401 on its next call. Returns how many. */
  revokeAllTokens(): number {
    const n = this.tokens.size;
    this.tokens.clear();
    this.counters.revocations++;
    return n;
  }

  /** Tokens issued and not yet expired. */
  activeTokenCount(): number {
    const now = this.clock.now();
    let n = 0;
    for (const t of this.tokens.values()) if (t.expiresAt > now) n++;
    return n;
  }
}

function tokenKey(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** Compares secrets without leaking, through timing, how many leading characters matched. */
export function secretEquals(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function authSchemeOf(header: string | undefined): AuthScheme {
  if (!header) return 'none';
  const scheme = header.trim().split(/\s+/, 1)[0]!.toLowerCase();
  if (scheme === 'basic') return 'basic';
  if (scheme === 'bearer') return 'bearer';
  return 'other';
}

/** Records every request in `state` when its response finishes or its connection closes first. */
export function requestRecorder(state: SimulatorState): RequestHandler {
  return (req, res, next) => {
    state.counters.requests++;
    const started = state.clock.now();
    const hrStart = process.hrtime.bigint();
    const url = req.originalUrl;
    const q = url.indexOf('?');
    let done = false;
    const record = (status: number): void => {
      if (done) return;
      done = true;
      const r: RequestRecord = {
        time: new Date(started).toISOString(),
        method: req.method,
        path: q >= 0 ? url.slice(0, q) : url,
        query: q >= 0 ? url.slice(q + 1) : '',
        status,
        auth: authSchemeOf(req.headers.authorization),
        durationMs: Number(process.hrtime.bigint() - hrStart) / 1e6,
      };
      const cid = res.getHeader('x-correlation-id');
      if (typeof cid === 'string') r.correlationId = cid;
      state.recordRequest(r);
    };
    res.once('finish', () => record(res.statusCode));
    res.once('close', () => record(res.writableFinished ? res.statusCode : 0));
    next();
  };
}

/** The place fault modes plug in: runs `state.fault` when set, else passes the request on. */
export function faultHook(state: SimulatorState): RequestHandler {
  return (req, res, next) => {
    const f = state.fault;
    if (f) f(req, res, next);
    else next();
  };
}
