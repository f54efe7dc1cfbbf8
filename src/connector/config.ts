/** The connector's config file (docs/config.md#connector). */
import { z } from 'zod';
import { configError, hostPort, logLevel, parseConfig, parseHostPort, readConfigFile, resolveFrom, tunnelTuning, type HostPort, type TunnelTuning } from '../common/config.js';

const cloudUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return ['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol) && !u.username && !u.password;
  } catch {
    return false;
  }
}, 'must be an http(s) URL of the cloud relay, e.g. "https://relay.example.com"');

export const TARGET_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Targets are completed by the relay issue; here only what the tunnel advertises. */
export const TargetSchema = z.object({
  id: z.string().regex(TARGET_ID_RE, 'must be 1-64 letters, digits, "-" or "_"'),
  baseUrl: z.string().refine((s) => {
    try {
      return new URL(s).protocol === 'https:';
    } catch {
      return false;
    }
  }, 'must be an https URL'),
});

export const ConnectorConfigSchema = z.strictObject({
  stateDir: z.string().min(1),
  cloudUrl: cloudUrl.optional(),
  cloud: z.strictObject({ caFile: z.string().min(1).optional() }).prefault({}),
  health: z.strictObject({ listen: hostPort.default('127.0.0.1:8081') }).prefault({}),
  targets: z.array(TargetSchema).default([]),
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
  targets: Array<z.infer<typeof TargetSchema>>;
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
    tunnel: c.tunnel,
    drainTimeoutMs: c.drainTimeoutSeconds * 1000,
  };
  if (c.cloudUrl) out.cloudUrl = c.cloudUrl;
  if (c.cloud.caFile) out.cloudCaFile = resolveFrom(file, c.cloud.caFile);
  if (c.logLevel) out.logLevel = c.logLevel;
  return out;
}
