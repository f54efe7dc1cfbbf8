/**
 * The cloud console, mounted at /console by the cloud server: server-rendered pages over the same
 * services the admin API uses (connectors, pairing tokens, integrations, inventory). Every page but
 * sign-in needs a session; every form post needs the CSRF token and must come from this origin.
 * Its own security headers (strict CSP, `Referrer-Policy: same-origin` so that form posts carry our
 * Origin), its own 404 and error pages: nothing under /console falls through to the JSON API.
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import helmet from 'helmet';
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/log.js';
import type { FailureLimiter } from '../../common/rate-limit.js';
import { clientAddress } from '../admin-auth.js';
import type { IntegrationsService } from '../integrations/service.js';
import type { InventoryDb } from '../inventory/db.js';
import type { PairingService } from '../pairing.js';
import type { PresenceBook } from '../presence-book.js';
import type { SessionRegistry } from '../registry.js';
import { TENANT_RE, type CloudStore } from '../state.js';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import { html } from './html.js';
import { BASE, shell } from './layout.js';
import * as authRoutes from './routes/auth.js';
import * as connectorRoutes from './routes/connectors.js';
import { requestProblem, sessionOf, type ConsoleContext, type PageOpts } from './routes/context.js';
import * as integrationRoutes from './routes/integrations.js';
import * as inventoryRoutes from './routes/inventory.js';
import { SessionStore, csrfProblem, safeNext, type ConsoleSession } from './session.js';

export interface ConsoleDeps {
  adminToken: string;
  /** Shared with the admin API: the same secret, one budget of wrong guesses per address. */
  adminLimiter: FailureLimiter;
  store: CloudStore;
  registry: SessionRegistry;
  book: PresenceBook;
  pairing: PairingService;
  integrations: IntegrationsService;
  inventory: InventoryDb;
  logger: Logger;
  clock: Clock;
  /** The server listens with TLS: cookies get `Secure`, HSTS is sent. */
  secure: boolean;
  publicUrl: string;
  /** Sessions end after this long without a request (default 8 h). */
  idleMs?: number;
}

export function consoleRouter(deps: ConsoleDeps): Router {
  const r = express.Router();
  const sessions = new SessionStore(deps.clock, deps.idleMs);
  const secure = deps.secure;
  const form = express.urlencoded({ extended: false, limit: '64kb', parameterLimit: 2000 });

  r.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
          objectSrc: ["'none'"],
        },
      },
      strictTransportSecurity: secure,
      // Form posts must carry our Origin (no-referrer makes Chromium send "Origin: null").
      referrerPolicy: { policy: 'same-origin' },
      xFrameOptions: { action: 'deny' },
    }),
  );

  r.get('/assets/console.css', (_req, res) => {
    res.type('text/css').setHeader('cache-control', 'max-age=300');
    res.send(CONSOLE_CSS);
  });
  r.get('/assets/console.js', (_req, res) => {
    res.type('application/javascript').setHeader('cache-control', 'max-age=300');
    res.send(CONSOLE_JS);
  });
  r.use((_req, res, next) => {
    res.setHeader('cache-control', 'no-store');
    next();
  });

  // ---- what the route modules share (routes/context.ts) ------------------------------------------

  const now = (): number => deps.clock.now();

  function page(res: Response, status: number, opts: PageOpts): void {
    const s = res.locals.session as ConsoleSession | undefined;
    res
      .status(status)
      .type('html')
      .send(
        shell({
          title: opts.title,
          body: opts.body,
          now: now(),
          refused: status >= 400 && status < 500,
          ...(opts.active ? { active: opts.active } : {}),
          ...(opts.flash ? { flash: opts.flash } : {}),
          ...(s ? { signedIn: { csrf: s.csrf, connected: deps.registry.size, tenant: opts.tenant } } : {}),
        }),
      );
  }

  function problemPage(res: Response, status: number, title: string, text: string, back = `${BASE}/connectors`, backText = 'Back'): void {
    page(res, status, { title, flash: { kind: 'error', text }, body: html`<h1>${title}</h1><p><a href="${back}">${backText}</a></p>` });
  }

  /** The console page a form was sent from (its same-origin Referer), to go back to it. */
  function formPage(req: Request): string | undefined {
    const ref = req.headers.referer;
    if (typeof ref !== 'string') return undefined;
    try {
      const u = new URL(ref);
      const own = new URL(deps.publicUrl);
      const host = req.headers.host;
      if (u.host !== own.host && u.host !== host) return undefined;
      return safeNext(`${u.pathname}${u.search}`);
    } catch {
      return undefined;
    }
  }

  async function tenants(): Promise<string[]> {
    const s = await deps.store.read();
    const set = new Set(Object.keys(s.tenants));
    for (const c of Object.values(s.connectors)) set.add(c.tenant);
    for (const i of s.integrations) set.add(i.tenant);
    return [...set].sort();
  }

  /** The tenant asked for (if well-formed), else the first one there is. */
  function pickTenant(v: unknown, all: string[]): string | undefined {
    return typeof v === 'string' && TENANT_RE.test(v) ? v : all[0];
  }

  const guard = (req: Request, res: Response): boolean => {
    const problem = csrfProblem(req, { secure, publicUrl: deps.publicUrl, session: sessionOf(res) });
    if (!problem) return true;
    deps.logger.warn('console: form post refused', { path: req.originalUrl, remote: clientAddress(req), reason: problem });
    // Reloading would send the same stale form again: the way out is the form's page, anew.
    const back = formPage(req);
    problemPage(res, 403, 'Refused', problem, back ?? `${BASE}/connectors`, back ? 'Open the form again' : 'Back');
    return false;
  };

  const ctx: ConsoleContext = { deps, form, page, problemPage, guard, formPage, tenants, pickTenant, csrfOf: (res) => sessionOf(res).csrf, now };
  // Sign-in first: it puts the session check in front of the routes registered after it.
  authRoutes.register(r, ctx, sessions);
  connectorRoutes.register(r, ctx);
  integrationRoutes.register(r, ctx);
  inventoryRoutes.register(r, ctx);

  // ---- the end of the console: its own 404 and error pages -------------------------------------

  r.use((req, res) => {
    problemPage(res, 404, 'Not found', `There is no console page ${req.method} ${req.originalUrl.split('?')[0]}.`);
  });

  r.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) return void res.destroy();
    const p = requestProblem(err);
    if (p) return problemPage(res, p.status, p.title, p.text);
    deps.logger.error('console: request failed', { method: req.method, path: req.originalUrl.split('?')[0], err });
    problemPage(res, 500, 'Something went wrong', 'Internal error; the cloud log has the details.');
  });

  return r;
}
