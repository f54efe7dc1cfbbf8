/**
 * Loading a JSON config file: parse, validate with a zod schema, and report problems the way an admin
 * can act on them: `connector.json: targets[0].baseUrl: must be an https URL`. Relative paths inside
 * a config are resolved against the config file's directory, so a unit file can be moved.
 */
import { isIP } from 'node:net';
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { UemlinkError, fileProblem } from './errors.js';
import { didYouMean } from './did-you-mean.js';
import { secrets } from './redact.js';


/** The smallest tunnel.maxFrameBytes either side may configure: what always fits in one frame. */
export const MIN_FRAME_BYTES = 32 * 1024;
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(top level)';
}

export function configError(file: string, path: ReadonlyArray<PropertyKey> | string, message: string): UemlinkError {
  const where = typeof path === 'string' ? path : formatPath(path);
  return new UemlinkError('CONFIG_INVALID', `${basename(file)}: ${where}: ${message}`);
}

/** Parses and validates; every issue is listed, one per line, each naming file and key. */
export function parseConfig<S extends z.ZodType>(file: string, text: string, schema: S): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    let where = '';
    const pos = m ? Number(m[1]) : /end of JSON input/.test(msg) ? text.length : undefined;
    if (pos !== undefined) {
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      const col = pos - before.lastIndexOf('\n');
      where = ` at line ${line}, column ${col}`;
    }
    throw new UemlinkError('CONFIG_INVALID', `${basename(file)}: not valid JSON${where}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `${basename(file)}: ${formatPath(i.path)}: ${issueMessage(i, schema)}`);
    throw new UemlinkError('CONFIG_INVALID', lines.join('\n'));
  }
  return r.data;
}

function issueMessage(i: z.core.$ZodIssue, schema: z.ZodType): string {
  switch (i.code) {
    case 'unrecognized_keys': {
      const known = keysAt(schema, i.path);
      const hints = i.keys.map((k) => [k, didYouMean(k, known)] as const);
      const named = hints.map(([k, m]) => (m ? `"${k}" (did you mean "${m}"?)` : `"${k}"`)).join(', ');
      return `unknown key${i.keys.length > 1 ? 's' : ''} ${named}${hints.every(([, m]) => m) ? '' : ' (check the spelling)'}`;
    }
    case 'invalid_type':
      return /received undefined/.test(i.message) ? 'is required' : `must be ${article(i.expected)}`;
    default:
      return i.message;
  }
}

/**
 * The keys an object schema accepts at a path of the input, for "did you mean". Walks through the
 * wrappers a config schema uses (defaults, pipes, arrays, records, unions: every option's keys, as
 * the option that matched is not known here). Unknown shapes give no keys, so no hint.
 */
export function keysAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): Set<string> {
  const out = new Set<string>();
  const walk = (s: z.core.$ZodType, depth: number): void => {
    const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
    const inner = (k: string) => walk(def[k] as z.core.$ZodType, depth);
    switch (def.type) {
      case 'optional': case 'nullable': case 'default': case 'prefault': case 'catch': case 'readonly': case 'nonoptional':
        return inner('innerType');
      case 'pipe':
        return inner('in');
      case 'lazy':
        return walk((def.getter as () => z.core.$ZodType)(), depth);
      case 'union':
        for (const o of def.options as z.core.$ZodType[]) walk(o, depth);
        return;
      case 'intersection':
        inner('left');
        return inner('right');
      default:
        break;
    }
    if (depth === path.length) {
      if (def.type === 'object') for (const k of Object.keys(def.shape as object)) out.add(k);
      return;
    }
    const step = path[depth];
    if (def.type === 'object' && typeof step === 'string') {
      const child = (def.shape as Record<string, z.core.$ZodType>)[step];
      if (child) walk(child, depth + 1);
    } else if (def.type === 'array' && typeof step === 'number') walk(def.element as z.core.$ZodType, depth + 1);
    else if (def.type === 'record') walk(def.valueType as z.core.$ZodType, depth + 1);
  };
  walk(schema, 0);
  return out;
}

function article(t: string): string {
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

export function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UemlinkError('CONFIG_UNREADABLE', `cannot read config ${file}: ${fileProblem(e)}`);
  }
}


/**
 * Gathers the problems found after the schema (files named by keys, cross-key rules), so that all of
 * them are reported together, as the schema's own are: an admin fixes a config in one pass.
 */
export class ConfigProblems {
  private readonly lines: string[] = [];

  /** Notes a problem found without a step to run (a cross-key rule). */
  note(e: UemlinkError): void {
    this.lines.push(e.message);
  }

  /** Runs a step; a config error is noted and gives undefined, anything else is thrown. */
  attempt<T>(step: () => T): T | undefined {
    try {
      return step();
    } catch (e) {
      if (e instanceof UemlinkError && e.code === 'CONFIG_INVALID') {
        this.note(e);
        return undefined;
      }
      throw e;
    }
  }

  /** Throws one CONFIG_INVALID listing every problem noted, one per line. */
  throwIfAny(): void {
    if (this.lines.length > 0) throw new UemlinkError('CONFIG_INVALID', this.lines.join('\n'));
  }
}

/** Reads a (non-secret) file named by a config key; errors name the config file and the key. */
export function readFileForKey(configFile: string, key: string, p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch (e) {
    throw configError(configFile, key, `cannot read ${p}: ${fileProblem(e)}`);
  }
}

/** Resolves a path from a config file relative to that file's directory. */
export function resolveFrom(configFile: string, p: string): string {
  return isAbsolute(p) ? p : resolve(dirname(resolve(configFile)), p);
}

/**
 * Reads a secret from a file named in config (`passwordFile`, `adminTokenFile`, ...). Trailing
 * newlines are dropped (editors add them). The value is registered for redaction.
 */
export function readSecretFile(configFile: string, key: string, p: string): string {
  const full = resolveFrom(configFile, p);
  let v: string;
  try {
    v = readFileSync(full, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw configError(configFile, key, `cannot read ${full}: ${fileProblem(e)}`);
  }
  if (v.length === 0) throw configError(configFile, key, `${full} is empty`);
  secrets.add(v);
  return v;
}

/** True when a secret file can be read by group or others (we warn; systemd credentials are 0400). */
export function isLooselyProtected(p: string): boolean {
  try {
    return (statSync(p).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}

// ---- shared schema pieces --------------------------------------------------------------------

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(s: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

export const hostPort = z
  .string()
  .refine((s) => parseHostPort(s) !== undefined, 'must be "HOST:PORT" (IPv6 as "[::1]:PORT"), port 0-65535');

/** localhost, ::1 or an IPv4 address in 127/8 (a name such as "127.example.com" is not). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

export const logLevel = z.enum(['error', 'warn', 'info', 'debug']);

/** Tunnel tuning shared by both sides; defaults suit almost everyone. */
export const tunnelTuning = z
  .strictObject({
    heartbeatSeconds: z.number().min(1).max(300).default(15),
    handshakeTimeoutSeconds: z.number().min(1).max(120).default(10),
    maxConcurrentStreams: z.number().int().min(1).max(100_000).default(1024),
    initialWindowBytes: z.number().int().min(16 * 1024).max(64 * 1024 * 1024).default(1024 * 1024),
    maxFrameBytes: z.number().int().min(MIN_FRAME_BYTES).max(1024 * 1024).default(64 * 1024),
  })
  .prefault({});
export type TunnelTuning = z.infer<typeof tunnelTuning>;
