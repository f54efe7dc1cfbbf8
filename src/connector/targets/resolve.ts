/**
 * A target's definition (from the config file, or offered by the cloud) made ready to run: secret
 * files read, the CA bundle and pins parsed, allow rules normalized. Every problem is a config
 * error naming the file, the key and what is wrong. Nothing here opens a connection: target.ts does.
 */
import { readFileSync } from 'node:fs';
import { systemClock, type Clock } from '../../common/clock.js';
import { configError, resolveFrom } from '../../common/config.js';
import { UemlinkError, fileProblem } from '../../common/errors.js';
import type { AllowRule } from '../../common/http-policy.js';
import type { CertInfo } from '../../common/pki.js';
import { secrets } from '../../common/redact.js';
import type { OAuthHooks, ResolvedAuth } from './auth.js';
import { HEADER_VALUE_RE, type CloudTargetDefinition, type TargetDefinition } from './schema.js';
import { TrustError, parseCaBundle, parsePin, type TrustConfig } from './trust.js';

export type TargetOrigin = 'local' | 'cloud';

export interface ResolveContext {
  /** Config file the definition came from (for relative paths and error messages). */
  configFile?: string;
  /** Where in that file, e.g. "targets[0]". */
  where: string;
  origin: TargetOrigin;
  clock?: Clock;
  oauthHooks?: OAuthHooks;
}

/** What a Target is built from: its definition with every file read and every value checked. */
export interface ResolvedTarget {
  id: string;
  baseUrl: URL;
  trust: TrustConfig & { caInfo: CertInfo[] };
  auth: ResolvedAuth;
  allow: AllowRule[];
  timeoutMs: number;
  maxConcurrent: number;
  healthPath: string | undefined;
  origin: TargetOrigin;
  clock: Clock;
  oauthHooks: OAuthHooks;
}

/** The config error for one key of the definition being resolved ("auth.passwordFile"). */
type Fail = (key: string, message: string) => UemlinkError;

/** Reads a secret given inline or by file; file paths are resolved against the config file. */
function secretOf(inline: string | undefined, file: string | undefined, configFile: string | undefined, key: string, fail: Fail, header = false): string | undefined {
  if (inline !== undefined) {
    secrets.add(inline);
    return inline;
  }
  if (file === undefined) return undefined;
  const p = configFile ? resolveFrom(configFile, file) : file;
  let v: string;
  try {
    v = readFileSync(p, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw fail(key, `cannot read ${p}: ${fileProblem(e)}`);
  }
  if (!v) throw fail(key, `${p} is empty`);
  // A value sent as a header must be sendable: otherwise every request failed with a 502 instead.
  if (header && !HEADER_VALUE_RE.test(v)) throw fail(key, `${p} holds a control character (a second trailing newline, a CR?); its value is sent as an HTTP header`);
  secrets.add(v);
  return v;
}

function resolveAuth(a: TargetDefinition['auth'] | CloudTargetDefinition['auth'], configFile: string | undefined, fail: Fail): ResolvedAuth {
  const files = a as Record<string, string | undefined>;
  switch (a.type) {
    case 'none':
      return { type: 'none' };
    case 'apiKey':
      return { type: 'apiKey', header: a.header, prefix: a.prefix, value: secretOf(a.value, files.valueFile, configFile, 'auth.valueFile', fail, true)! };
    case 'basic': {
      const out: ResolvedAuth = { type: 'basic', username: a.username, apiKeyHeader: a.apiKeyHeader, password: secretOf(a.password, files.passwordFile, configFile, 'auth.passwordFile', fail)! };
      const k = secretOf(a.apiKey, files.apiKeyFile, configFile, 'auth.apiKeyFile', fail, true);
      if (k !== undefined) out.apiKey = k;
      return out;
    }
    case 'oauth2': {
      const out: ResolvedAuth = {
        type: 'oauth2',
        tokenUrl: a.tokenUrl,
        clientId: a.clientId,
        clientAuth: a.clientAuth,
        apiKeyHeader: a.apiKeyHeader,
        clientSecret: secretOf(a.clientSecret, files.clientSecretFile, configFile, 'auth.clientSecretFile', fail)!,
      };
      if (a.scope !== undefined) out.scope = a.scope;
      if (a.audience !== undefined) out.audience = a.audience;
      const k = secretOf(a.apiKey, files.apiKeyFile, configFile, 'auth.apiKeyFile', fail, true);
      if (k !== undefined) out.apiKey = k;
      return out;
    }
  }
}

function resolveTrust(def: TargetDefinition | CloudTargetDefinition, configFile: string | undefined, fail: Fail): ResolvedTarget['trust'] {
  const tlsDef = def.tls as { caFile?: string; ca?: string; pinSha256?: string | string[]; serverName?: string };
  let caPems: string[] = [];
  let caInfo: CertInfo[] = [];
  try {
    if (tlsDef.caFile) {
      const p = configFile ? resolveFrom(configFile, tlsDef.caFile) : tlsDef.caFile;
      let text: string;
      try {
        text = readFileSync(p, 'utf8');
      } catch (e) {
        throw new TrustError(`cannot read ${p}: ${fileProblem(e)}`);
      }
      ({ pems: caPems, info: caInfo } = parseCaBundle(text, p));
    } else if (tlsDef.ca) {
      ({ pems: caPems, info: caInfo } = parseCaBundle(tlsDef.ca, 'the inline PEM'));
    }
  } catch (e) {
    throw fail(tlsDef.caFile ? 'tls.caFile' : 'tls.ca', (e as Error).message);
  }
  let pins: Buffer[] = [];
  try {
    const list = tlsDef.pinSha256 === undefined ? [] : Array.isArray(tlsDef.pinSha256) ? tlsDef.pinSha256 : [tlsDef.pinSha256];
    pins = list.map(parsePin);
  } catch (e) {
    throw fail('tls.pinSha256', (e as Error).message);
  }
  const trust: ResolvedTarget['trust'] = { caPems, pins, caInfo };
  if (tlsDef.serverName) trust.serverName = tlsDef.serverName;
  return trust;
}

/** Resolves one definition; throws a config error naming file, key and problem. */
export function resolveTarget(def: TargetDefinition | CloudTargetDefinition, ctx: ResolveContext): ResolvedTarget {
  const file = ctx.configFile ?? 'cloud-managed target';
  const fail: Fail = (key, message) => configError(file, `${ctx.where}.${key}`, message);
  const auth = resolveAuth(def.auth, ctx.configFile, fail);
  const trust = resolveTrust(def, ctx.configFile, fail);
  return {
    id: def.id,
    baseUrl: new URL(def.baseUrl),
    trust,
    auth,
    allow: def.allow.map((r) => ({ methods: r.methods === '*' ? ['*'] : r.methods, pathPrefix: r.pathPrefix })),
    timeoutMs: def.timeoutMs,
    maxConcurrent: def.maxConcurrent,
    healthPath: def.healthPath,
    origin: ctx.origin,
    clock: ctx.clock ?? systemClock,
    oauthHooks: ctx.oauthHooks ?? {},
  };
}

/**
 * Resolves the config file's targets, reporting every target's problem at once (one line each), so
 * that an install with three placeholder secret files is fixed in one pass, not three restarts.
 */
export function resolveLocalDefinitions(
  configFile: string,
  defs: readonly TargetDefinition[],
  extra: (def: TargetDefinition) => Partial<ResolveContext> = () => ({}),
  /** Given (diagnose): a target whose files cannot be read or used is reported here and left out, not thrown. */
  unresolved?: (def: TargetDefinition, err: UemlinkError) => void,
): ResolvedTarget[] {
  const out: ResolvedTarget[] = [];
  const problems: string[] = [];
  defs.forEach((def, i) => {
    try {
      out.push(resolveTarget(def, { configFile, where: `targets[${i}]`, origin: 'local', ...extra(def) }));
    } catch (e) {
      if (unresolved && e instanceof UemlinkError && (e.code === 'CONFIG_INVALID' || e.code === 'CONFIG_UNREADABLE')) unresolved(def, e);
      else if (e instanceof UemlinkError && e.code === 'CONFIG_INVALID') problems.push(e.message);
      else throw e;
    }
  });
  if (problems.length > 0) throw new UemlinkError('CONFIG_INVALID', problems.join('\n'));
  return out;
}
