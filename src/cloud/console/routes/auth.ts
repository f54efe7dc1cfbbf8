/**
 * Sign-in, the session check in front of every other page, and sign-out. Registered first: the
 * routes registered after it are reached only with a session.
 */
import type { Router } from 'express';
import { cookie } from '../../../common/web.js';
import { clientAddress, limiterKey, safeEqual } from '../../admin-auth.js';
import { query } from '../html.js';
import { BASE, type Flash } from '../layout.js';
import { loginBody } from '../pages/login.js';
import { SESSION_COOKIE, anonymousCsrf, clearSessionCookie, csrfProblem, ensureCsrfCookie, safeNext, setSessionCookie, type SessionStore } from '../session.js';
import { bodyOf, one, type ConsoleContext } from './context.js';

export function register(r: Router, ctx: ConsoleContext, sessions: SessionStore): void {
  const { deps, form, page, guard } = ctx;
  const secure = deps.secure;

  r.get('/login', (req, res) => {
    if (sessions.get(cookie(req, SESSION_COOKIE))) return res.redirect(303, safeNext(req.query.next) ?? `${BASE}/connectors`);
    const csrf = anonymousCsrf(req, res, secure);
    const flash: Flash | undefined =
      req.query.done === 'out'
        ? { kind: 'ok', text: 'Signed out.' }
        : req.query.expired === '1'
          ? {
              kind: 'warn',
              text:
                req.query.unsaved === '1'
                  ? 'Your session ended before the form was sent (8 hours without use, a restart of the cloud, or signed out elsewhere): your changes were not saved. Sign in again to go back to the form.'
                  : 'Your session has ended (8 hours without use, a restart of the cloud, or signed out elsewhere). Sign in again.',
            }
          : undefined;
    page(res, 200, { title: 'Sign in', flash, body: loginBody({ csrf, next: safeNext(req.query.next) }) });
  });

  r.post('/login', form, (req, res) => {
    const body = bodyOf(req);
    const next = safeNext(body.next);
    // `atField`: the token entered is what is wrong, said at its field; otherwise at the top.
    const again = (status: number, text: string, atField = false): void => {
      const csrf = anonymousCsrf(req, res, secure);
      page(res, status, { title: 'Sign in', ...(atField ? {} : { flash: { kind: 'error' as const, text } }), body: loginBody({ csrf, next, ...(atField ? { error: text } : {}) }) });
    };
    const problem = csrfProblem(req, { secure, publicUrl: deps.publicUrl });
    if (problem) return again(403, problem);
    const ip = limiterKey(req);
    const wait = deps.adminLimiter.retryAfter(ip);
    if (wait > 0) {
      res.setHeader('Retry-After', String(Math.ceil(wait / 1000)));
      return again(429, `Too many failed attempts from this address. Wait ${Math.ceil(wait / 1000)} s and try again.`);
    }
    const token = one(body.token);
    if (!token) return again(400, 'Enter the admin token.', true);
    if (!safeEqual(token, deps.adminToken)) {
      deps.adminLimiter.fail(ip);
      deps.logger.warn('console: sign-in refused (wrong admin token)', { remote: clientAddress(req) });
      return again(401, 'The admin token is not valid.', true);
    }
    sessions.destroy(cookie(req, SESSION_COOKIE)); // a new id at every sign-in (no fixation)
    const { id, session } = sessions.create(ip);
    setSessionCookie(res, id, secure);
    ensureCsrfCookie(req, res, session.csrf, secure);
    deps.logger.info('console: signed in', { remote: ip });
    res.redirect(303, next ?? `${BASE}/connectors`);
  });

  // ---- everything registered after this needs a session ----------------------------------------

  r.use((req, res, next) => {
    const sid = cookie(req, SESSION_COOKIE);
    const s = sessions.get(sid);
    if (!s) {
      const had = sid !== undefined && sid !== '';
      if (had) clearSessionCookie(res, secure);
      // A form sent after the session ended: back to the page it was on (its Referer), saying that
      // nothing was saved. Only GETs can be resumed as they were.
      const get = req.method === 'GET' || req.method === 'HEAD';
      const target = get ? safeNext(req.originalUrl) : ctx.formPage(req);
      return res.redirect(303, `${BASE}/login${query({ next: target, expired: had ? '1' : undefined, unsaved: had && !get ? '1' : undefined })}`);
    }
    res.locals.session = s;
    res.locals.sid = sid;
    ensureCsrfCookie(req, res, s.csrf, secure);
    next();
  });

  r.post('/logout', form, (req, res) => {
    if (!guard(req, res)) return;
    sessions.destroy(res.locals.sid as string);
    clearSessionCookie(res, secure);
    deps.logger.info('console: signed out', { remote: clientAddress(req) });
    res.redirect(303, `${BASE}/login?done=out`);
  });

  r.get('/', (_req, res) => res.redirect(303, `${BASE}/connectors`));
}
