/**
 * The Hexnode UEM simulator as an Express app, without a listener: the REST API under `/api/v1/`
 * (trailing slashes, case-sensitive paths, Django REST Framework conventions), raw API-key
 * authentication in `Authorization`, page/per_page paging with absolute next links, device groups
 * with add/remove, and the vendor's 30-calls-a-minute throttle when asked for. Vendor facts and the
 * choices made where they are unknown are in docs/simulators/hexnode.md; the data comes from
 * hexnode-data.ts, the HTTP conventions from hexnode-http.ts.
 */
import express, { type Express, type RequestHandler, type Response, type Router } from 'express';
import type { Logger } from '../../common/log.js';
import { PLATFORM_WORD } from './hexnode-catalog.js';
import { generateHexnodeData, GroupError, hxTimeMicro, type HexnodeData, type HxDevice, type HxGroup } from './hexnode-data.js';
import { errorHandler, fieldError, HxHttpError, notFound, notFoundHtml, paginate, queryValue } from './hexnode-http.js';
import { controlRouter, faultMiddleware, flap, truncate } from './faults.js';
import { QuotaWindow } from './quota.js';
import { faultHook, requestRecorder, secretEquals, SimulatorState, type SimulatorCredentials, type SimulatorStateOptions } from './state.js';
import type { VendorOptions, VendorSimulator } from './vendors.js';

export const HEXNODE_API_BASE = '/api/v1';
export const HEXNODE_DEFAULT_DEVICES = 200;
export const HEXNODE_DEFAULT_SEED = 1;

/** The 401 bodies (chosen: Django REST Framework's own messages). */
export const HEXNODE_401_MISSING = 'Authentication credentials were not provided.';
export const HEXNODE_401_INVALID = 'Invalid token.';

export interface HexnodeStateOptions extends SimulatorStateOptions {
  devices?: number;
  seed?: number;
  /** Epoch ms `last_reported` & co. are relative to; defaults to the clock's now. */
  asOf?: number;
}

/** Shared state plus the portal's data (mutable: device groups change as clients call the API). */
export class HexnodeState extends SimulatorState {
  readonly vendor = 'hexnode' as const;
  readonly data: HexnodeData;

  constructor(opts: HexnodeStateOptions = {}) {
    super(opts);
    this.data = generateHexnodeData({
      devices: opts.devices ?? HEXNODE_DEFAULT_DEVICES,
      seed: opts.seed ?? HEXNODE_DEFAULT_SEED,
      asOf: opts.asOf ?? this.clock.now(),
    });
  }
}

export interface HexnodeOptions {
  credentials: SimulatorCredentials;
  /** Enforced requests per minute (429 beyond it). Undefined or 0: no quota. The vendor's is 30. */
  quotaPerMinute?: number;
  /** Where unexpected errors (bugs of the simulator) are logged. */
  logger?: Logger;
}

/** The registry's factory (vendors.ts). */
export function createHexnodeSimulator(o: VendorOptions): VendorSimulator<HexnodeState> {
  const state = new HexnodeState({
    ...(o.devices === undefined ? {} : { devices: o.devices }),
    ...(o.seed === undefined ? {} : { seed: o.seed }),
    ...(o.clock === undefined ? {} : { clock: o.clock }),
  });
  const app = createHexnodeApp(state, {
    credentials: o.credentials,
    logger: o.logger,
    ...(o.quotaPerMinute === undefined ? {} : { quotaPerMinute: o.quotaPerMinute }),
  });
  return { state, app, apiBase: HEXNODE_API_BASE, deviceCount: state.data.devices.length };
}

export function createHexnodeApp(state: HexnodeState, options: HexnodeOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // a 304 would hide what the simulator answered
  app.use(requestRecorder(state));
  app.use(controlRouter(state, options.credentials.controlToken));
  app.use(faultMiddleware(state, (res) => unauthorized(res, HEXNODE_401_INVALID)));
  app.use(faultHook(state));
  app.use(HEXNODE_API_BASE, apiRouter(state, options));
  app.use(notFoundHtml);
  app.use(errorHandler(options.logger));
  return app;
}

function unauthorized(res: Response, detail: string): void {
  res.status(401).json({ detail });
}

// ---- the API -----------------------------------------------------------------------------------

/** Path patterns of the API (relative to /api/v1), for the trailing-slash redirect. */
const ROUTES: readonly RegExp[] = [/^\/devices\/$/, /^\/devices\/\d+\/$/, /^\/devices\/\d+\/applications\/$/, /^\/devicegroups\/$/, /^\/devicegroups\/\d+\/$/, /^\/users\/$/];

function apiRouter(state: HexnodeState, options: HexnodeOptions): Router {
  const data = state.data;
  const now = (): number => state.clock.now();
  const api = express.Router({ caseSensitive: true, strict: true });

  // Headers every answer carries (as recorded behind the vendor's Apache).
  api.use((_req, res, next) => {
    res.setHeader('server', 'Apache');
    res.setHeader('strict-transport-security', 'max-age=63072000; includeSubDomains; preload');
    res.setHeader('vary', 'Accept, Accept-Language, Cookie');
    res.setHeader('x-frame-options', 'SAMEORIGIN');
    res.setHeader('content-language', 'en');
    res.setHeader('x-xss-protection', '1; mode=block');
    next();
  });

  // Django's APPEND_SLASH: a known path without its trailing slash is redirected, before any auth.
  api.use((req, res, next) => {
    if (req.path.endsWith('/') || !ROUTES.some((r) => r.test(`${req.path}/`))) return next();
    const q = req.originalUrl.indexOf('?');
    res.redirect(301, `${req.baseUrl}${req.path}/${q >= 0 ? req.originalUrl.slice(q) : ''}`);
  });

  api.use(apiKeyAuth(state, options.credentials));
  api.use(throttle(state, options.quotaPerMinute));
  api.use(express.json({ limit: '1mb' }));

  // ---- devices
  api
    .route('/devices/')
    .get((req, res) => {
      let list: HxDevice[] = data.devices;
      const group = queryValue(req, 'devicegroup');
      if (group !== undefined) {
        const g = /^\d{1,9}$/.test(group) ? data.group(Number(group)) : undefined;
        if (!g) throw fieldError('devicegroup', 'Select a valid choice. That choice is not one of the available choices.');
        list = data.members(g, now());
      }
      const page = paginate(req, flap(state, list));
      res.json({ ...page, results: truncate(state, page.results) });
    })
    .all(methodNotAllowed('GET'));

  api
    .route('/devices/:id/')
    .get((req, res) => {
      const d = deviceParam(data, req.params.id);
      if (!d) return notFoundHtml(req, res);
      res.json({ ...d, device_groups: data.groupsOf(d, now()).map((g) => ({ id: g.id, groupname: g.groupname })) });
    })
    .all(methodNotAllowed('GET'));

  api
    .route('/devices/:id/applications/')
    .get((req, res) => {
      const d = deviceParam(data, req.params.id);
      if (!d) return notFoundHtml(req, res);
      res.json(paginate(req, data.appsFor(d)));
    })
    .all(methodNotAllowed('GET'));

  // ---- device groups
  api
    .route('/devicegroups/')
    .get((req, res) => {
      const t = now();
      res.json(mapPage(paginate(req, data.groups), (g) => groupItem(data, g, t)));
    })
    .post((req, res) => {
      const body = objectBody(req.body);
      const name = requiredString(body, 'groupname', 100);
      const description = requiredString(body, 'description', 500, true);
      const devices = body.devices === undefined ? [] : idList(body, 'devices');
      const g = groupCall(() => data.createGroup(name, description, devices, now()));
      res.status(201).json(groupDetail(data, g, now()));
    })
    .all(methodNotAllowed('GET, POST'));

  api
    .route('/devicegroups/:id/')
    .get((req, res) => {
      const g = groupParam(data, req.params.id);
      if (!g) return notFoundHtml(req, res);
      res.json(groupDetail(data, g, now()));
    })
    .post((req, res) => {
      const g = groupParam(data, req.params.id);
      if (!g) return notFoundHtml(req, res);
      const body = objectBody(req.body);
      const add = idList(body, 'add_devices');
      const remove = idList(body, 'remove_devices');
      groupCall(() => data.changeMembers(g, add, remove, now()));
      res.json(groupDetail(data, g, now()));
    })
    .delete((req, res) => {
      const g = groupParam(data, req.params.id);
      if (!g) return notFoundHtml(req, res);
      groupCall(() => data.deleteGroup(g));
      res.status(204).end();
    })
    .all(methodNotAllowed('GET, POST, DELETE'));

  // ---- users
  api
    .route('/users/')
    .get((req, res) => {
      res.json(
        mapPage(paginate(req, data.users), (u) => ({ id: u.id, name: u.name, email: u.email, phoneno: u.phoneno, total_devices: data.deviceCountOf(u.id), domain: u.domain })),
      );
    })
    .all(methodNotAllowed('GET'));

  api.use(notFoundHtml);
  return api;
}

// ---- auth and throttling -----------------------------------------------------------------------

/** `Authorization: <api key>`, the key itself with no scheme; a missing or wrong key is 401. */
function apiKeyAuth(state: SimulatorState, credentials: SimulatorCredentials): RequestHandler {
  return (req, res, next) => {
    const given = req.headers.authorization;
    if (given === undefined || given.trim() === '') {
      state.counters.authFailures++;
      return unauthorized(res, HEXNODE_401_MISSING);
    }
    if (!secretEquals(given.trim(), credentials.apiKey)) {
      state.counters.authFailures++;
      return unauthorized(res, HEXNODE_401_INVALID);
    }
    next();
  };
}

/**
 * DRF's throttle (after authentication, per API key): beyond the quota a 429 with the vendor's
 * message. No Retry-After header (unconfirmed for the vendor; clients must read the message).
 */
function throttle(state: SimulatorState, perMinute: number | undefined): RequestHandler {
  if (!perMinute) return (_req, _res, next) => next();
  const quota = new QuotaWindow(() => state.clock.now(), perMinute, 60_000, true);
  return (_req, res, next) => {
    if (quota.take()) return next();
    state.counters.rateLimited++;
    res.status(429).json({ detail: `Request was throttled. Expected available in ${quota.secondsToReset()}.0 seconds.` });
  };
}

// ---- shapes and inputs ---------------------------------------------------------------------------

function mapPage<T, U>(p: { count: number; next: string | null; previous: string | null; results: T[] }, f: (t: T) => U): { count: number; next: string | null; previous: string | null; results: U[] } {
  return { count: p.count, next: p.next, previous: p.previous, results: p.results.map(f) };
}

function groupItem(data: HexnodeData, g: HxGroup, now: number): Record<string, unknown> {
  return {
    id: g.id,
    groupname: g.groupname,
    description: g.description,
    grouptype: g.grouptype,
    device_count: data.members(g, now).length,
    modified_date: hxTimeMicro(g.modifiedMs, g.modifiedMicro),
  };
}

/** `GET /devicegroups/{id}/` (as recorded): members in a flat list, not paged. */
function groupDetail(data: HexnodeData, g: HxGroup, now: number): Record<string, unknown> {
  return {
    id: g.id,
    groupname: g.groupname,
    description: g.description,
    devices: data.members(g, now).map((d) => ({ id: d.id, name: d.device_name, user_id: d.user.id, user_name: d.user.name, model_name: d.model_name, platform: PLATFORM_WORD[d.os_name] })),
    policy: [],
    location_history: [],
  };
}

function methodNotAllowed(allow: string): RequestHandler {
  return (req, res) => {
    res.setHeader('allow', `${allow}, OPTIONS`);
    res.status(405).json({ detail: `Method "${req.method}" not allowed.` });
  };
}

function deviceParam(data: HexnodeData, raw: unknown): HxDevice | undefined {
  const s = String(raw);
  if (!/^\d{1,9}$/.test(s)) return undefined;
  const d = data.device(Number(s));
  if (!d) throw notFound();
  return d;
}

function groupParam(data: HexnodeData, raw: unknown): HxGroup | undefined {
  const s = String(raw);
  if (!/^\d{1,9}$/.test(s)) return undefined;
  const g = data.group(Number(s));
  if (!g) throw notFound();
  return g;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HxHttpError(400, { non_field_errors: [`Invalid data. Expected a dictionary, but got ${Array.isArray(body) ? 'list' : typeof body}.`] });
  }
  return body as Record<string, unknown>;
}

function requiredString(body: Record<string, unknown>, field: string, max: number, allowBlank = false): string {
  const v = body[field];
  if (v === undefined || v === null) throw fieldError(field, 'This field is required.');
  if (typeof v !== 'string') throw fieldError(field, 'Not a valid string.');
  const s = v.trim();
  if (!allowBlank && s === '') throw fieldError(field, 'This field may not be blank.');
  if (s.length > max) throw fieldError(field, `Ensure this field has no more than ${max} characters.`);
  return s;
}

/** A list of device ids (numbers or digit strings, as DRF's PrimaryKeyRelatedField accepts). */
function idList(body: Record<string, unknown>, field: string): number[] {
  const v = body[field];
  if (v === undefined || v === null) throw fieldError(field, 'This field is required.');
  if (!Array.isArray(v)) throw fieldError(field, `Expected a list of items but got type "${typeof v}".`);
  if (v.length > 10_000) throw fieldError(field, 'Ensure this field has no more than 10000 elements.');
  return v.map((x) => {
    const s = typeof x === 'number' || typeof x === 'string' ? String(x).trim() : '';
    if (!/^\d{1,9}$/.test(s)) throw fieldError(field, `Incorrect type. Expected pk value, received ${typeof x}.`);
    return Number(s);
  });
}

function groupCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof GroupError) throw fieldError(e.field, e.message);
    throw e;
  }
}

