/** The connector's config file (docs/config.md#connector). */
import { join } from 'node:path';
import { z } from 'zod';
import { isHostPattern } from './host-policy.js';
import { LocalTargetSchema, type TargetDefinition } from './targets/schema.js';
import { ConfigProblems, configError, hostPort, isLoopbackHost, logLevel, parseConfig, parseHostPort, readConfigFile, readFileForKey, readSecretFile, resolveFrom, tunnelTuning, type HostPort, type TunnelTuning } from '../common/config.js';
import { secrets } from '../common/redact.js';
import { MAX_TARGETS_PER_CONNECTOR } from '../protocol/messages.js';

const cloudUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return ['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol) && !u.username && !u.password;
  } catch {
    return false;
  }
}, 'must be an http(s) URL of the cloud relay, e.g. "https://relay.example.com"');

/** allowedHosts entries: a host name, "*.domain" (any subdomain), an IP address or a CIDR block, optionally with ":port". */
const hostPattern = z.string().refine((p) => isHostPattern(p), 'must be a host name, "*.domain", an IP address or a CIDR block like 10.0.0.0/8, optionally with a port ("uem.corp:443", "[fd00::/8]:443")');

export const ConnectorConfigSchema = z.strictObject({
  stateDir: z.string().min(1),
  cloudUrl: cloudUrl.optional(),
  cloud: z.strictObject({ caFile: z.string().min(1).optional() }).prefault({}),
  /** The local page, status API, readiness and metrics (docs/status.md). */
  health: z
    .strictObject({
      listen: hostPort.default('127.0.0.1:8081'),
      tls: z.strictObject({ certFile: z.string().min(1), keyFile: z.string().min(1) }).optional(),
      /** Required to listen beyond loopback without TLS: the page carries the admin password. */
      allowPlainHttp: z.boolean().default(false),
      /** Default: generated at first start into <stateDir>/admin-password (0600), path logged. */
      adminPasswordFile: z.string().min(1).optional(),
      /** /readyz also requires every target to have answered its last health check. */
      requireTargets: z.boolean().default(false),
      /**
       * Host names the page answers to besides IP addresses, localhost and this machine's name (a
       * DNS-rebinding page, under a name it controls, is refused).
       */
      allowedHostnames: z.array(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a host name (letters, digits, "." and "-")')).default([]),
      /** How often targets are health-checked (an authenticated GET of healthPath); 0 turns it off. */
      checkIntervalSeconds: z.number().max(3600).refine((v) => v === 0 || v >= 5, 'must be 0 (off) or at least 5').default(30),
    })
    .prefault({}),
  /** The corporate proxy between this network and the cloud (default: HTTPS_PROXY / NO_PROXY). */
  proxy: z
    .strictObject({
      /** http://[user[:password]@]host:port — prefer passwordFile for the password. */
      url: z.string().refine((s) => {
        try {
          return ['http:', 'https:'].includes(new URL(s).protocol);
        } catch {
          return false;
        }
      }, 'must be an http:// or https:// proxy URL'),
      username: z.string().min(1).optional(),
      passwordFile: z.string().min(1).optional(),
      /** Hosts never proxied (loopback never is): names, ".domain" suffixes, IPs. */
      noProxy: z.array(z.string()).default([]),
    })
    .optional(),
  /** Also write the daemon's log (JSON lines) to this file, rotated; support bundles include its tail. */
  logFile: z.string().min(1).optional(),
  targets: z.array(LocalTargetSchema).max(MAX_TARGETS_PER_CONNECTOR, `at most ${MAX_TARGETS_PER_CONNECTOR} targets (their ids travel in one tunnel frame)`).default([]),
  /** What the cloud may add as targets over the tunnel (default: nothing without an admin's approval). */
  cloudManagedTargets: z.strictObject({ allowedHosts: z.array(hostPattern).default([]) }).prefault({}),
  audit: z
    .strictObject({
      /** Default: audit.log in the state directory. */
      file: z.string().min(1).optional(),
      maxBytes: z.number().int().min(64 * 1024).default(10 * 1024 * 1024),
      maxFiles: z.number().int().min(1).max(100).default(5),
    })
    .prefault({}),
  logLevel: logLevel.optional(),
  tunnel: tunnelTuning,
  drainTimeoutSeconds: z.number().min(0).max(3600).default(30),
  /** Renew the connector's certificate over the tunnel when it has fewer days left than this. */
  certificateRenewDays: z.number().int().min(1).max(3650).default(30),
});

export interface ConnectorConfig {
  file: string;
  stateDir: string;
  cloudUrl?: string;
  cloudCaFile?: string;
  health: {
    listen: HostPort;
    tls?: { cert: string; key: string };
    allowPlainHttp: boolean;
    adminPasswordFile?: string;
    requireTargets: boolean;
    checkIntervalMs: number;
    allowedHostnames: string[];
  };
  proxy?: { url: string; noProxy: string[] };
  logFile?: string;
  targets: TargetDefinition[];
  cloudManagedTargets: { allowedHosts: string[] };
  audit: { file: string; maxBytes: number; maxFiles: number };
  logLevel?: string;
  tunnel: TunnelTuning;
  drainTimeoutMs: number;
  certificateRenewDays: number;
  /** Every secret file the config names, resolved (`connector diagnose` checks their modes). */
  secretFiles: string[];
}

export function loadConnectorConfig(file: string): ConnectorConfig {
  const c = parseConfig(file, readConfigFile(file), ConnectorConfigSchema);
  const problems = new ConfigProblems();
  const seen = new Set<string>();
  c.targets.forEach((t, i) => {
    if (seen.has(t.id)) problems.note(configError(file, ['targets', i, 'id'], `"${t.id}" is used by another target`));
    seen.add(t.id);
  });
  const out: ConnectorConfig = {
    file,
    stateDir: resolveFrom(file, c.stateDir),
    health: {
      listen: parseHostPort(c.health.listen)!,
      allowPlainHttp: c.health.allowPlainHttp,
      requireTargets: c.health.requireTargets,
      checkIntervalMs: c.health.checkIntervalSeconds * 1000,
      allowedHostnames: c.health.allowedHostnames.map((h) => h.toLowerCase()),
    },
    targets: c.targets,
    cloudManagedTargets: c.cloudManagedTargets,
    audit: { file: c.audit.file ? resolveFrom(file, c.audit.file) : join(resolveFrom(file, c.stateDir), 'audit.log'), maxBytes: c.audit.maxBytes, maxFiles: c.audit.maxFiles },
    tunnel: c.tunnel,
    drainTimeoutMs: c.drainTimeoutSeconds * 1000,
    certificateRenewDays: c.certificateRenewDays,
    secretFiles: [
      ...c.targets.flatMap((t) => {
        const a = t.auth as Record<string, unknown>;
        return ['passwordFile', 'apiKeyFile', 'clientSecretFile', 'valueFile'].flatMap((k) => (typeof a[k] === 'string' ? [resolveFrom(file, a[k])] : []));
      }),
      ...(c.health.adminPasswordFile ? [resolveFrom(file, c.health.adminPasswordFile)] : []),
      ...(c.health.tls ? [resolveFrom(file, c.health.tls.keyFile)] : []),
      ...(c.proxy?.passwordFile ? [resolveFrom(file, c.proxy.passwordFile)] : []),
    ],
  };
  if (!isLoopbackHost(out.health.listen.host) && !c.health.tls && !c.health.allowPlainHttp) {
    problems.note(configError(file, 'health.listen', `listening on ${c.health.listen} (beyond loopback) needs health.tls, or health.allowPlainHttp: true to accept plain HTTP`));
  }
  if (c.health.requireTargets && c.health.checkIntervalSeconds === 0) {
    // Readiness would wait for a check that never runs: never ready, with nothing saying why.
    problems.note(configError(file, 'health.requireTargets', 'needs the target health checks, which health.checkIntervalSeconds: 0 turns off'));
  }
  if (c.health.tls) {
    const tls = c.health.tls;
    const cert = problems.attempt(() => readFileForKey(file, 'health.tls.certFile', resolveFrom(file, tls.certFile)));
    const key = problems.attempt(() => readSecretFile(file, 'health.tls.keyFile', tls.keyFile));
    if (cert !== undefined && key !== undefined) out.health.tls = { cert, key };
  }
  if (c.health.adminPasswordFile) out.health.adminPasswordFile = resolveFrom(file, c.health.adminPasswordFile);
  if (c.proxy) {
    const u = new URL(c.proxy.url);
    if (c.proxy.username) u.username = encodeURIComponent(c.proxy.username);
    const passwordFile = c.proxy.passwordFile;
    if (passwordFile) u.password = encodeURIComponent(problems.attempt(() => readSecretFile(file, 'proxy.passwordFile', passwordFile)) ?? '');
    if (u.password) secrets.add(decodeURIComponent(u.password));
    out.proxy = { url: u.toString(), noProxy: c.proxy.noProxy };
  }
  if (c.logFile) out.logFile = resolveFrom(file, c.logFile);
  if (c.cloudUrl) out.cloudUrl = c.cloudUrl;
  if (c.cloud.caFile) out.cloudCaFile = resolveFrom(file, c.cloud.caFile);
  if (c.logLevel) out.logLevel = c.logLevel;
  problems.throwIfAny();
  return out;
}
