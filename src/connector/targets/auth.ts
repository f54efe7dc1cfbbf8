/**
 * Credentials the connector injects into requests to a UEM. They live only here, on premises: the
 * cloud never sends or sees them (and any header of the same name the cloud sends is dropped).
 */
import { Agent, request as httpsRequest } from 'node:https';
import { systemClock, type Clock } from '../../common/clock.js';
import type { HeaderList } from '../../protocol/messages.js';
import { describeTlsFailure, isTlsError, tlsOptionsFor, type TrustConfig } from './trust.js';

export type ResolvedAuth =
  | { type: 'basic'; username: string; password: string; apiKey?: string; apiKeyHeader: string }
  | {
      type: 'oauth2';
      tokenUrl: string;
      clientId: string;
      clientSecret: string;
      scope?: string;
      audience?: string;
      clientAuth: 'body' | 'basic';
      apiKey?: string;
      apiKeyHeader: string;
    }
  | { type: 'apiKey'; header: string; value: string; prefix: string }
  | { type: 'none' };

/** Why an OAuth2 token could not be obtained, in the categories an admin acts on differently. */
export type OAuthFailure = 'unreachable' | 'tls' | 'rejected' | 'bad_response' | 'timeout';

export class OAuthError extends Error {
  constructor(
    readonly failure: OAuthFailure,
    message: string,
    /** The OAuth error code from the endpoint, e.g. invalid_client. */
    readonly oauthError?: string,
  ) {
    super(message);
    this.name = 'OAuthError';
  }
}

export interface Credentials {
  readonly kind: ResolvedAuth['type'];
  /** Lower-case names of the headers this provider sets (the cloud's copies are dropped). */
  readonly headerNames: ReadonlySet<string>;
  /** Headers to add to one upstream request. */
  headers(): Promise<HeaderList>;
  /**
   * The same headers when they are known without waiting (fixed credentials, an OAuth2 token still
   * fresh in the cache), else undefined: the relay's path skips two promise hops per call with it.
   */
  ready(): HeaderList | undefined;
  /**
   * The upstream answered 401 to a request made with `used` (and `challenge`, its WWW-Authenticate).
   * Returns whether a single retry with fresh credentials can help (OAuth: the token may have been
   * revoked or expired early).
   */
  rejected(used: HeaderList, challenge?: string): boolean;
  /** The OAuth2 client, for status and metrics (oauth2 only). */
  readonly oauth?: OAuthClient;
}

function basicHeader(user: string, pass: string): string {
  return `Basic ${Buffer.from(`${user}:${pass}`, 'utf8').toString('base64')}`;
}

/** Credentials whose headers never change: known at once, and a 401 cannot be helped by a retry. */
function fixedCredentials(kind: ResolvedAuth['type'], h: HeaderList): Credentials {
  return { kind, headerNames: new Set(h.map(([n]) => n)), headers: async () => h, ready: () => h, rejected: () => false };
}

export function createCredentials(auth: ResolvedAuth, trust: TrustConfig, hooks: OAuthHooks = {}, clock: Clock = systemClock): Credentials {
  switch (auth.type) {
    case 'none':
      return fixedCredentials('none', []);
    case 'apiKey':
      return fixedCredentials('apiKey', [[auth.header.toLowerCase(), `${auth.prefix}${auth.value}`]]);
    case 'basic': {
      const h: HeaderList = [['authorization', basicHeader(auth.username, auth.password)]];
      if (auth.apiKey) h.push([auth.apiKeyHeader.toLowerCase(), auth.apiKey]);
      return fixedCredentials('basic', h);
    }
    case 'oauth2': {
      const client = new OAuthClient(auth, { caPems: trust.caPems, pins: [] }, clock, hooks);
      const extra: HeaderList = auth.apiKey ? [[auth.apiKeyHeader.toLowerCase(), auth.apiKey]] : [];
      const names = new Set(['authorization', ...extra.map(([n]) => n)]);
      return {
        kind: 'oauth2',
        headerNames: names,
        oauth: client,
        headers: async () => [['authorization', `Bearer ${await client.token()}`], ...extra],
        ready: () => {
          const t = client.cachedToken();
          return t === undefined ? undefined : [['authorization', `Bearer ${t}`], ...extra];
        },
        rejected: (used, challenge) => {
          // RFC 6750 §3.1: insufficient_scope says the token is fine and lacks a right; another
          // token from the same client would not have it either.
          if (challenge !== undefined && /\berror\s*=\s*"?insufficient_scope/i.test(challenge)) return false;
          const bearer = used.find(([n]) => n === 'authorization')?.[1];
          return bearer !== undefined && client.invalidate(bearer.replace(/^Bearer /, ''));
        },
      };
    }
  }
}

/** At most one token dropped for a UEM 401 per this window (invalidate). */
export const DROP_WINDOW_MS = 5_000;

export interface OAuthHooks {
  /** Called for every token request: ok or the failure category. */
  onTokenRequest?(outcome: 'ok' | OAuthFailure): void;
}

interface CachedToken {
  token: string;
  /** When it was asked for (a clock that reads earlier than this has been set back). */
  obtainedAt: number;
  /** When to stop using it (before the server's expiry, to absorb clock skew and latency). */
  refreshAt: number;
}

/**
 * OAuth2 client-credentials with a cache and single flight: many concurrent requests share one token
 * request; the token is reused until shortly before it expires; a token the UEM rejects is dropped so
 * the next request fetches a fresh one. After a failure, requests within a second share that failure
 * instead of hammering a broken endpoint.
 */
export class OAuthClient {
  private cached: CachedToken | undefined;
  /** When a token was last dropped because the UEM answered 401 (invalidate). */
  private lastDropAt: number | undefined;
  private inflight: Promise<string> | undefined;
  private lastFailure: { at: number; error: OAuthError } | undefined;
  private readonly agent: Agent;
  private _requests = 0;

  constructor(
    private readonly cfg: Extract<ResolvedAuth, { type: 'oauth2' }>,
    private readonly trust: TrustConfig,
    private readonly clock: Clock,
    private readonly hooks: OAuthHooks,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: 4 });
  }

  /** Token requests made so far. */
  get requests(): number {
    return this._requests;
  }

  /** The cached token while it is fresh, without asking for one. */
  cachedToken(): string | undefined {
    return this.fresh(this.clock.now()) ? this.cached!.token : undefined;
  }

  /**
   * Whether the cached token may be used at `now`. A clock set back (NTP, a resumed VM) is not taken
   * for time left: a token obtained "in the future" is refreshed rather than kept past its expiry.
   */
  private fresh(now: number): boolean {
    return this.cached !== undefined && this.cached.obtainedAt <= now && now < this.cached.refreshAt;
  }

  token(): Promise<string> {
    const now = this.clock.now();
    if (this.fresh(now)) return Promise.resolve(this.cached!.token);
    // Calls within a second of a failure share it; a clock set back since does not stretch that
    // second into the size of the step.
    const sinceFailure = this.lastFailure ? now - this.lastFailure.at : -1;
    if (this.lastFailure && sinceFailure >= 0 && sinceFailure < 1000) return Promise.reject(this.lastFailure.error);
    this.inflight ??= this.fetchToken().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** Drops `token` if it is the cached one; returns whether a retry may get a different token. */
  invalidate(token: string): boolean {
    if (this.cached?.token === token) {
      // A token refused within seconds of the last one dropped for a 401 is probably not the
      // problem: an endpoint that answers 401 to any token (a role the account lacks) made every
      // call fetch a new token, the token endpoint's load following the call rate until it
      // throttled the client and every call failed. One drop per window keeps a revoked or
      // early-expired token's recovery to one retry, and bounds the token requests 401s cause.
      const now = this.clock.now();
      if (this.lastDropAt !== undefined && now >= this.lastDropAt && now - this.lastDropAt < DROP_WINDOW_MS) return false;
      this.lastDropAt = now;
      this.cached = undefined;
      return true;
    }
    return this.cached !== undefined || this.inflight !== undefined;
  }

  private async fetchToken(): Promise<string> {
    this._requests++;
    try {
      const t = await this.requestToken();
      this.cached = t;
      this.lastFailure = undefined;
      this.hooks.onTokenRequest?.('ok');
      return t.token;
    } catch (e) {
      const err = e instanceof OAuthError ? e : new OAuthError('unreachable', (e as Error).message);
      this.lastFailure = { at: this.clock.now(), error: err };
      this.hooks.onTokenRequest?.(err.failure);
      throw err;
    }
  }

  private requestToken(): Promise<CachedToken> {
    const c = this.cfg;
    const u = new URL(c.tokenUrl);
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (c.scope) form.set('scope', c.scope);
    if (c.audience) form.set('audience', c.audience);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (c.clientAuth === 'basic') {
      headers.authorization = basicHeader(encodeURIComponent(c.clientId), encodeURIComponent(c.clientSecret));
    } else {
      form.set('client_id', c.clientId);
      form.set('client_secret', c.clientSecret);
    }
    const body = Buffer.from(form.toString());
    headers['content-length'] = String(body.length);
    const started = this.clock.now();
    return new Promise<CachedToken>((resolveRaw, rejectRaw) => {
      // `timeout` below only catches silence. An endpoint that dribbles its answer (a byte now and
      // then) would hold this single in-flight token request — and with it every request to the
      // target — for as long as it dribbles, long after the endpoint is healthy again (found by the
      // fault suite). So the whole exchange also has a deadline.
      const deadline = this.clock.setTimeout(() => {
        rejectRaw(new OAuthError('timeout', `token endpoint ${u.host} did not answer within 15 s`));
        req.destroy();
      }, 15_000);
      const resolve = (t: CachedToken): void => {
        this.clock.clearTimeout(deadline);
        resolveRaw(t);
      };
      const reject = (e: OAuthError): void => {
        this.clock.clearTimeout(deadline);
        rejectRaw(e);
      };
      const req = httpsRequest(
        {
          method: 'POST',
          hostname: u.hostname.replace(/^\[|\]$/g, ''),
          port: u.port || 443,
          path: `${u.pathname}${u.search}`,
          headers,
          agent: this.agent,
          timeout: 15_000,
          ...tlsOptionsFor(this.trust, u.hostname.replace(/^\[|\]$/g, '')), // an IPv6 literal's name has no brackets
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (d: Buffer) => {
            size += d.length;
            if (size <= 256 * 1024) chunks.push(d);
          });
          res.on('error', (e) => reject(new OAuthError('unreachable', `token endpoint ${u.host}: ${e.message}`)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: Record<string, unknown> | undefined;
            try {
              const v: unknown = JSON.parse(text);
              if (v && typeof v === 'object' && !Array.isArray(v)) json = v as Record<string, unknown>;
            } catch {
              /* handled below */
            }
            const status = res.statusCode ?? 0;
            if (status >= 500 || (status >= 400 && ![400, 401, 403].includes(status) && typeof json?.error !== 'string')) {
              // Not a verdict on the credentials: the endpoint is failing (5xx) or is not a token
              // endpoint (a 404 page: tokenUrl is wrong). Reported as "refused the client
              // credentials", it sent admins to reset a secret that was fine.
              const kind = status >= 500 ? 'unreachable' : 'bad_response';
              const why = status >= 500 ? 'a server error; the token endpoint is failing (retried at the next call)' : 'not an OAuth2 answer: check auth.tokenUrl';
              reject(new OAuthError(kind, `token endpoint ${u.host} answered HTTP ${status}: ${why}`));
              return;
            }
            if (status >= 400) {
              const code = typeof json?.error === 'string' ? json.error : undefined;
              // (It may quote what it was sent, the client secret: every outlet of this message
              // redacts it — logs, status, diagnose, and the relay's error answers.)
              const desc = typeof json?.error_description === 'string' ? `: ${json.error_description.slice(0, 200)}` : '';
              const hint = code === 'invalid_client' ? ' (client id or secret is wrong)' : code === 'invalid_scope' ? ' (check scope)' : '';
              reject(new OAuthError('rejected', `token endpoint ${u.host} refused the client credentials with HTTP ${status}${code ? ` ${code}` : ''}${hint}${desc}`, code));
              return;
            }
            if (!json) {
              reject(new OAuthError('bad_response', `token endpoint ${u.host} answered HTTP ${status} with something that is not JSON`));
              return;
            }
            const token = json.access_token;
            if (typeof token !== 'string' || token.length === 0) {
              reject(new OAuthError('bad_response', `token endpoint ${u.host} answered without an access_token`));
              return;
            }
            // RFC 6749 §7.1: a token of a type the client does not understand must not be used
            // (sent as Bearer it would only be refused by the UEM, 401 after 401).
            if (json.token_type !== undefined && (typeof json.token_type !== 'string' || json.token_type.toLowerCase() !== 'bearer')) {
              reject(new OAuthError('bad_response', `token endpoint ${u.host} issued a token of type "${String(json.token_type).slice(0, 40)}"; only Bearer tokens are supported`));
              return;
            }
            const ttlS = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : typeof json.expires_in === 'string' && Number(json.expires_in) > 0 ? Number(json.expires_in) : 3600;
            const ttl = ttlS * 1000;
            // Refresh before expiry: 10% of the lifetime, at most a minute, at least what the request took.
            const margin = Math.max(Math.min(ttl * 0.1, 60_000), this.clock.now() - started);
            resolve({ token, obtainedAt: started, refreshAt: started + ttl - margin });
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ETIMEDOUT') reject(new OAuthError('timeout', `token endpoint ${u.host} did not answer within 15 s`));
        else if (isTlsError(e)) reject(new OAuthError('tls', `token endpoint ${u.host}: ${describeTlsFailure(e.code)}`));
        else reject(new OAuthError('unreachable', `token endpoint ${u.host} unreachable: ${e.code ?? e.message}`));
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
