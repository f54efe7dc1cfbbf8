/**
 * What the console's route modules share (router.ts builds it once): the services, page rendering,
 * the form-post guard, the tenant list, and the small readers of forms and query strings.
 */
import type { Request, RequestHandler, Response } from 'express';
import { UemlinkError } from '../../../common/errors.js';
import { redactString } from '../../../common/redact.js';
import { ApiProblem } from '../../integrations/service.js';
import type { ConsoleDeps } from '../router.js';
import type { Html } from '../html.js';
import type { Flash, NavKey } from '../layout.js';
import type { ConsoleSession } from '../session.js';

export interface PageOpts {
  title: string;
  body: Html;
  active?: NavKey;
  tenant?: string | undefined;
  flash?: Flash | undefined;
}

export interface ConsoleContext {
  deps: ConsoleDeps;
  /** The body parser of every form post. */
  form: RequestHandler;
  page(res: Response, status: number, opts: PageOpts): void;
  problemPage(res: Response, status: number, title: string, text: string, back?: string, backText?: string): void;
  /** The cross-site checks of a form post; answers 403 with the reason when they fail. */
  guard(req: Request, res: Response): boolean;
  /** The console page a form was sent from (its same-origin Referer), to go back to it. */
  formPage(req: Request): string | undefined;
  tenants(): Promise<string[]>;
  /** The tenant asked for (if well-formed), else the first one there is. */
  pickTenant(v: unknown, all: string[]): string | undefined;
  /** The signed-in session's CSRF token (only behind the session check of routes/auth.ts). */
  csrfOf(res: Response): string;
  now(): number;
}

export const sessionOf = (res: Response): ConsoleSession => res.locals.session as ConsoleSession;

export type Body = Record<string, string | string[] | undefined>;

export const bodyOf = (req: Request): Body => (req.body ?? {}) as Body;

export function one(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return '';
}

export function many(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/** A form's number as a number when it is one; otherwise the text, for the validator to name. */
export function num(v: string): unknown {
  const t = v.trim();
  return /^-?\d{1,9}$/.test(t) ? Number(t) : t;
}

export function pageParam(v: unknown): number {
  const n = typeof v === 'string' && /^\d{1,7}$/.test(v) ? Number(v) : 1;
  return Math.max(1, n);
}

export function searchParam(v: unknown): string {
  return typeof v === 'string' ? v.trim().slice(0, 100) : '';
}

/** The HTTP status and message of an error the services throw for bad input, or undefined. */
export function userError(e: unknown): { status: number; message: string } | undefined {
  if (e instanceof ApiProblem) return { status: e.status, message: redactString(e.message) };
  if (e instanceof UemlinkError && e.code === 'INVALID_INPUT') return { status: 400, message: redactString(e.message) };
  if (e instanceof UemlinkError && e.code === 'NOT_FOUND') return { status: 404, message: redactString(e.message) };
  return undefined;
}

/**
 * The page a request that failed gets, or undefined for an internal error (logged, a 500 page).
 * Our own refusals come first: an `ApiProblem` has a numeric `status` too, and the generic 4xx
 * case below would show "the request could not be read" instead of its message (an integration
 * removed while its page acted on it: "removed meanwhile").
 */
export function requestProblem(err: unknown): { status: number; title: string; text: string } | undefined {
  const u = userError(err);
  if (u) return { status: u.status, title: 'Refused', text: u.message };
  const e = err as { type?: string; status?: unknown; statusCode?: unknown } | null | undefined;
  if (e?.type === 'entity.too.large' || e?.type === 'parameters.too.many') return { status: 413, title: 'Too large', text: 'The form is too large.' };
  if (e?.type === 'entity.parse.failed') return { status: 400, title: 'Bad form', text: 'The form could not be read.' };
  // Any other refusal of the request itself (the body parser's charset, a malformed escape in the
  // URL): the client's problem, not an internal error worth the error log.
  const code = typeof e?.status === 'number' ? e.status : typeof e?.statusCode === 'number' ? e.statusCode : 0;
  if (code >= 400 && code < 500) return { status: code, title: 'Bad request', text: 'The request could not be read.' };
  return undefined;
}
