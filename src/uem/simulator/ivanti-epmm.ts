/**
 * The Ivanti EPMM (MobileIron Core) API v2 simulator as an Express app, without a listener: the REST
 * API under `/api/v2` (and the cloud-connected variant `/rest/api/v2`), HTTP Basic authentication,
 * the `{totalCount,resultCount,hasMore,results}` envelope with offset/limit paging, devices as flat
 * dotted-key records filtered by `query` and `labelId`, labels, label add/remove and batched app
 * inventories. Vendor facts and the choices made where they are unknown: docs/simulators/ivanti-epmm.md.
 * The data comes from ivanti-epmm-data.ts.
 */
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler, type Response, type Router } from 'express';
import type { Logger } from '../../common/log.js';
import { controlRouter, faultMiddleware, flap, truncate } from './faults.js';
import { DEVICE_FIELDS, DEVICE_SPACE, fieldOf, generateEpmmData, LabelError, type EpmmData, type EpmmDevice, type EpmmLabel } from './ivanti-epmm-data.js';
import { matches, parseQuery, QueryError, type QueryNode, type QueryRecord } from './ivanti-epmm-query.js';
import { QuotaWindow } from './quota.js';
import { faultHook, requestRecorder, secretEquals, SimulatorState, type SimulatorCredentials, type SimulatorStateOptions } from './state.js';
import type { VendorOptions, VendorSimulator } from './vendors.js';
import { parseBasic } from './workspace-one-auth.js';

export const EPMM_DEFAULT_DEVICES = 200;
export const EPMM_DEFAULT_SEED = 1;
export const EPMM_API_BASE = '/api/v2';
/** Devices and labels: `limit` must be 0..200 (labels: documented; devices: chosen to match). */
export const EPMM_MAX_LIMIT = 200;
export const EPMM_DEFAULT_LIMIT = 50;
export const EPMM_MAX_OFFSET = 10_000_000;
/** Devices per app-inventory call (the vendor's documented maximum). */
export const EPMM_MAX_APP_INVENTORY_UUIDS = 25;
/** Devices per label add/remove call (chosen). */
export const EPMM_MAX_LABEL_UUIDS = 1000;
export const EPMM_MAX_QUERY_LENGTH = 255;
export const EPMM_MAX_FIELDS = 512;
export const EPMM_VSP_VERSION = 'VSP 12.3.0.0 Build 15';

export interface IvantiEpmmStateOptions extends SimulatorStateOptions {
  devices?: number;
  seed?: number;
  /** Epoch ms last-connected timestamps are relative to; defaults to the clock's now. */
  asOf?: number;
}

/** Shared state plus the server's data (mutable: labels change as clients call the API). */
export class IvantiEpmmState extends SimulatorState {
  readonly vendor = 'ivanti-epmm' as const;
  readonly data: EpmmData;

  constructor(opts: IvantiEpmmStateOptions = {}) {
    super(opts);
    this.data = generateEpmmData({
      devices: opts.devices ?? EPMM_DEFAULT_DEVICES,
      seed: opts.seed ?? EPMM_DEFAULT_SEED,
      asOf: opts.asOf ?? this.clock.now(),
    });
  }
}

export interface IvantiEpmmOptions {
  credentials: SimulatorCredentials;
  /** Enforced requests per minute (429 beyond it). Undefined or 0: no quota. */
  quotaPerMinute?: number;
  /** Where unexpected errors (bugs of the simulator) are logged. */
  logger?: Logger;
}

/** The registry's factory (vendors.ts). */
export function createIvantiEpmmSimulator(o: VendorOptions): VendorSimulator<IvantiEpmmState> {
  const state = new IvantiEpmmState({
    ...(o.devices === undefined ? {} : { devices: o.devices }),
    ...(o.seed === undefined ? {} : { seed: o.seed }),
    ...(o.clock === undefined ? {} : { clock: o.clock }),
  });
  const app = createIvantiEpmmApp(state, {
    credentials: o.credentials,
    logger: o.logger,
    ...(o.quotaPerMinute === undefined ? {} : { quotaPerMinute: o.quotaPerMinute }),
  });
  return { state, app, apiBase: EPMM_API_BASE, deviceCount: state.data.devices.length };
}

export function createIvantiEpmmApp(state: IvantiEpmmState, options: IvantiEpmmOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // a 304 would hide what the simulator answered
  app.use(requestRecorder(state));
  app.use(controlRouter(state, options.credentials.controlToken));
  app.use(faultMiddleware(state, sendUnauthorized));
  app.use(faultHook(state));
  const api = apiRouter(state, options);
  app.use(EPMM_API_BASE, api);
  app.use('/rest/api/v2', api);
  app.use(notFound);
  app.use(errorHandler(options.logger));
  return app;
}

// ---- errors --------------------------------------------------------------------------------------

/**
 * The error body (chosen; the reference has no v2 error sample):
 * `{"messages":[{"type":"Error","messageKey":"com.mobileiron.vsp.messages.http.<status>","localizedMessage":"..."}]}`.
 */
export function sendEpmmError(res: Response, status: number, message: string): void {
  res.status(status).json({ messages: [{ type: 'Error', messageKey: `com.mobileiron.vsp.messages.http.${status}`, localizedMessage: message }] });
}

/** 401 for missing or wrong Basic credentials (and the authExpired fault). */
export function sendUnauthorized(res: Response): void {
  res.setHeader('www-authenticate', 'Basic realm="MobileIron"');
  sendEpmmError(res, 401, 'Unauthorized: the user name or password is wrong, or the user has no API role.');
}

/** An error a route throws to answer with the vendor's error body. */
export class EpmmHttpError extends Error {
  override readonly name = 'EpmmHttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const badRequest = (message: string): EpmmHttpError => new EpmmHttpError(400, message);

const notFound: RequestHandler = (req, res) => {
  sendEpmmError(res, 404, `No resource at ${req.method} ${req.path}.`);
};

function errorHandler(logger: Logger | undefined): ErrorRequestHandler {
  return (err: unknown, _req, res, _next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof EpmmHttpError) return sendEpmmError(res, err.status, err.message);
    if (err instanceof LabelError) return sendEpmmError(res, err.status, err.message);
    const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
    if (type === 'entity.parse.failed') return sendEpmmError(res, 400, 'The request body is not valid JSON.');
    if (type === 'entity.too.large') return sendEpmmError(res, 413, 'The request body is too large.');
    logger?.error('ivanti-epmm simulator: unexpected error', { err });
    sendEpmmError(res, 500, 'An unexpected error occurred.');
  };
}

// ---- parameters ----------------------------------------------------------------------------------

/** A query parameter (names are case-sensitive, as in the vendor's Java stack); repeats keep the first. */
function param(req: Request, name: string): string | undefined {
  const v = (req.query as Record<string, unknown>)[name];
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' ? s : undefined;
}

function intParam(req: Request, name: string, min: number, max: number): number | undefined {
  const v = param(req, name);
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d{1,12}$/.test(v.trim())) throw badRequest(`Invalid value '${v}' for ${name}: not a number.`);
  const n = Number(v);
  if (n < min || n > max) throw badRequest(`Invalid value '${v}' for ${name}: must be at least ${min} and no more than ${max}.`);
  return n;
}

/** Every call but ping names the admin's device space; the simulator has one, Global (1). */
function deviceSpace(req: Request): void {
  const v = param(req, 'adminDeviceSpaceId');
  if (v === undefined || v === '') throw badRequest('adminDeviceSpaceId is required.');
  if (!/^\d{1,9}$/.test(v)) throw badRequest(`Invalid value '${v}' for adminDeviceSpaceId.`);
  if (Number(v) !== DEVICE_SPACE.id) throw new EpmmHttpError(403, `The admin has no access to device space ${v}.`);
}

function paging(req: Request): { offset: number; limit: number } {
  return {
    limit: intParam(req, 'limit', 0, EPMM_MAX_LIMIT) ?? EPMM_DEFAULT_LIMIT,
    offset: intParam(req, 'offset', 0, EPMM_MAX_OFFSET) ?? 0,
  };
}

function sortOrder(req: Request): 1 | -1 {
  const v = param(req, 'sortOrder');
  if (v === undefined || v.toUpperCase() === 'ASC') return 1;
  if (v.toUpperCase() === 'DESC') return -1;
  throw badRequest(`Invalid value '${v}' for sortOrder: ASC or DESC.`);
}

/** The answer every list call gives. `results` may be shorter than `resultCount` only under the truncatePages fault. */
function envelope<T>(total: number, offset: number, page: readonly unknown[], shown: readonly T[]): { totalCount: number; resultCount: number; hasMore: boolean; results: readonly T[] } {
  return { totalCount: total, resultCount: page.length, hasMore: offset + page.length < total, results: shown };
}

function parseDeviceQuery(text: string): QueryNode {
  if (text.length > EPMM_MAX_QUERY_LENGTH) throw badRequest(`Invalid query: longer than ${EPMM_MAX_QUERY_LENGTH} characters.`);
  try {
    return parseQuery(text, { knownField: (f) => DEVICE_FIELDS.has(f) });
  } catch (e) {
    if (e instanceof QueryError) throw badRequest(`Invalid query: ${e.message}.`);
    throw e;
  }
}

/** `query` and/or `labelId` (one is required; an empty query means everything). */
function deviceFilter(req: Request, data: EpmmData): (d: EpmmDevice) => boolean {
  const text = param(req, 'query');
  const labelId = intParam(req, 'labelId', -1_000_000_000, 1_000_000_000);
  if (text === undefined && labelId === undefined) throw badRequest('One of the query or labelId parameters is required.');
  const node = parseDeviceQuery(text ?? '');
  let label: EpmmLabel | undefined;
  if (labelId !== undefined) {
    label = data.label(labelId);
    if (!label) throw new EpmmHttpError(404, `Label ${labelId} not found.`);
  }
  return (d) => (label === undefined || data.isMember(label, d)) && matches(node, d as unknown as QueryRecord);
}

function fieldList(req: Request): string[] {
  const raw = (req.query as Record<string, unknown>).fields;
  const parts = (Array.isArray(raw) ? raw : [raw]).filter((x): x is string => typeof x === 'string').flatMap((s) => s.split(','));
  const fields = [...new Set(parts.map((s) => s.trim()).filter((s) => s.length > 0))];
  if (fields.length === 0) throw badRequest('fields is required: a comma-separated list of field names.');
  if (fields.length > EPMM_MAX_FIELDS) throw badRequest(`fields: at most ${EPMM_MAX_FIELDS} fields.`);
  const long = fields.find((f) => f.length > 320);
  if (long) throw badRequest(`fields: '${long.slice(0, 40)}…' is longer than 320 characters.`);
  return fields;
}

/** The requested fields the simulator knows, null when the device has no value; unknown names are left out. */
function project(d: EpmmDevice, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) if (DEVICE_FIELDS.has(f)) out[f] = fieldOf(d, f) ?? null;
  return out;
}

function uuidList(req: Request): string[] {
  const raw = (req.query as Record<string, unknown>).deviceUuids;
  const parts = (Array.isArray(raw) ? raw : [raw]).filter((x): x is string => typeof x === 'string').flatMap((s) => s.split(','));
  return [...new Set(parts.map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0))];
}

function labelBody(body: unknown): string[] {
  const list = typeof body === 'object' && body !== null ? (body as { deviceUuids?: unknown }).deviceUuids : undefined;
  if (!Array.isArray(list) || !list.every((u) => typeof u === 'string')) throw badRequest('Invalid request body: expected {"deviceUuids":["<uuid>",...]}.');
  if (list.length > EPMM_MAX_LABEL_UUIDS) throw badRequest(`Invalid request body: at most ${EPMM_MAX_LABEL_UUIDS} deviceUuids per call.`);
  return list as string[];
}

// ---- the API -------------------------------------------------------------------------------------

function apiRouter(state: IvantiEpmmState, options: IvantiEpmmOptions): Router {
  const data = state.data;
  const api = express.Router();
  const creds = options.credentials;

  api.use((req, res, next) => {
    const basic = parseBasic(req.headers.authorization);
    if (!basic || !secretEquals(basic.user, creds.username) || !secretEquals(basic.password, creds.password)) {
      state.counters.authFailures++;
      sendUnauthorized(res);
      return;
    }
    next();
  });
  if (options.quotaPerMinute) {
    const quota = new QuotaWindow(() => state.clock.now(), options.quotaPerMinute, 60_000, true);
    api.use((_req, res, next) => {
      if (quota.take()) return next();
      state.counters.rateLimited++;
      const wait = quota.secondsToReset();
      res.setHeader('retry-after', String(wait));
      sendEpmmError(res, 429, `Too many requests: the limit is ${quota.limit} per minute. Retry after ${wait} seconds.`);
    });
  }
  api.use(express.json({ limit: '1mb' }));

  api.get('/ping', (_req, res) => {
    res.json({ results: { apiVersion: 2, vspVersion: EPMM_VSP_VERSION } });
  });

  api.get('/devices', (req, res) => {
    deviceSpace(req);
    const fields = fieldList(req);
    const p = paging(req);
    const keep = deviceFilter(req, data);
    let list = data.devices.filter(keep);
    const sortField = param(req, 'sortField');
    const dir = sortOrder(req);
    if (sortField !== undefined && sortField !== '') {
      if (!DEVICE_FIELDS.has(sortField)) throw badRequest(`Invalid value '${sortField}' for sortField.`);
      list = sortDevices(list, sortField, dir);
    } else if (dir < 0) list = list.slice().reverse();
    list = flap(state, list);
    const page = list.slice(p.offset, p.offset + p.limit);
    res.json(envelope(list.length, p.offset, page, truncate(state, page).map((d) => project(d, fields))));
  });

  api.get('/devices/count', (req, res) => {
    deviceSpace(req);
    const keep = deviceFilter(req, data);
    res.json({ totalCount: data.devices.reduce((n, d) => n + (keep(d) ? 1 : 0), 0) });
  });

  api.get('/devices/appinventory', (req, res) => {
    deviceSpace(req);
    const uuids = uuidList(req);
    if (uuids.length === 0) throw badRequest('deviceUuids is required: a comma-separated list of device uuids.');
    if (uuids.length > EPMM_MAX_APP_INVENTORY_UUIDS) throw badRequest(`deviceUuids: at most ${EPMM_MAX_APP_INVENTORY_UUIDS} devices per call (got ${uuids.length}).`);
    // Unknown uuids are left out of the answer, not refused.
    const rows = uuids.flatMap((u) => {
      const d = data.deviceByUuid(u);
      return d ? [{ deviceUuid: d['common.uuid'], appInventory: data.appsFor(d) }] : [];
    });
    res.json(envelope(rows.length, 0, rows, rows));
  });

  api.get('/labels/label_summary', (req, res) => {
    deviceSpace(req);
    const p = paging(req);
    const dir = sortOrder(req);
    const sortField = param(req, 'sortField');
    let list = data.labels.slice();
    if (sortField !== undefined && sortField !== '') {
      const key = LABEL_SORT[sortField];
      if (!key) throw badRequest(`Invalid value '${sortField}' for sortField.`);
      list.sort((a, b) => dir * compareKeys(key(a, data), key(b, data)) || a.id - b.id);
    } else if (dir < 0) list = list.reverse();
    const page = list.slice(p.offset, p.offset + p.limit);
    res.json(envelope(list.length, p.offset, page, page.map((l) => labelItem(l, data))));
  });

  for (const op of ['add', 'remove'] as const) {
    api.put(`/devices/labels/:labelName/${op}`, (req, res) => {
      deviceSpace(req);
      const name = String(req.params.labelName);
      const uuids = labelBody(req.body);
      data.applyLabel(name, uuids, op);
      res.json({ successful: true });
    });
  }

  api.use(notFound);
  return api;
}

// ---- shapes --------------------------------------------------------------------------------------

function labelItem(l: EpmmLabel, data: EpmmData): Record<string, unknown> {
  return {
    id: l.id,
    name: l.name,
    description: l.description,
    isStatic: l.criteria === null,
    criteria: l.criteria ?? '',
    deviceCount: data.deviceCount(l),
    deviceSpaceId: DEVICE_SPACE.id,
    deviceSpaceName: DEVICE_SPACE.name,
    deviceSpacePath: DEVICE_SPACE.path,
    rowType: l.rowType,
  };
}

type SortKey = string | number;

const LABEL_SORT: Record<string, (l: EpmmLabel, data: EpmmData) => SortKey> = {
  id: (l) => l.id,
  name: (l) => l.name.toLowerCase(),
  description: (l) => l.description.toLowerCase(),
  deviceCount: (l, data) => data.deviceCount(l),
  rowType: (l) => l.rowType,
};

function compareKeys(a: SortKey, b: SortKey): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Sorted copy; nulls first, ties broken by common.id. */
function sortDevices(list: EpmmDevice[], field: string, dir: 1 | -1): EpmmDevice[] {
  const key = (d: EpmmDevice): SortKey => {
    const v = fieldOf(d, field);
    if (v === null || v === undefined) return '';
    return typeof v === 'number' ? v : String(v).toLowerCase();
  };
  return list.slice().sort((a, b) => dir * (compareKeys(key(a), key(b)) || a['common.id'] - b['common.id']));
}
