/**
 * How the simulated Hexnode API speaks HTTP: Django REST Framework's conventions, which the real API
 * shows (the `{count,next,previous,results}` envelope, `{"detail": ...}` errors, the throttling
 * message). Page-number paging with absolute `next`/`previous` links built the way DRF builds them,
 * the error type routes throw, and Django's HTML pages for unknown paths and crashes.
 */
import type { ErrorRequestHandler, Request, Response } from 'express';
import type { Logger } from '../../common/log.js';

/** Page size when `per_page` is absent or not a positive integer (chosen; the vendor's is unknown). */
export const HEXNODE_DEFAULT_PAGE_SIZE = 25;
/** Larger `per_page` values are clamped to this (chosen: the size open-source clients ask for). */
export const HEXNODE_MAX_PAGE_SIZE = 100;

/** An error a route throws to answer with a DRF-style JSON body. */
export class HxHttpError extends Error {
  override readonly name = 'HxHttpError';
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(typeof body.detail === 'string' ? body.detail : JSON.stringify(body));
  }
}

export const detailError = (status: number, detail: string): HxHttpError => new HxHttpError(status, { detail });
/** DRF's validation error: messages listed under the field they belong to. */
export const fieldError = (field: string, message: string): HxHttpError => new HxHttpError(400, field === 'detail' ? { detail: message } : { [field]: [message] });
export const notFound = (): HxHttpError => detailError(404, 'Not found.');

export interface Page<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

/** The first value of a query parameter, if it is a string. */
export function queryValue(req: Request, name: string): string | undefined {
  const v = (req.query as Record<string, unknown>)[name];
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' ? s : undefined;
}

/**
 * PageNumberPagination with `page_size_query_param = 'per_page'`: `page` is 1-based (or "last"),
 * an invalid or out-of-range page is 404 "Invalid page.", an invalid `per_page` falls back to the
 * default, a large one is clamped. An empty list still has page 1.
 */
export function paginate<T>(req: Request, items: readonly T[]): Page<T> {
  const perPage = pageSize(queryValue(req, 'per_page'));
  const pages = Math.max(1, Math.ceil(items.length / perPage));
  const raw = queryValue(req, 'page') ?? '1';
  const page = raw === 'last' ? pages : /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(page) || page < 1 || page > pages) throw detailError(404, 'Invalid page.');
  return {
    count: items.length,
    next: page < pages ? linkWithPage(req, page + 1) : null,
    // DRF drops the parameter for the first page instead of writing page=1.
    previous: page > 1 ? linkWithPage(req, page - 1 === 1 ? null : page - 1) : null,
    results: items.slice((page - 1) * perPage, page * perPage),
  };
}

function pageSize(raw: string | undefined): number {
  if (raw === undefined || !/^\s*\d+\s*$/.test(raw) || Number(raw) < 1) return HEXNODE_DEFAULT_PAGE_SIZE;
  return Math.min(Number(raw), HEXNODE_MAX_PAGE_SIZE);
}

/**
 * The request's absolute URL with `page` replaced (or removed when null), the way DRF's
 * replace_query_param does it: parameters sorted by name, blank values kept, form-encoded.
 */
function linkWithPage(req: Request, page: number | null): string {
  const u = new URL(req.originalUrl, `${req.protocol}://${req.get('host') ?? 'localhost'}`);
  const params = new Map<string, string[]>();
  for (const [k, v] of u.searchParams) params.set(k, [...(params.get(k) ?? []), v]);
  if (page === null) params.delete('page');
  else params.set('page', [String(page)]);
  const q = new URLSearchParams();
  for (const [k, vs] of [...params].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) for (const v of vs) q.append(k, v);
  u.search = q.toString();
  return u.toString();
}

/** Django's production 404 page (unknown URLs never reach DRF, so they are HTML, not JSON). */
export function notFoundHtml(_req: Request, res: Response): void {
  res
    .status(404)
    .type('html')
    .send('<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n');
}

export function errorHandler(logger: Logger | undefined): ErrorRequestHandler {
  return (err: unknown, _req, res, _next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HxHttpError) {
      res.status(err.status).json(err.body);
      return;
    }
    const e = typeof err === 'object' && err !== null ? (err as { type?: unknown; message?: unknown }) : {};
    if (e.type === 'entity.parse.failed') {
      res.status(400).json({ detail: `JSON parse error - ${typeof e.message === 'string' ? e.message : 'invalid JSON'}` });
      return;
    }
    if (e.type === 'entity.too.large') {
      res.status(413).json({ detail: 'Request body is too large.' });
      return;
    }
    logger?.error('hexnode simulator: unexpected error', { err });
    res.status(500).type('html').send('<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n');
  };
}
