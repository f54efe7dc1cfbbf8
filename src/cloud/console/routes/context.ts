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
