/** The cloud relay's config file (docs/config.md#cloud). */
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigProblems, configError, hostPort, logLevel, parseConfig, parseHostPort, readConfigFile, readFileForKey, readSecretFile, resolveFrom, tunnelTuning, type HostPort, type TunnelTuning } from '../common/config.js';
import { secrets } from '../common/redact.js';

const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return ['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol) && !u.username && !u.password && !u.search && !u.hash;
  } catch {
    return false;
  }
}, 'must be an http(s) URL without credentials, query or fragment, e.g. "https://relay.example.com"');

/**
 * TLS handshakes in progress at once (handshake-gate.ts): enough for ~3,400 a second through 300 ms
 * of round trip, and at most ~0.5 s (resumed) to ~1 s (full, RSA-2048) of ClientHellos in one turn
 * of the event loop on the 2-core VM.
 */
export const DEFAULT_MAX_TLS_HANDSHAKES = 1024;

export const CloudConfigSchema = z.strictObject({
  listen: hostPort,
  publicUrl: httpUrl,
  dataDir: z.string().min(1),
  adminToken: z.string().min(16, 'must be at least 16 characters').optional(),
  adminTokenFile: z.string().min(1).optional(),
  tls: z
    .strictObject({
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
      /** TLS handshakes in progress at once; more connections wait their turn (handshake-gate.ts). */
      maxConcurrentHandshakes: z.number().int().min(1).max(100_000).default(DEFAULT_MAX_TLS_HANDSHAKES),
    })
    .optional(),
  logLevel: logLevel.optional(),
  tunnel: tunnelTuning,
  drainTimeoutSeconds: z.number().min(0).max(3600).default(30),
  pairing: z
    .strictObject({
      /** Failed pairing attempts allowed per client address per minute before 429. */
      maxFailuresPerMinute: z.number().int().min(1).max(10_000).default(10),
      /** Wrong secrets for a live pairing token of one tenant per minute (all addresses) before 429. */
      maxFailuresPerTenantPerMinute: z.number().int().min(1).max(10_000).default(30),
      /** Lifetime of issued connector certificates. */
      certificateDays: z.number().int().min(1).max(3650).default(365),
      /** Connectors renew over the tunnel when their certificate has fewer days left than this. */
      renewBeforeDays: z.number().int().min(1).max(3650).default(30),
    })
    .prefault({}),
  relay: z
    .strictObject({
      /** Longest wait for a UEM's answer (head) and longest pause inside a body. */
      timeoutSeconds: z.number().min(1).max(3600).default(60),
      /** Largest request body the relay accepts (413 too_large beyond). */
      maxRequestBytes: z.number().int().min(1024).default(1024 * 1024 * 1024),
      /** A JSON line per call to the relay API (off unless present; `{}` takes the defaults). */
      accessLog: z
        .strictObject({
          /** Default: relay-access.log in the data directory. */
          file: z.string().min(1).optional(),
          maxBytes: z.number().int().min(64 * 1024).default(100 * 1024 * 1024),
          maxFiles: z.number().int().min(1).max(100).default(5),
        })
        .optional(),
    })
    .prefault({}),
  integrations: z
    .strictObject({
      /** First retry backoff of UEM calls in milliseconds (doubling, 4 attempts). */
      retryBaseMs: z.number().int().min(1).max(60_000).optional(),
      /** After a start, each integration's first sync comes within this many seconds (jittered). */
      firstRunWithinSeconds: z.number().min(0).max(3600).optional(),
    })
    .prefault({}),
  /** Handshakes in progress beyond which new tunnels are told to come back later (storm control). */
  // A refused upgrade has already cost a TLS handshake: refuse only what would not finish in time
  // (docs/runbook.md, sizing; 512 refused ~10,000 upgrades in a 10,000-connector storm).
  maxPendingHandshakes: z.number().int().min(1).max(100_000).default(4096),
  /** Prometheus metrics on a listener of their own (plain HTTP; keep it internal). */
  metrics: z.strictObject({ listen: hostPort }).optional(),
});

export interface CloudConfig {
  file: string;
  listen: HostPort;
  publicUrl: string;
  dataDir: string;
  adminToken: string;
  tls?: { cert: string; key: string; certFile: string; maxConcurrentHandshakes?: number };
  logLevel?: string;
  tunnel: TunnelTuning;
  drainTimeoutMs: number;
  pairing: { maxFailuresPerMinute: number; maxFailuresPerTenantPerMinute?: number; certificateDays: number; renewBeforeDays: number };
  maxPendingHandshakes: number;
  relay: { timeoutMs: number; maxRequestBytes: number; accessLog?: { file: string; maxBytes: number; maxFiles: number } };
  integrations: { retryBaseMs?: number; firstRunWithinSeconds?: number };
  metrics?: { listen: HostPort };
}

export function loadCloudConfig(file: string): CloudConfig {
  const c = parseConfig(file, readConfigFile(file), CloudConfigSchema);
  const problems = new ConfigProblems();
  const adminToken = problems.attempt(() => adminTokenOf(file, c)) ?? '';
  const out: CloudConfig = {
    file,
    listen: parseHostPort(c.listen)!,
    publicUrl: c.publicUrl,
    dataDir: resolveFrom(file, c.dataDir),
    adminToken,
    tunnel: c.tunnel,
    drainTimeoutMs: c.drainTimeoutSeconds * 1000,
    pairing: c.pairing,
    maxPendingHandshakes: c.maxPendingHandshakes,
    relay: { timeoutMs: c.relay.timeoutSeconds * 1000, maxRequestBytes: c.relay.maxRequestBytes },
    integrations: {
      ...(c.integrations.retryBaseMs !== undefined ? { retryBaseMs: c.integrations.retryBaseMs } : {}),
      ...(c.integrations.firstRunWithinSeconds !== undefined ? { firstRunWithinSeconds: c.integrations.firstRunWithinSeconds } : {}),
    },
  };
  if (c.logLevel) out.logLevel = c.logLevel;
  const access = c.relay.accessLog;
  if (access) out.relay.accessLog = { file: access.file ? resolveFrom(file, access.file) : join(out.dataDir, 'relay-access.log'), maxBytes: access.maxBytes, maxFiles: access.maxFiles };
  if (c.metrics) out.metrics = { listen: parseHostPort(c.metrics.listen)! };
  if (c.tls) {
    const tls = c.tls;
    const certFile = resolveFrom(file, tls.certFile);
    const cert = problems.attempt(() => readFileForKey(file, 'tls.certFile', certFile));
    const key = problems.attempt(() => readSecretFile(file, 'tls.keyFile', tls.keyFile));
    if (cert !== undefined && key !== undefined) out.tls = { certFile, cert, key, maxConcurrentHandshakes: tls.maxConcurrentHandshakes };
  }
  problems.throwIfAny();
  return out;
}

function adminTokenOf(file: string, c: z.infer<typeof CloudConfigSchema>): string {
  if (c.adminToken && c.adminTokenFile) throw configError(file, 'adminToken', 'set adminToken or adminTokenFile, not both');
  let adminToken: string | undefined;
  if (c.adminTokenFile) adminToken = readSecretFile(file, 'adminTokenFile', c.adminTokenFile);
  else if (c.adminToken) adminToken = c.adminToken;
  else adminToken = process.env.UEMLINK_ADMIN_TOKEN;
  if (!adminToken) throw configError(file, 'adminToken', 'is required (or adminTokenFile, or the UEMLINK_ADMIN_TOKEN environment variable)');
  // Named where it came from: a short token from the environment is not the file's fault.
  const from = c.adminTokenFile ? 'adminTokenFile' : c.adminToken ? 'adminToken' : 'adminToken (from UEMLINK_ADMIN_TOKEN)';
  if (adminToken.length < 16) throw configError(file, from, 'must be at least 16 characters');
  secrets.add(adminToken);
  return adminToken;
}
