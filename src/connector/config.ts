/** The connector's config file (docs/config.md#connector). */
import { join } from 'node:path';
import { z } from 'zod';
import { isHostPattern } from './host-policy.js';
import { LocalTargetSchema, type TargetDefinition } from './targets/schema.js';
import { configError, hostPort, logLevel, parseConfig, parseHostPort, readConfigFile, resolveFrom, tunnelTuning, type HostPort, type TunnelTuning } from '../common/config.js';

const cloudUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return ['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol) && !u.username && !u.password;
  } catch {
    return false;
  }
}, 'must be an http(s) URL of the cloud relay, e.g. "https://relay.example.com"');

/** allowedHosts entries: a host name, "*.domain" (any subdomain), an IP address or a CIDR block. */
const hostPattern = z.string().refine((p) => isHostPattern(p), 'must be a host name, "*.domain", an IP address or a CIDR block like 10.0.0.0/8');

export const ConnectorConfigSchema = z.strictObject({
  stateDir: z.string().min(1),
  cloudUrl: cloudUrl.optional(),
  cloud: z.strictObject({ caFile: z.string().min(1).optional() }).prefault({}),
  health: z.strictObject({ listen: hostPort.default('127.0.0.1:8081') }).prefault({}),
  targets: z.array(LocalTargetSchema).default([]),
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
});

export interface ConnectorConfig {
  file: string;
  stateDir: string;
  cloudUrl?: string;
  cloudCaFile?: string;
  health: { listen: HostPort };
  targets: TargetDefinition[];
  cloudManagedTargets: { allowedHosts: string[] };
  audit: { file: string; maxBytes: number; maxFiles: number };
  logLevel?: string;
  tunnel: TunnelTuning;
  drainTimeoutMs: number;
}

export function loadConnectorConfig(file: string): ConnectorConfig {
  const c = parseConfig(file, readConfigFile(file), ConnectorConfigSchema);
  const seen = new Set<string>();
  c.targets.forEach((t, i) => {
    if (seen.has(t.id)) throw configError(file, ['targets', i, 'id'], `"${t.id}" is used by another target`);
    seen.add(t.id);
  });
  const out: ConnectorConfig = {
    file,
    stateDir: resolveFrom(file, c.stateDir),
    health: { listen: parseHostPort(c.health.listen)! },
    targets: c.targets,
    cloudManagedTargets: c.cloudManagedTargets,
    audit: { file: c.audit.file ? resolveFrom(file, c.audit.file) : join(resolveFrom(file, c.stateDir), 'audit.log'), maxBytes: c.audit.maxBytes, maxFiles: c.audit.maxFiles },
    tunnel: c.tunnel,
    drainTimeoutMs: c.drainTimeoutSeconds * 1000,
  };
  if (c.cloudUrl) out.cloudUrl = c.cloudUrl;
  if (c.cloud.caFile) out.cloudCaFile = resolveFrom(file, c.cloud.caFile);
  if (c.logLevel) out.logLevel = c.logLevel;
  return out;
}
