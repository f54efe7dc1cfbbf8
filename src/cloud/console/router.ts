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
import { UemlinkError, messageOf } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { FailureLimiter } from '../../common/rate-limit.js';
import { redactString } from '../../common/redact.js';
import { cookie } from '../../common/web.js';
import type { UemGroup } from '../../uem/adapter.js';
import { connectorView, revokeConnector } from '../admin-api.js';
import { clientAddress, limiterKey, safeEqual } from '../admin-auth.js';
import { INTEGRATION_ID_RE } from '../integrations/model.js';
import { ApiProblem, type IntegrationsService } from '../integrations/service.js';
import { DEVICE_SORTS, type DeviceFilter, type DeviceSort, type InventoryDb } from '../inventory/db.js';
import type { PairingService } from '../pairing.js';
import type { PresenceBook } from '../presence-book.js';
import type { SessionRegistry } from '../registry.js';
import { CONNECTOR_ID_RE, TENANT_RE, type CloudStore, type IntegrationRecord } from '../state.js';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import { html, query, type Html } from './html.js';
import { BASE, shell, type Flash, type NavKey } from './layout.js';
import { connectorsBody, revokeBody, type TokenForm } from './pages/connectors.js';
import { editBody, fieldError, integrationPath, integrationsBody, removeBody, valuesOf, type EditValues, type GroupChoice, type NewForm } from './pages/integrations.js';
import { PAGE_SIZE, appsBody, devicesBody } from './pages/inventory.js';
import { loginBody } from './pages/login.js';
import { SESSION_COOKIE, SessionStore, anonymousCsrf, clearSessionCookie, csrfProblem, ensureCsrfCookie, safeNext, setSessionCookie, type ConsoleSession } from './session.js';

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

/** How long the edit page waits for the UEM's group list before showing the form without it. */
const GROUPS_WAIT_MS = 15_000;

type Body = Record<string, string | string[] | undefined>;

function one(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return '';
}

function many(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/** A form's number as a number when it is one; otherwise the text, for the validator to name. */
function num(v: string): unknown {
  const t = v.trim();
  return /^-?\d{1,9}$/.test(t) ? Number(t) : t;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  p.catch(() => {});
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The HTTP status and message of an error the services throw for bad input, or undefined. */
function userError(e: unknown): { status: number; message: string } | undefined {
  if (e instanceof ApiProblem) return { status: e.status, message: redactString(e.message) };
  if (e instanceof UemlinkError && e.code === 'INVALID_INPUT') return { status: 400, message: redactString(e.message) };
  if (e instanceof UemlinkError && e.code === 'NOT_FOUND') return { status: 404, message: redactString(e.message) };
  return undefined;
}

export function consoleRouter(deps: ConsoleDeps): Router {
  const r = express.Router();
  const sessions = new SessionStore(deps.clock, deps.idleMs);
  const secure = deps.secure;
  const svc = deps.integrations;
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

  // ---- rendering ---------------------------------------------------------------------------

  const now = (): number => deps.clock.now();

  interface PageOpts {
    title: string;
    body: Html;
    active?: NavKey;
    tenant?: string | undefined;
    flash?: Flash | undefined;
  }

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

  // ---- sign-in -------------------------------------------------------------------------------

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
    const body = (req.body ?? {}) as Body;
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

  // ---- everything below needs a session --------------------------------------------------------

  r.use((req, res, next) => {
    const sid = cookie(req, SESSION_COOKIE);
    const s = sessions.get(sid);
    if (!s) {
      const had = sid !== undefined && sid !== '';
      if (had) clearSessionCookie(res, secure);
      // A form sent after the session ended: back to the page it was on (its Referer), saying that
      // nothing was saved. Only GETs can be resumed as they were.
      const get = req.method === 'GET' || req.method === 'HEAD';
      const target = get ? safeNext(req.originalUrl) : formPage(req);
      return res.redirect(303, `${BASE}/login${query({ next: target, expired: had ? '1' : undefined, unsaved: had && !get ? '1' : undefined })}`);
    }
    res.locals.session = s;
    res.locals.sid = sid;
    ensureCsrfCookie(req, res, s.csrf, secure);
    next();
  });

  /** The cross-site checks of a form post; answers 403 with the reason when they fail. */
  const guard = (req: Request, res: Response): boolean => {
    const problem = csrfProblem(req, { secure, publicUrl: deps.publicUrl, session: res.locals.session as ConsoleSession });
    if (!problem) return true;
    deps.logger.warn('console: form post refused', { path: req.originalUrl, remote: clientAddress(req), reason: problem });
    // Reloading would send the same stale form again: the way out is the form's page, anew.
    const back = formPage(req);
    problemPage(res, 403, 'Refused', problem, back ?? `${BASE}/connectors`, back ? 'Open the form again' : 'Back');
    return false;
  };

  r.post('/logout', form, (req, res) => {
    if (!guard(req, res)) return;
    sessions.destroy(res.locals.sid as string);
    clearSessionCookie(res, secure);
    deps.logger.info('console: signed out', { remote: clientAddress(req) });
    res.redirect(303, `${BASE}/login?done=out`);
  });

  r.get('/', (_req, res) => res.redirect(303, `${BASE}/connectors`));

  // ---- connectors ----------------------------------------------------------------------------

  async function connectorsPage(req: Request, res: Response, status: number, extra: { issued?: Awaited<ReturnType<PairingService['createToken']>>; issuedAgain?: boolean; form?: TokenForm; flash?: Flash } = {}): Promise<void> {
    const s = await deps.store.read();
    const list = Object.values(s.connectors).map((c) => connectorView(c, deps));
    const st = req.query.state;
    const all = await tenants();
    const t = req.query.tenant;
    const filter = typeof t === 'string' && TENANT_RE.test(t) ? t : undefined;
    let flash = extra.flash;
    const id = req.query.id;
    if (!flash && req.query.done === 'revoked' && typeof id === 'string' && CONNECTOR_ID_RE.test(id)) flash = { kind: 'ok', text: `Connector ${id} revoked: it was disconnected and cannot connect again.` };
    page(res, status, {
      title: 'Connectors',
      active: 'connectors',
      tenant: filter ?? extra.issued?.tenant,
      flash,
      body: connectorsBody({
        connectors: list,
        tenants: all,
        filter,
        search: searchParam(req.query.search),
        state: st === 'connected' || st === 'offline' || st === 'revoked' ? st : undefined,
        page: pageParam(req.query.page),
        csrf: (res.locals.session as ConsoleSession).csrf,
        now: now(),
        ...(extra.issued ? { issued: extra.issued } : {}),
        ...(extra.issuedAgain ? { issuedAgain: true } : {}),
        ...(extra.form ? { form: extra.form } : {}),
      }),
    });
  }

  r.get('/connectors', async (req, res) => {
    await connectorsPage(req, res, 200);
  });

  r.post('/connectors/pairing-token', form, async (req, res) => {
    if (!guard(req, res)) return;
    const b = (req.body ?? {}) as Body;
    const f: TokenForm = { tenant: one(b.tenant).trim(), group: one(b.group).trim() || 'default', ttl: one(b.ttlSeconds) };
    const session = res.locals.session as ConsoleSession;
    const once = one(b.once).slice(0, 64);
    const t0 = now();
    for (const [k, v] of session.issued ?? []) if (t0 - v.at > 10 * 60_000) session.issued!.delete(k);
    const earlier = once ? session.issued?.get(once) : undefined;
    if (earlier) {
      // The same form again (a reload of this answer): its token, not a second live one.
      await connectorsPage(req, res, 201, { issued: earlier.token, issuedAgain: true });
      return;
    }
    try {
      const issued = await deps.pairing.createToken({ tenant: f.tenant, group: f.group, ttlSeconds: num(f.ttl) });
      deps.logger.info('pairing token issued', { tenant: issued.tenant, group: issued.group, expiresAt: issued.expiresAt, via: 'console' });
      if (once) (session.issued ??= new Map()).set(once, { at: t0, token: issued });
      // Shown on this answer only: never in a URL or the state; `no-store` keeps it out of caches.
      await connectorsPage(req, res, 201, { issued });
    } catch (e) {
      const u = userError(e);
      if (!u) throw e;
      await connectorsPage(req, res, u.status, { form: { ...f, error: `Not created. ${u.message}` } });
    }
  });

  r.get('/connectors/:id/revoke', async (req, res) => {
    const id = String(req.params.id);
    const rec = CONNECTOR_ID_RE.test(id) ? (await deps.store.read()).connectors[id] : undefined;
    if (!rec) return problemPage(res, 404, 'Unknown connector', `There is no connector ${id}.`);
    page(res, 200, { title: `Revoke ${id}`, active: 'connectors', tenant: rec.tenant, body: revokeBody(connectorView(rec, deps), (res.locals.session as ConsoleSession).csrf, now(), req.query.filtered === '1') });
  });

  r.post('/connectors/:id/revoke', form, async (req, res) => {
    if (!guard(req, res)) return;
    const id = String(req.params.id);
    if (((req.body ?? {}) as Body).confirm !== 'yes') return res.redirect(303, `${BASE}/connectors/${encodeURIComponent(id)}/revoke`);
    const tenant = CONNECTOR_ID_RE.test(id) ? (await deps.store.read()).connectors[id]?.tenant : undefined;
    const done = await revokeConnector(deps, id, 'console');
    if (!done) return problemPage(res, 404, 'Unknown connector', `There is no connector ${id}.`);
    // Back to the list the admin came from: the tenant's, when it was filtered.
    const filtered = ((req.body ?? {}) as Body).filtered === '1';
    res.redirect(303, `${BASE}/connectors${query({ tenant: filtered ? tenant : undefined, done: 'revoked', id })}`);
  });

  // ---- integrations --------------------------------------------------------------------------

  async function integrationsPage(req: Request, res: Response, status: number, extra: { tenant?: string; verify?: { id: string; result: Awaited<ReturnType<IntegrationsService['verify']>> }; newForm?: NewForm; flash?: Flash } = {}): Promise<void> {
    const all = await tenants();
    const tenant = extra.tenant ?? pickTenant(req.query.tenant, all);
    const list = tenant ? await svc.list(tenant) : [];
    const counts = new Map(list.map((i) => [i.id, deps.inventory.countDevices(i.id)]));
    let flash = extra.flash;
    const done = req.query.done;
    if (!flash && typeof done === 'string') {
      const name = list.find((i) => i.id === req.query.id)?.displayName ?? 'The integration';
      const texts: Record<string, string> = {
        synced: `Sync started for ${name}: a device sync, then an app sync. Reload this page to follow it.`,
        paused: `${name} is paused: no scheduled device or app syncs until you resume it (Sync Now still runs one).`,
        resumed: `${name} resumed: a device sync starts now.`,
        saved: `Saved ${name}. The changes apply from the next run.`,
        removed: 'The integration was removed, with its inventory.',
      };
      if (texts[done]) flash = { kind: 'ok', text: texts[done]! };
    }
    page(res, status, {
      title: tenant ? `Integrations of ${tenant}` : 'Integrations',
      active: 'integrations',
      tenant,
      flash,
      body: integrationsBody({
        tenant,
        tenants: all,
        integrations: list,
        deviceCounts: counts,
        csrf: (res.locals.session as ConsoleSession).csrf,
        now: now(),
        ...(extra.verify ? { verify: extra.verify } : {}),
        ...(extra.newForm ? { newForm: extra.newForm } : {}),
      }),
    });
  }

  r.get('/integrations', async (req, res) => {
    await integrationsPage(req, res, 200);
  });

  r.post('/integrations/new', form, async (req, res) => {
    if (!guard(req, res)) return;
    const b = (req.body ?? {}) as Body;
    const tenant = one(b.tenant);
    if (!TENANT_RE.test(tenant)) return problemPage(res, 400, 'Unknown tenant', 'Choose a tenant first.', `${BASE}/integrations`);
    const f: NewForm = { vendor: one(b.vendor), displayName: one(b.displayName), group: one(b.group).trim(), target: one(b.target).trim() };
    try {
      const rec = await svc.create(tenant, { vendor: f.vendor, displayName: f.displayName, route: { via: 'connector', group: f.group, target: f.target } });
      res.redirect(303, `${integrationPath(rec, 'edit')}?created=1`);
    } catch (e) {
      const u = userError(e);
      if (!u) throw e;
      await integrationsPage(req, res, u.status, { tenant, newForm: { ...f, error: `Not added. ${u.message}` } });
    }
  });

  /** The integration named by the path, or a 404 page (undefined). */
  async function integrationOf(req: Request, res: Response): Promise<IntegrationRecord | undefined> {
    const tenant = String(req.params.tenant);
    const id = String(req.params.id);
    if (TENANT_RE.test(tenant) && INTEGRATION_ID_RE.test(id)) {
      try {
        return await svc.get(tenant, id);
      } catch (e) {
        if (!(e instanceof ApiProblem && e.status === 404)) throw e;
      }
    }
    problemPage(res, 404, 'Unknown integration', `Tenant ${tenant} has no integration ${id}.`, `${BASE}/integrations${query({ tenant: TENANT_RE.test(tenant) ? tenant : undefined })}`);
    return undefined;
  }

  const back = (rec: IntegrationRecord, done: string): string => `${BASE}/integrations${query({ tenant: rec.tenant, done, id: rec.id })}#${rec.id}`;

  r.post('/integrations/:tenant/:id/sync', form, async (req, res) => {
    if (!guard(req, res)) return;
    const rec = await integrationOf(req, res);
    if (!rec) return;
    await svc.syncNow(rec.tenant, rec.id);
    deps.logger.info('console: sync now', { integration: rec.id, tenant: rec.tenant });
    res.redirect(303, back(rec, 'synced'));
  });

  for (const [action, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    r.post(`/integrations/:tenant/:id/${action}`, form, async (req, res) => {
      if (!guard(req, res)) return;
      const rec = await integrationOf(req, res);
      if (!rec) return;
      await svc.setPaused(rec.tenant, rec.id, paused);
      deps.logger.info(`console: integration ${paused ? 'paused' : 'resumed'}`, { integration: rec.id, tenant: rec.tenant });
      res.redirect(303, back(rec, paused ? 'paused' : 'resumed'));
    });
  }

  r.post('/integrations/:tenant/:id/verify', form, async (req, res) => {
    if (!guard(req, res)) return;
    const rec = await integrationOf(req, res);
    if (!rec) return;
    const result = await svc.verify(rec.tenant, rec.id);
    // Said at the top too: the result renders by its integration, maybe far down the page.
    const flash: Flash = result.ok ? { kind: 'ok', text: `Verification of ${rec.displayName} passed: see its steps below.` } : { kind: 'error', text: `Verification of ${rec.displayName} failed: see its steps below.` };
    await integrationsPage(req, res, 200, { tenant: rec.tenant, verify: { id: rec.id, result }, flash });
  });

  /** The UEM's groups for the edit form, or why they cannot be listed now. */
  async function groupChoice(rec: IntegrationRecord): Promise<GroupChoice> {
    try {
      const list = await within(svc.groups(rec.tenant, rec.id), GROUPS_WAIT_MS, `the UEM did not answer within ${GROUPS_WAIT_MS / 1000} s`);
      return { listed: true, list };
    } catch (e) {
      return { listed: false, why: redactString(messageOf(e).replace(/^cannot list the UEM's groups: /, '')) };
    }
  }

  r.get('/integrations/:tenant/:id/edit', async (req, res) => {
    const rec = await integrationOf(req, res);
    if (!rec) return;
    const groups = await groupChoice(rec);
    const flash: Flash | undefined = req.query.created === '1' ? { kind: 'ok', text: `Integration ${rec.displayName} added. Choose the groups to sync and save.` } : undefined;
    page(res, 200, {
      title: `Edit ${rec.displayName}`,
      active: 'integrations',
      tenant: rec.tenant,
      flash,
      body: editBody({ rec, values: valuesOf(rec), groups, csrf: (res.locals.session as ConsoleSession).csrf, now: now() }),
    });
  });

  r.post('/integrations/:tenant/:id/edit', form, async (req, res) => {
    if (!guard(req, res)) return;
    const rec = await integrationOf(req, res);
    if (!rec) return;
    const b = (req.body ?? {}) as Body;
    const listed = b.groupsListed === '1';
    const values: EditValues = {
      displayName: one(b.displayName),
      // Groups the form could not list are left as they are.
      groups: listed ? many(b.groups) : [...rec.sync.groups],
      pii: { deviceName: b.pii_deviceName === 'on', deviceNumber: b.pii_deviceNumber === 'on', email: b.pii_email === 'on' },
      deviceSync: one(b.deviceSyncIntervalMinutes),
      appSync: one(b.appSyncIntervalMinutes),
      delThreshold: one(b.deviceDeletionThresholdPercent),
      delAfter: one(b.deviceDeletionAfterSyncs),
      tagging: { deviceStatus: b.tag_deviceStatus === 'on', deviceRisk: b.tag_deviceRisk === 'on', threatFactors: b.tag_threatFactors === 'on' },
      prefix: one(b.prefix).trim(),
    };
    const update = {
      displayName: values.displayName,
      sync: {
        ...(listed ? { groups: values.groups } : {}),
        pii: values.pii,
        deviceSyncIntervalMinutes: num(values.deviceSync),
        appSyncIntervalMinutes: num(values.appSync),
        deviceDeletionThresholdPercent: num(values.delThreshold),
        deviceDeletionAfterSyncs: num(values.delAfter),
      },
      tagging: { ...values.tagging, prefix: values.prefix },
    };
    try {
      // The revision the form was drawn from: an edit saved by someone else since is not overwritten unseen.
      const revision = one(b.revision);
      const saved = await svc.update(rec.tenant, rec.id, update, revision ? { ifMatch: revision } : {});
      deps.logger.info('console: integration edited', { integration: rec.id, tenant: rec.tenant });
      res.redirect(303, back(saved, 'saved'));
    } catch (e) {
      const u = userError(e);
      if (!u) throw e;
      const current = (await svc.get(rec.tenant, rec.id).catch(() => undefined)) ?? rec;
      const groups: GroupChoice = listed ? { listed: true, list: current.groupsCache as UemGroup[] } : await groupChoice(current);
      // The form is drawn again from `current`, so its revision is now theirs: a second Save replaces their edit knowingly.
      const error =
        e instanceof ApiProblem && e.apiCode === 'precondition_failed'
          ? { id: undefined, label: undefined, text: `Someone else saved this integration (at ${current.updatedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}) after this page was opened. Your changes are below: Save again to replace theirs, or open the integration to see them.` }
          : fieldError(u.message);
      page(res, u.status === 412 ? 409 : u.status, {
        title: `Edit ${rec.displayName}`,
        active: 'integrations',
        tenant: rec.tenant,
        body: editBody({ rec: current, values, groups, error, csrf: (res.locals.session as ConsoleSession).csrf, now: now() }),
      });
    }
  });

  r.get('/integrations/:tenant/:id/remove', async (req, res) => {
    const rec = await integrationOf(req, res);
    if (!rec) return;
    page(res, 200, { title: `Remove ${rec.displayName}`, active: 'integrations', tenant: rec.tenant, body: removeBody(rec, deps.inventory.countDevices(rec.id), (res.locals.session as ConsoleSession).csrf) });
  });

  r.post('/integrations/:tenant/:id/remove', form, async (req, res) => {
    if (!guard(req, res)) return;
    const rec = await integrationOf(req, res);
    if (!rec) return;
    if (((req.body ?? {}) as Body).confirm !== 'yes') return res.redirect(303, integrationPath(rec, 'remove'));
    await svc.remove(rec.tenant, rec.id);
    deps.logger.warn('console: integration removed', { integration: rec.id, tenant: rec.tenant });
    res.redirect(303, `${BASE}/integrations${query({ tenant: rec.tenant, done: 'removed' })}`);
  });

  // ---- inventory -----------------------------------------------------------------------------

  function pageParam(v: unknown): number {
    const n = typeof v === 'string' && /^\d{1,7}$/.test(v) ? Number(v) : 1;
    return Math.max(1, n);
  }

  function searchParam(v: unknown): string {
    return typeof v === 'string' ? v.trim().slice(0, 100) : '';
  }

  function noTenant(res: Response, title: string, active: NavKey): void {
    page(res, 200, { title, active, body: html`<h1>${title}</h1><section class="card"><p>No tenants yet: create a pairing token or an integration first.</p></section>` });
  }

  r.get('/devices', async (req, res) => {
    const all = await tenants();
    const tenant = pickTenant(req.query.tenant, all);
    if (!tenant) return noTenant(res, 'Devices', 'devices');
    const list = await svc.list(tenant);
    const asked = typeof req.query.integration === 'string' && req.query.integration ? req.query.integration : undefined;
    const integration = list.find((i) => i.id === asked)?.id;
    const search = searchParam(req.query.search);
    let pageNo = pageParam(req.query.page);
    const filter: DeviceFilter = {};
    for (const k of ['compliance', 'risk', 'platform'] as const) {
      const v = req.query[k];
      if (typeof v === 'string' && v !== '') filter[k] = v.slice(0, 100);
    }
    // An order the form does not offer (an old bookmark) is the default, not an error page.
    const sort: DeviceSort = (DEVICE_SORTS as readonly unknown[]).includes(req.query.sort) ? (req.query.sort as DeviceSort) : 'integration';
    const q = (p: number): ReturnType<InventoryDb['listDevices']> =>
      deps.inventory.listDevices(tenant, { page: p - 1, pageSize: PAGE_SIZE, ...(integration ? { integrationId: integration } : {}), ...(search ? { search } : {}), ...filter, sort });
    let r2 = q(pageNo);
    const last = Math.max(1, Math.ceil(r2.total / PAGE_SIZE));
    if (pageNo > last) r2 = q((pageNo = last));
    page(res, 200, {
      title: `Devices of ${tenant}`,
      active: 'devices',
      tenant,
      // An integration of another tenant is what the form still held when the tenant was switched:
      // dropped without a word. Only an id no tenant has is worth a warning.
      flash: asked && !integration && !(await deps.store.read()).integrations.some((i) => i.id === asked) ? { kind: 'warn', text: `Tenant ${tenant} has no integration ${asked}: showing all its devices.` } : undefined,
      body: devicesBody({ tenants: all.includes(tenant) ? all : [...all, tenant], tenant, integrations: list, integration, search, filter, sort, facets: deps.inventory.deviceFacets(tenant), page: pageNo, devices: r2.devices, total: r2.total, now: now() }),
    });
  });

  r.get('/apps', async (req, res) => {
    const all = await tenants();
    const tenant = pickTenant(req.query.tenant, all);
    if (!tenant) return noTenant(res, 'Apps', 'apps');
    const search = searchParam(req.query.search);
    let pageNo = pageParam(req.query.page);
    const q = (p: number): ReturnType<InventoryDb['catalogue']> => deps.inventory.catalogue(tenant, { page: p - 1, pageSize: PAGE_SIZE, ...(search ? { search } : {}) });
    let r2 = q(pageNo);
    const last = Math.max(1, Math.ceil(r2.total / PAGE_SIZE));
    if (pageNo > last) r2 = q((pageNo = last));
    page(res, 200, {
      title: `Apps of ${tenant}`,
      active: 'apps',
      tenant,
      body: appsBody({ tenants: all.includes(tenant) ? all : [...all, tenant], tenant, search, page: pageNo, apps: r2.apps, total: r2.total }),
    });
  });

  // ---- the end of the console: its own 404 and error pages -------------------------------------

  r.use((req, res) => {
    problemPage(res, 404, 'Not found', `There is no console page ${req.method} ${req.originalUrl.split('?')[0]}.`);
  });

  r.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) return void res.destroy();
    const e = err as { type?: string; status?: unknown; statusCode?: unknown };
    if (e?.type === 'entity.too.large' || e?.type === 'parameters.too.many') return problemPage(res, 413, 'Too large', 'The form is too large.');
    if (e?.type === 'entity.parse.failed') return problemPage(res, 400, 'Bad form', 'The form could not be read.');
    // Any other refusal of the request itself (the body parser's charset, a malformed escape in the
    // URL): the client's problem, not an internal error worth the error log.
    const code = typeof e?.status === 'number' ? e.status : typeof e?.statusCode === 'number' ? e.statusCode : 0;
    if (code >= 400 && code < 500) return problemPage(res, code, 'Bad request', 'The request could not be read.');
    const u = userError(err);
    if (u) return problemPage(res, u.status, 'Refused', u.message);
    deps.logger.error('console: request failed', { method: req.method, path: req.originalUrl.split('?')[0], err });
    problemPage(res, 500, 'Something went wrong', 'Internal error; the cloud log has the details.');
  });

  return r;
}
