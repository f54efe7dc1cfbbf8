/**
 * Protection of the local page's actions: the local admin password (from config, or generated at
 * first start into a 0600 file whose path is logged) checked in constant time with failures rate
 * limited per address, and CSRF protection by a double-submit cookie plus an Origin check.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { Request, Response } from 'express';
import { UemlinkError } from '../common/errors.js';
import { ensurePrivateDir, writePrivateFile } from '../common/fs-secure.js';
import type { Logger } from '../common/log.js';
import { secrets } from '../common/redact.js';
import { safeEqual } from '../common/safe-equal.js';
import { cookie } from '../common/web.js';

export const CSRF_COOKIE = 'uemlink_csrf';

export async function loadAdminPassword(opts: { file?: string; stateDir: string; logger: Logger }): Promise<{ password: string; file: string; generated: boolean }> {
  const file = opts.file ?? join(opts.stateDir, 'admin-password');
  try {
    const v = (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
    if (v.length < 8) throw new UemlinkError('CONFIG_INVALID', `the local admin password in ${file} is shorter than 8 characters`);
    secrets.add(v);
    return { password: v, file, generated: false };
  } catch (e) {
    if (e instanceof UemlinkError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || opts.file) {
      throw new UemlinkError('CONFIG_UNREADABLE', `cannot read the local admin password file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const password = randomBytes(18).toString('base64url');
  secrets.add(password);
  await ensurePrivateDir(opts.stateDir);
  await writePrivateFile(file, `${password}\n`, 'local admin password');
  opts.logger.warn('generated the local admin password for the connector page; read it from the file (root or the service user only)', { file });
  return { password, file, generated: true };
}

export function passwordMatches(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false;
  return safeEqual(given, expected);
}

/** The page's CSRF token: the cookie's, or a new one set now. */
export function csrfToken(req: Request, res: Response, secure: boolean): string {
  const existing = cookie(req, CSRF_COOKIE);
  if (existing && /^[A-Za-z0-9_-]{43}$/.test(existing)) return existing;
  const t = randomBytes(32).toString('base64url');
  res.append('Set-Cookie', `${CSRF_COOKIE}=${t}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`);
  return t;
}

/** Why a state-changing request fails the CSRF checks, or undefined when it passes. */
export function csrfProblem(req: Request, secure: boolean): string | undefined {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `${secure ? 'https' : 'http'}://${req.headers.host}`) return 'the request came from another site';
  const c = cookie(req, CSRF_COOKIE);
  const f = (req.body as Record<string, unknown> | undefined)?.csrf;
  // Fix (issue 7): compared through safeEqual; Buffer.from() of equal-length strings with different
  // UTF-8 byte lengths made timingSafeEqual throw (a 500 instead of a 403).
  if (!c || typeof f !== 'string' || !safeEqual(c, f)) {
    return 'the form has expired or was not sent by this page (missing or wrong CSRF token), so nothing was changed; open the page again (reloading would send the same form)';
  }
  return undefined;
}

/** This machine's name, short and full: what an admin on the network types. */
export function localHostnames(): string[] {
  const h = hostname().toLowerCase();
  return h ? [h, h.split('.')[0]!] : [];
}

/**
 * Why a request's Host is refused, or undefined. IP addresses always pass (DNS rebinding needs a
 * name the attacker controls), as do the names in `allowed`; anything else is refused.
 */
export function hostProblem(host: string | undefined, allowed: ReadonlySet<string>): string | undefined {
  if (!host) return 'the request has no Host header';
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:]+)(?::\d{1,5})?$/.exec(host);
  const name = m?.[1]?.toLowerCase();
  if (name === undefined) return `the Host header "${host.slice(0, 100)}" is not a host name`;
  if (name.startsWith('[') || isIP(name) !== 0 || allowed.has(name)) return undefined;
  return `this page does not answer to the host name "${name.slice(0, 100)}": open it by IP address, localhost or this machine's name, or add the name to health.allowedHostnames`;
}
