/**
 * The Workspace ONE UEM (AirWatch) simulator as an Express app, without a listener: the REST API under
 * `/API` (any case: Express routing is case-insensitive, like IIS), its Basic + tenant-code and OAuth2
 * authentication, rate-limit headers and an optional quota. Vendor facts and the choices made where
 * they are unknown are in docs/uem-simulator.md; the data comes from workspace-one-data.ts.
 */
import { randomUUID } from 'node:crypto';
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler, type Response, type Router } from 'express';
import { z } from 'zod';
import type { Logger } from '../../common/log.js';
import { controlRouter, faultMiddleware, flap, truncate } from './faults.js';
import { apiAuth, parseBasic, sendWsError, tokenEndpoint } from './workspace-one-auth.js';
import { generateWorkspaceOneData, parseWsTime, TagError, usDateTime, type OrgGroup, type Tag, type WorkspaceOneData, type WsDevice } from './workspace-one-data.js';
import { QuotaWindow } from './quota.js';
import { faultHook, requestRecorder, SimulatorState, type SimulatorCredentials, type SimulatorStateOptions } from './state.js';

export const WS1_DEFAULT_DEVICES = 200;
export const WS1_DEFAULT_SEED = 1;
export const WS1_DEFAULT_TOKEN_TTL_SECONDS = 3600;
/** The largest page the API serves to third-party clients; bigger requests are clamped. */
export const WS1_MAX_PAGE_SIZE = 500;
/** What a tenant advertises when no quota is configured (from a recorded tenant); never enforced. */
export const WS1_ADVERTISED_LIMIT = 250_000;
export const WS1_PRODUCT_VERSION = '24.6.0.12';

export interface WorkspaceOneStateOptions extends SimulatorStateOptions {
  devices?: number;
  seed?: number;
  /** Epoch ms LastSeen & co. are relative to; defaults to the clock's now (start of the simulator). */
  asOf?: number;
}

/** Shared state plus the tenant's data (mutable: tags change as clients call the API). */
export class WorkspaceOneState extends SimulatorState {
  readonly vendor = 'workspace-one' as const;
  readonly data: WorkspaceOneData;

  constructor(opts: WorkspaceOneStateOptions = {}) {
    super(opts);
    this.data = generateWorkspaceOneData({
      devices: opts.devices ?? WS1_DEFAULT_DEVICES,
      seed: opts.seed ?? WS1_DEFAULT_SEED,
      asOf: opts.asOf ?? this.clock.now(),
    });
  }
}

export interface WorkspaceOneOptions {
  credentials: SimulatorCredentials;
  /** Lifetime of tokens from /connect/token. Default 3600 (what the vendor's token service gives). */
  tokenTtlSeconds?: number;
  /** Enforced requests per minute (429 beyond it). Undefined or 0: no quota (headers still sent). */
  quotaPerMinute?: number;
  /** Where unexpected errors (bugs of the simulator) are logged. */
  logger?: Logger;
}

export function createWorkspaceOneApp(state: WorkspaceOneState, options: WorkspaceOneOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // a 304 would hide what the simulator answered
  app.use(requestRecorder(state));
  app.use(faultHook(state));
  // Test-only: GET/PUT /_simulator/faults (x-simulator-control), then the switchable fault modes
  // (latency, 500s, 429, expired credentials) before any route; list faults are in the routes below.
  app.use(controlRouter(state, options.credentials.controlToken));
  app.use(faultMiddleware(state, expiredCredentials));
  app.post('/connect/token', ...tokenEndpoint(state, { credentials: options.credentials, tokenTtlSeconds: options.tokenTtlSeconds ?? WS1_DEFAULT_TOKEN_TTL_SECONDS }));
  app.use('/api', apiRouter(state, options));
  app.use(notFoundHtml);
  app.use(errorHandler(options.logger));
  return app;
}

// ---- plumbing shared by the routes -------------------------------------------------------------

/** An error a route throws to answer with the vendor's error body. */
export class WsHttpError extends Error {
  override readonly name = 'WsHttpError';
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
  ) {
    super(message);
  }
}

const badRequest = (message: string): WsHttpError => new WsHttpError(400, 400, message);
const notFound = (message: string): WsHttpError => new WsHttpError(404, 404, message);

/**
 * Answers `x-api-version` / `api-supported-versions` for the version asked for in
 * `Accept: application/json;version=N` (1 when absent). An unsupported version falls back to the
 * highest supported one below it, as the recorded tenant did (version=2 on a v1-only call -> v1).
 */
function negotiateVersion(req: Request, res: Response, supported: readonly number[]): number {
  const m = /version\s*=\s*"?(\d+)/i.exec(req.headers.accept ?? '');
  const want = m ? Number(m[1]) : 1;
  const below = supported.filter((v) => v <= want);
  const v = supported.includes(want) ? want : below.length ? Math.max(...below) : Math.min(...supported);
  res.setHeader('x-api-version', `v${v}`);
  res.setHeader('api-supported-versions', supported.join(', '));
  return v;
}

/** Query parameters with lower-cased names: ASP.NET binds them case-insensitively (pageSize = pagesize). */
function queryOf(req: Request): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(req.query as Record<string, unknown>)) {
    const s = Array.isArray(v) ? v[0] : v;
    if (typeof s === 'string' && !out.has(k.toLowerCase())) out.set(k.toLowerCase(), s);
  }
  return out;
}

function intParam(q: Map<string, string>, name: string, min: number): number | undefined {
  const v = q.get(name);
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d+$/.test(v.trim()) || Number(v) < min) throw badRequest(`Invalid value '${v}' for ${name}.`);
  return Number(v);
}

function paging(q: Map<string, string>): { page: number; pageSize: number } {
  return { page: intParam(q, 'page', 0) ?? 0, pageSize: Math.min(intParam(q, 'pagesize', 1) ?? WS1_MAX_PAGE_SIZE, WS1_MAX_PAGE_SIZE) };
}

function pageOf<T>(items: T[], p: { page: number; pageSize: number }): T[] {
  return items.slice(p.page * p.pageSize, (p.page + 1) * p.pageSize);
}

function contains(haystack: string, needle: string | undefined): boolean {
  return needle === undefined || haystack.toLowerCase().includes(needle.toLowerCase());
}

function sameText(a: string, b: string | undefined): boolean {
  return b === undefined || a.toLowerCase() === b.toLowerCase();
}

function noContent(res: Response): void {
  res.status(204).end();
}

const notFoundHtml: RequestHandler = (_req, res) => {
  // Unknown routes answer IIS's HTML page, not JSON (the vendor does this; adapters must cope).
  res
    .status(404)
    .type('html')
    .send('<!DOCTYPE html>\n<html><head><title>404 - File or directory not found.</title></head><body><h2>404 - File or directory not found.</h2></body></html>\n');
};

/**
 * The `authExpired` fault: the 401 the API gives for credentials that stopped working, in the same
 * shape as apiAuth's (Bearer: invalid_token challenge; Basic: the 1005 "user not found" body).
 */
function expiredCredentials(res: Response): void {
  const header = res.req.headers.authorization;
  if (/^\s*Bearer\s/i.test(header ?? '')) {
    res.setHeader('www-authenticate', 'Bearer error="invalid_token", error_description="The access token has expired."');
    sendWsError(res, 401, 1005, 'The access token has expired.');
    return;
  }
  res.setHeader('www-authenticate', 'Basic realm="AirWatch"');
  sendWsError(res, 401, 1005, `An error occurred while validating remote service client credentials or user not found : ${parseBasic(header)?.user ?? ''}`);
}

function errorHandler(logger: Logger | undefined): ErrorRequestHandler {
  return (err: unknown, _req, res, _next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof WsHttpError) return sendWsError(res, err.status, err.errorCode, err.message);
    const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
    if (type === 'entity.parse.failed') return sendWsError(res, 400, 400, 'The request body is not valid JSON.');
    if (type === 'entity.too.large') return sendWsError(res, 413, 413, 'The request body is too large.');
    logger?.error('workspace-one simulator: unexpected error', { err });
    sendWsError(res, 500, 500, 'An unexpected error occurred.');
  };
}

// ---- the API -----------------------------------------------------------------------------------

function apiRouter(state: WorkspaceOneState, options: WorkspaceOneOptions): Router {
  const data = state.data;
  const quota = options.quotaPerMinute
    ? new QuotaWindow(() => state.clock.now(), options.quotaPerMinute, 60_000, true)
    : new QuotaWindow(() => state.clock.now(), WS1_ADVERTISED_LIMIT, 86_400_000, false);
  const api = express.Router();

  // Headers every API answer carries, errors included.
  api.use((req, res, next) => {
    const cid = req.headers['x-correlation-id'];
    res.setHeader('x-correlation-id', typeof cid === 'string' && cid.length > 0 && cid.length <= 128 ? cid : randomUUID());
    res.setHeader('strict-transport-security', 'max-age=31536000; includeSubDomains');
    res.setHeader('x-content-type-options', 'nosniff');
    negotiateVersion(req, res, [1]);
    quota.setHeaders(res);
    next();
  });
  api.use(apiAuth(state, options.credentials));
  // The quota is per tenant, so it is counted after authentication has named the tenant.
  api.use((_req, res, next) => {
    const ok = quota.take();
    quota.setHeaders(res);
    if (ok) return next();
    state.counters.rateLimited++;
    const wait = quota.secondsToReset();
    res.setHeader('retry-after', String(wait));
    sendWsError(res, 429, 429, `The API request quota of ${quota.limit} per minute is used up. Retry after ${wait} seconds.`);
  });
  api.use(express.json({ limit: '1mb' }));

  api.get('/system/info', (req, res) => {
    negotiateVersion(req, res, [1]);
    res.json({ ProductName: 'Workspace ONE UEM (uemlink simulator)', ProductVersion: WS1_PRODUCT_VERSION });
  });

  api.get('/mdm/devices/search', (req, res) => {
    negotiateVersion(req, res, [1, 2, 3]);
    const q = queryOf(req);
    const p = paging(q);
    const lgid = intParam(q, 'lgid', 0);
    const since = q.get('lastseen');
    const sinceMs = since ? parseWsTime(since) : undefined;
    if (sinceMs !== undefined && Number.isNaN(sinceMs)) throw badRequest(`Invalid value '${since}' for lastseen.`);
    const matching = data.devices.filter(
      (d) =>
        sameText(d.UserName, q.get('user')) &&
        sameText(d.Model, q.get('model')) &&
        sameText(d.Platform, q.get('platform')) &&
        sameText(d.Ownership, q.get('ownership')) &&
        (lgid === undefined || data.isWithin(d.LocationGroupId.Id.Value, lgid)) &&
        (sinceMs === undefined || parseWsTime(d.LastSeen) >= sinceMs),
    );
    // flapDevices: this answer's list lacks some devices, and its Total says so (a list that
    // changes between calls, not a broken page).
    const list = flap(state, matching);
    if (list.length === 0) return noContent(res);
    // Devices are generated in id order; sorting 100k devices on every page would dominate benchmarks.
    if (q.has('orderby') || q.has('sortorder')) sortDevices(list, q.get('orderby'), q.get('sortorder'));
    // truncatePages: the page is cut short while Page/PageSize/Total still describe the full result.
    res.json({ Devices: truncate(state, pageOf(list, p)), Page: p.page, PageSize: p.pageSize, Total: list.length });
  });

  // Full records of the devices named by id (BulkValues), in the order asked; unknown ids are left out.
  api.post('/mdm/devices/id', (req, res) => {
    negotiateVersion(req, res, [1]);
    const body = parseBody(bulkBody, req.body);
    const found: WsDevice[] = [];
    const seen = new Set<number>();
    for (const raw of body.BulkValues.Value) {
      const v = String(raw).trim();
      const d = /^\d{1,9}$/.test(v) ? data.device(Number(v)) : undefined;
      if (!d || seen.has(d.Id.Value)) continue;
      seen.add(d.Id.Value);
      found.push(d);
    }
    if (found.length === 0) return noContent(res);
    // truncatePages: fewer records than asked for; a client that counts notices.
    res.json({ Devices: truncate(state, found) });
  });

  api.get('/mdm/devices/:uuid/apps/search', (req, res) => {
    negotiateVersion(req, res, [1]);
    const d = data.deviceByUuid(String(req.params.uuid));
    if (!d) throw notFound(`Device ${String(req.params.uuid)} was not found.`);
    const apps = data.appsFor(d);
    if (apps.length === 0) return noContent(res);
    res.json({ app_items: pageOf(apps, paging(queryOf(req))), TotalResults: apps.length });
  });

  api.get('/system/groups/search', (req, res) => {
    const version = negotiateVersion(req, res, [1, 2]);
    const q = queryOf(req);
    const p = paging(q);
    const list = data.groups.filter((g) => sameText(g.groupId, q.get('groupid')) && contains(g.name, q.get('name')) && sameText(g.type, q.get('type')));
    if (list.length === 0) return noContent(res);
    const page = pageOf(list, p);
    if (version === 1) {
      res.json({ LocationGroups: page.map(groupV1), Page: p.page, PageSize: p.pageSize, Total: list.length });
      return;
    }
    const self = `${req.protocol}://${req.get('host') ?? ''}${req.baseUrl}/system/groups/search?page=${p.page}&pagesize=${p.pageSize}`;
    res.json({ OrganizationGroups: page.map(groupV2), AdditionalInfo: { Links: [{ Rel: 'self', Href: self }] }, TotalResults: list.length });
  });

  api.get('/system/groups/:id/children', (req, res) => {
    negotiateVersion(req, res, [1]);
    const id = idParam(req.params.id, 'organization group id');
    if (!data.group(id)) throw notFound(`Organization group ${id} was not found.`);
    // The whole hierarchy: the group itself and everything below it (as recorded).
    res.json(data.subtree(id).map(groupV1));
  });

  api.get('/mdm/smartgroups/search', (req, res) => {
    negotiateVersion(req, res, [1]);
    const q = queryOf(req);
    const p = paging(q);
    const og = intParam(q, 'organizationgroupid', 0);
    const managedBy = intParam(q, 'managedbyorganizationgroupid', 0);
    const list = data.smartGroups.filter(
      (s) =>
        contains(s.name, q.get('name')) &&
        (managedBy === undefined || s.managedBy.id === managedBy) &&
        // Visible at a group: managed by it or by one of its ancestors.
        (og === undefined || data.isWithin(og, s.managedBy.id)),
    );
    if (list.length === 0) return noContent(res);
    const desc = q.get('sortorder')?.toLowerCase() === 'desc' ? -1 : 1;
    if (q.get('orderby')?.toLowerCase() === 'name') list.sort((a, b) => desc * a.name.localeCompare(b.name));
    else if (desc < 0) list.reverse();
    res.json({
      SmartGroups: pageOf(list, p).map((s) => ({
        SmartGroupID: s.id,
        SmartGroupUuid: s.uuid,
        Name: s.name,
        ManagedByOrganizationGroupId: String(s.managedBy.id),
        ManagedByOrganizationGroupUuid: s.managedBy.uuid,
        ManagedByOrganizationGroupName: s.managedBy.name,
        Devices: data.devices.reduce((n, d) => n + (d.EnrollmentStatus === 'Enrolled' && s.matches(d) ? 1 : 0), 0),
        Assignments: s.assignments,
        Exclusions: s.exclusions,
      })),
      Page: p.page,
      PageSize: p.pageSize,
      Total: list.length,
    });
  });

  // The members of a smart group: enrolled devices matching its criteria (what its Devices count
  // counts), without paging, as SmartGroupDevices { Devices: [{ Id (string), Name, … }] }.
  api.get('/mdm/smartgroups/:id/devices', (req, res) => {
    negotiateVersion(req, res, [1]);
    const id = idParam(req.params.id, 'smart group id');
    const sg = data.smartGroups.find((s) => s.id === id);
    if (!sg) throw notFound(`Smart group ${id} was not found.`);
    const q = queryOf(req);
    const bound = (name: string): number | undefined => {
      const v = q.get(name);
      if (v === undefined || v === '') return undefined;
      const t = parseWsTime(v);
      if (Number.isNaN(t)) throw badRequest(`Invalid value '${v}' for ${name}.`);
      return t;
    };
    const since = bound('seensince');
    const till = bound('seentill');
    const members = flap(
      state,
      data.devices.filter((d) => {
        if (d.EnrollmentStatus !== 'Enrolled' || !sg.matches(d)) return false;
        const seen = parseWsTime(d.LastSeen);
        return (since === undefined || seen >= since) && (till === undefined || seen <= till);
      }),
    );
    if (members.length === 0) return noContent(res);
    res.json({ Devices: members.map(smartGroupDevice) });
  });

  api.get('/mdm/tags/search', (req, res) => {
    negotiateVersion(req, res, [1]);
    const q = queryOf(req);
    const p = paging(q);
    const og = intParam(q, 'organizationgroupid', 0);
    // Visible at a group: defined there or at one of its ancestors. `name` matches a part of the name.
    const list = data.tags.filter((t) => contains(t.name, q.get('name')) && (og === undefined || data.isWithin(og, t.locationGroupId)));
    if (list.length === 0) return noContent(res);
    res.json({ Tags: pageOf(list, p).map(tagItem), Page: p.page, PageSize: p.pageSize, Total: list.length });
  });

  api.post('/mdm/tags/addtag', (req, res) => {
    negotiateVersion(req, res, [1]);
    const body = parseBody(addTagBody, req.body);
    try {
      const tag = data.createTag(body.TagName, Number(body.LocationGroupId), state.clock.now());
      res.json({ Value: tag.id });
    } catch (e) {
      if (e instanceof TagError) throw badRequest(e.message);
      throw e;
    }
  });

  for (const op of ['add', 'remove'] as const) {
    api.post(`/mdm/tags/:id/${op}devices`, (req, res) => {
      negotiateVersion(req, res, [1]);
      const tag = tagParam(data, req.params.id);
      const body = parseBody(bulkBody, req.body);
      res.json(data.bulkTag(tag, body.BulkValues.Value, op, state.clock.now()));
    });
  }

  api.get('/mdm/tags/:id/devices', (req, res) => {
    negotiateVersion(req, res, [1]);
    const tag = tagParam(data, req.params.id);
    const rows = [...tag.devices].flatMap(([id, when]) => {
      const d = data.device(id);
      return d ? [{ DeviceId: d.Id.Value, FriendlyName: d.DeviceFriendlyName, DateTagged: when, DeviceUuid: d.Uuid }] : [];
    });
    if (rows.length === 0) return noContent(res);
    res.json({ Device: rows });
  });

  api.use(notFoundHtml);
  return api;
}

// ---- shapes and inputs ---------------------------------------------------------------------------

/** v2 search item: Id is a plain int, counts are strings (as recorded). */
function groupV2(g: OrgGroup): Record<string, unknown> {
  return {
    Id: g.id,
    Uuid: g.uuid,
    Name: g.name,
    GroupId: g.groupId,
    LocationGroupType: g.type,
    Country: g.country,
    Locale: 'English (United States)',
    CreatedOn: usCreated(g),
    LgLevel: g.level,
    Users: String(g.userCount),
    Admins: String(g.admins),
    Devices: String(g.deviceCount),
  };
}

/** v1 item (children, v1 search): Id and parent as `{"Value":n}` objects (as recorded). */
function groupV1(g: OrgGroup): Record<string, unknown> {
  return {
    Name: g.name,
    GroupId: g.groupId,
    LocationGroupType: g.type,
    Country: g.country,
    Locale: 'en-US',
    ParentLocationGroup: { Id: { Value: g.parentId }, Uuid: g.parentUuid },
    CreatedOn: usCreated(g),
    LgLevel: g.level,
    Users: String(g.userCount),
    Admins: String(g.admins),
    Devices: String(g.deviceCount),
    Id: { Value: g.id },
    Uuid: g.uuid,
  };
}

/** SmartGroupDevice: the id (typed string in the vendor's spec) and a few details, not the full record. */
function smartGroupDevice(d: WsDevice): Record<string, unknown> {
  return { Id: String(d.Id.Value), Name: d.DeviceFriendlyName, Model: d.Model, OperatingSystem: d.OperatingSystem, Platform: d.Platform, Ownership: d.Ownership };
}

function usCreated(g: OrgGroup): string {
  return usDateTime(g.createdOn);
}

function tagItem(t: Tag): Record<string, unknown> {
  return { Id: { Value: t.id }, TagName: t.name, TagType: t.type, LocationGroupId: t.locationGroupId, DateTagged: t.createdOn, Uuid: t.uuid };
}

const byDeviceId = (d: WsDevice): number => d.Id.Value;
const DEVICE_SORT_KEYS: Record<string, (d: WsDevice) => string | number> = {
  id: byDeviceId,
  deviceid: byDeviceId,
  lastseen: (d) => d.LastSeen,
  username: (d) => d.UserName.toLowerCase(),
  model: (d) => d.Model.toLowerCase(),
  platform: (d) => d.Platform.toLowerCase(),
  serialnumber: (d) => d.SerialNumber,
  devicefriendlyname: (d) => d.DeviceFriendlyName.toLowerCase(),
  ownership: (d) => d.Ownership,
  enrollmentstatus: (d) => d.EnrollmentStatus,
  compliancestatus: (d) => d.ComplianceStatus,
};

/** Sorts in place; unknown `orderby` values are ignored (device id order), ties break on the id. */
function sortDevices(list: WsDevice[], orderby: string | undefined, sortorder: string | undefined): void {
  const key = DEVICE_SORT_KEYS[(orderby ?? 'id').toLowerCase()] ?? DEVICE_SORT_KEYS.id!;
  const dir = sortorder?.toLowerCase() === 'desc' ? -1 : 1;
  // The data is kept in id order: ascending by id needs no sort (adapters page with orderby=deviceid).
  if (key === byDeviceId && dir === 1) return;
  list.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka < kb) return -dir;
    if (ka > kb) return dir;
    return dir * (a.Id.Value - b.Id.Value);
  });
}

function idParam(raw: unknown, what: string): number {
  const s = String(raw);
  if (!/^\d{1,9}$/.test(s)) throw badRequest(`Invalid ${what} '${s}'.`);
  return Number(s);
}

function tagParam(data: WorkspaceOneData, raw: unknown): Tag {
  const id = idParam(raw, 'tag id');
  const tag = data.tag(id);
  if (!tag) throw notFound(`Tag ${id} was not found.`);
  return tag;
}

const addTagBody = z.object({
  TagName: z.string().trim().min(1).max(255),
  TagType: z.union([z.literal('Device'), z.literal(1), z.literal('1')]).optional(),
  LocationGroupId: z.union([z.number().int().positive(), z.string().regex(/^\d{1,9}$/)]),
});

const bulkBody = z.object({
  BulkValues: z.object({ Value: z.array(z.union([z.string(), z.number()])).max(10_000) }),
});

function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw badRequest(`Invalid request body: ${i.path.join('.') || '(body)'}: ${i.message}`);
  }
  return r.data;
}
