/**
 * Who may use the console: the admin token, once, at sign-in, then a server-side session (a random
 * id in an HttpOnly, SameSite=Strict cookie, Secure under TLS) that ends after 8 hours without use
 * or at sign-out. State-changing requests need a CSRF token (double-submit: a cookie and a form field
 * that must match, bound to the session once signed in) and must not come from another origin.
 *
 * Sessions live in this process's memory: a restart signs everyone out, and several cloud
 * processes behind a load balancer would need sticky sessions (or a shared store).
 */
import type { IssuedToken } from '../pairing.js';
import { createHash, randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Clock } from '../../common/clock.js';
import { safeEqual } from '../../common/safe-equal.js';
import { cookie } from '../../common/web.js';

export const SESSION_COOKIE = 'uemlink_console';
export const CSRF_COOKIE = 'uemlink_console_csrf';
export const COOKIE_PATH = '/console';
export const IDLE_MS = 8 * 3600 * 1000;
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

export interface ConsoleSession {
  csrf: string;
  createdAt: number;
  lastSeen: number;
  address: string;
  /**
   * Pairing tokens this session's forms issued, by the form's one-time value, for 10 minutes: a
   * form sent again (a reload of the answer) shows the token it made instead of making another
   * live one. Kept only in this process's memory, as the session itself.
   */
  issued?: Map<string, { at: number; token: IssuedToken }>;
}

const newToken = (): string => randomBytes(32).toString('base64url');
const keyOf = (id: string): string => createHash('sha256').update(id).digest('hex');

export class SessionStore {
  /** Keyed by the SHA-256 of the cookie value: the map holds no usable session id. */
  private readonly sessions = new Map<string, ConsoleSession>();

  constructor(
    private readonly clock: Clock,
    private readonly idleMs = IDLE_MS,
    private readonly maxSessions = 10_000,
  ) {}

  create(address: string): { id: string; session: ConsoleSession } {
    const now = this.clock.now();
    if (this.sessions.size >= this.maxSessions) this.sweep(now);
    // Still full: the least recently created goes (Map keeps insertion order).
    for (const k of this.sessions.keys()) {
      if (this.sessions.size < this.maxSessions) break;
      this.sessions.delete(k);
    }
    const id = newToken();
    const session: ConsoleSession = { csrf: newToken(), createdAt: now, lastSeen: now, address };
    this.sessions.set(keyOf(id), session);
    return { id, session };
  }

  /** The live session of this id (its idle timer restarts), or undefined. */
  get(id: string | undefined): ConsoleSession | undefined {
    if (!id || !TOKEN_RE.test(id)) return undefined;
    const k = keyOf(id);
    const s = this.sessions.get(k);
    if (!s) return undefined;
    const now = this.clock.now();
    if (this.idle(s, now)) {
      this.sessions.delete(k);
      return undefined;
    }
    s.lastSeen = now;
    return s;
  }

  destroy(id: string | undefined): void {
    if (id && TOKEN_RE.test(id)) this.sessions.delete(keyOf(id));
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Idle past the limit — or last seen more than a minute ahead of this clock: after the clock is
   * stepped back, how long the session sat unused cannot be told, and counting from the future
   * kept it alive for the size of the step on top of the idle limit.
   */
  private idle(s: ConsoleSession, now: number): boolean {
    return now - s.lastSeen >= this.idleMs || s.lastSeen - now > 60_000;
  }

  private sweep(now: number): void {
    for (const [k, s] of this.sessions) if (this.idle(s, now)) this.sessions.delete(k);
  }
}

function setCookie(res: Response, name: string, value: string, secure: boolean, maxAge?: number): void {
  res.append('Set-Cookie', `${name}=${value}; Path=${COOKIE_PATH}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}${maxAge !== undefined ? `; Max-Age=${maxAge}` : ''}`);
}

export function setSessionCookie(res: Response, id: string, secure: boolean): void {
  setCookie(res, SESSION_COOKIE, id, secure);
}

export function clearSessionCookie(res: Response, secure: boolean): void {
  setCookie(res, SESSION_COOKIE, '', secure, 0);
}

/** Makes the CSRF cookie hold `value` (the session's token) unless it already does. */
export function ensureCsrfCookie(req: Request, res: Response, value: string, secure: boolean): void {
  if (cookie(req, CSRF_COOKIE) !== value) setCookie(res, CSRF_COOKIE, value, secure);
}

/** The CSRF token for a signed-out page (sign-in): the cookie's, or a new one set now. */
export function anonymousCsrf(req: Request, res: Response, secure: boolean): string {
  const existing = cookie(req, CSRF_COOKIE);
  if (existing && TOKEN_RE.test(existing)) return existing;
  const t = newToken();
  setCookie(res, CSRF_COOKIE, t, secure);
  return t;
}

// Fix (issue 7): through safeEqual, which hashes first; Buffer.from() of equal-length strings with
// different UTF-8 byte lengths made timingSafeEqual throw.
function same(a: string, b: string): boolean {
  return safeEqual(a, b);
}

/**
 * Why a form post fails the cross-site checks, or undefined when it passes: the browser must not say
 * it came from another site (Sec-Fetch-Site), an Origin header must be ours (the address the browser
 * used, or the configured public URL), and the form's `csrf` field must equal the CSRF cookie — and
 * the session's token when signed in.
 */
export function csrfProblem(req: Request, opts: { secure: boolean; publicUrl: string; session?: ConsoleSession }): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return 'The request came from another site and was refused.';
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const own = `${opts.secure ? 'https' : 'http'}://${req.headers.host ?? ''}`;
    let pub = '';
    try {
      // The browser's origin for a wss:// (ws://) public URL is https:// (http://): same host.
      pub = new URL(opts.publicUrl.replace(/^ws(s?):/i, 'http$1:')).origin;
    } catch {
      /* no public origin */
    }
    if (origin !== own && origin !== pub) return 'The request came from another site and was refused.';
  }
  const c = cookie(req, CSRF_COOKIE);
  const f = (req.body as Record<string, unknown> | undefined)?.csrf;
  const expired = 'The form was made for an earlier sign-in, or not by this console (missing or wrong CSRF token), so nothing was changed. Open the form again (reloading would send the same form) and fill it in anew.';
  if (!c || typeof f !== 'string' || !same(c, f)) return expired;
  if (opts.session && !same(opts.session.csrf, f)) return expired;
  return undefined;
}

/** Where to go after signing in: only a console page of this server. */
export function safeNext(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length > 500) return undefined;
  if (!v.startsWith(`${COOKIE_PATH}/`) || v.includes('//') || v.includes('\\') || /[\u0000-\u001f]/.test(v)) return undefined;
  // No dot segment, encoded or not: the browser resolves "/console/../x" to "/x", outside the console.
  if (v.split(/[?#]/)[0]!.split('/').some((seg) => /^(\.|%2e){1,2}$/i.test(seg))) return undefined;
  if (v.startsWith(`${COOKIE_PATH}/login`) || v.startsWith(`${COOKIE_PATH}/assets/`)) return undefined;
  return v;
}
