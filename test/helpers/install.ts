/**
 * What the install tests share: the checkout's scripts, running commands with a clean environment,
 * finding system tools, and a temporary root (DESTDIR) the install script can create users in.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants as fsc, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './procs.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const INSTALL = join(ROOT, 'scripts/install.sh');
export const UNINSTALL = join(ROOT, 'scripts/uninstall.sh');
export const MAIN = join(ROOT, 'dist/src/cli/main.js');
export const isRoot = process.getuid?.() === 0;

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; the environment never leaks DESTDIR/PREFIX/NODE or tokens from the caller. */
export function run(cmd: string, args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Run {
  const env: Record<string, string | undefined> = { ...process.env, ...opts.env };
  for (const k of ['DESTDIR', 'PREFIX', 'NODE', 'UEMLINK_ADMIN_TOKEN', 'UEMLINK_PAIRING_TOKEN']) if (!opts.env || !(k in opts.env)) delete env[k];
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, cwd: opts.cwd ?? ROOT });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function describeRun(r: Run): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** A command on PATH or in the usual system directories (sbin is missing from some PATHs). */
export function which(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, cmd);
    try {
      accessSync(p, fsc.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function skipBecause(ctx: Mocha.Context, why: string): never {
  // mocha's skip() takes no reason: print it, so a skipped check is never silent.
  console.log(`      skipped: ${why}`);
  ctx.skip();
}

/** A temporary root with the smallest user database useradd --prefix works with. */
export function makeRoot(): string {
  const d = tempDir('uemlink-destdir-');
  chmodSync(d, 0o755);
  mkdirSync(join(d, 'etc'));
  writeFileSync(join(d, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  writeFileSync(join(d, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  return d;
}

/** The [Service] settings of a unit file, last value wins (enough for the keys the tests use). */
export function unitSettings(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0 && !line.startsWith('#')) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}
