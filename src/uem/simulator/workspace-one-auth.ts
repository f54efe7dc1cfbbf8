/**
 * Workspace ONE authentication, as the simulator plays it:
 *  - API calls: HTTP Basic (admin user) AND the `aw-tenant-code` header, or an OAuth2 Bearer token;
 *  - the OAuth2 token endpoint (`POST /connect/token`, client credentials, RFC 6749 section 4.4).
 * Error bodies are the vendor's: 401 errorCode 1005 for bad credentials, 403 errorCode 1013 for a bad
 * tenant code; the token endpoint answers RFC 6749 errors (`{"error":"invalid_client"}`).
 */
import { randomUUID } from 'node:crypto';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { secretEquals, type SimulatorCredentials, type SimulatorState } from './state.js';

/** The vendor's error body: `{"errorCode","message","activityId"}`. */
export function sendWsError(res: Response, status: number, errorCode: number, message: string): void {
  res.status(status).json({ errorCode, message, activityId: randomUUID() });
}

interface BasicCredentials {
  user: string;
  password: string;
}

/** Decodes `Basic base64(user:password)`; undefined when the header is absent or not Basic. */
export function parseBasic(header: string | undefined): BasicCredentials | undefined {
  const m = /^\s*Basic\s+([A-Za-z0-9+/=._~-]*)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i < 0) return { user: text, password: '' };
  return { user: text.slice(0, i), password: text.slice(i + 1) };
}

function bearerOf(header: string | undefined): string | undefined {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

function tenantCodeOf(req: Request): string | undefined {
  const v = req.headers['aw-tenant-code'];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Guards the API. Basic needs both the right user/password (else 401/1005) and the right tenant code
 * (else 403/1013); credentials are checked first. A Bearer token from /connect/token needs no tenant
 * code, but a wrong one that is sent anyway is still refused with 403/1013.
 */
export function apiAuth(state: SimulatorState, creds: SimulatorCredentials): RequestHandler {
  const badTenant = (res: Response, code: string | undefined): void => {
    state.counters.authFailures++;
    sendWsError(res, 403, 1013, `Tenant code ${code ?? ''} does not identify an Organization Group.`);
  };
  return (req, res, next) => {
    const header = req.headers.authorization;
    const tenant = tenantCodeOf(req);
    const token = bearerOf(header);
    if (token !== undefined) {
      const check = state.checkToken(token);
      if (check !== 'valid') {
        state.counters.authFailures++;
        const why = check === 'expired' ? 'The access token has expired.' : 'The access token is invalid.';
        res.setHeader('www-authenticate', `Bearer error="invalid_token", error_description="${why}"`);
        sendWsError(res, 401, 1005, why);
        return;
      }
      if (tenant !== undefined && !secretEquals(tenant, creds.apiKey)) return badTenant(res, tenant);
      next();
      return;
    }
    const basic = parseBasic(header);
    if (!basic || !secretEquals(basic.user, creds.username) || !secretEquals(basic.password, creds.password)) {
      state.counters.authFailures++;
      res.setHeader('www-authenticate', 'Basic realm="AirWatch"');
      sendWsError(res, 401, 1005, `An error occurred while validating remote service client credentials or user not found : ${basic?.user ?? ''}`);
      return;
    }
    if (tenant === undefined || !secretEquals(tenant, creds.apiKey)) return badTenant(res, tenant);
    next();
  };
}

export interface TokenEndpointOptions {
  credentials: SimulatorCredentials;
  tokenTtlSeconds: number;
}

/**
 * `POST /connect/token`. Client authentication by HTTP Basic (client_secret_basic, id and secret
 * form-url-encoded first, RFC 6749 section 2.3.1) or in the form body (client_secret_post), not both.
 * A wrong client gets `invalid_client`: 401 with a challenge when it used Basic, else 400 (as
 * IdentityServer, which the vendor's token service is built on, does).
 */
export function tokenEndpoint(state: SimulatorState, opts: TokenEndpointOptions): RequestHandler[] {
  const refuse = (res: Response, status: number, error: string, description: string, challenge = false): void => {
    state.counters.tokenRequestsRejected++;
    if (challenge) res.setHeader('www-authenticate', 'Basic realm="uemauth"');
    res.setHeader('cache-control', 'no-store');
    res.setHeader('pragma', 'no-cache');
    res.status(status).json({ error, error_description: description });
  };
  const handler: RequestHandler = (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const field = (k: string): string | undefined => (typeof body[k] === 'string' ? (body[k] as string) : undefined);
    const basic = parseBasic(req.headers.authorization);
    const formId = field('client_id');
    const formSecret = field('client_secret');
    if (basic && formSecret !== undefined) return refuse(res, 400, 'invalid_request', 'use one client authentication method, not both');
    let clientId: string | undefined;
    let clientSecret: string | undefined;
    if (basic) {
      try {
        clientId = decodeURIComponent(basic.user.replace(/\+/g, ' '));
        clientSecret = decodeURIComponent(basic.password.replace(/\+/g, ' '));
      } catch {
        return refuse(res, 401, 'invalid_client', 'malformed client credentials', true);
      }
    } else {
      clientId = formId;
      clientSecret = formSecret;
    }
    if (clientId === undefined || clientSecret === undefined) return refuse(res, 401, 'invalid_client', 'client authentication is required', true);
    if (!secretEquals(clientId, opts.credentials.clientId) || !secretEquals(clientSecret, opts.credentials.clientSecret)) {
      return refuse(res, basic ? 401 : 400, 'invalid_client', 'unknown client or wrong secret', basic !== undefined);
    }
    const grant = field('grant_type');
    if (grant === undefined) return refuse(res, 400, 'invalid_request', 'grant_type is required');
    if (grant !== 'client_credentials') return refuse(res, 400, 'unsupported_grant_type', `grant_type ${grant} is not supported`);
    const { accessToken } = state.issueToken(clientId, opts.tokenTtlSeconds);
    res.setHeader('cache-control', 'no-store');
    res.setHeader('pragma', 'no-cache');
    res.json({ access_token: accessToken, token_type: 'Bearer', expires_in: opts.tokenTtlSeconds });
  };
  return [express.urlencoded({ extended: false, limit: '16kb' }), handler];
}
