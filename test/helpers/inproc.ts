/**
 * A cloud relay started in this process (real HTTP server, real WebSocket, real state files), for
 * tests that need to reach inside: tampering with handshakes, clocks, registries.
 */
import { createPrivateKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { systemClock, type Clock } from '../../src/common/clock.js';
import { silentLogger, type Logger } from '../../src/common/log.js';
import { createCsr, generateRsaKeyPair } from '../../src/common/pki.js';
import type { CloudConfig } from '../../src/cloud/config.js';
import { CloudServer } from '../../src/cloud/server.js';
import { DEFAULT_LIMITS } from '../../src/protocol/messages.js';
import { connectTunnel, type Connected, type TunnelClientOptions } from '../../src/connector/tunnel-client.js';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { ConnectorDaemon, type DaemonOptions } from '../../src/connector/daemon.js';
import { ConnectorStateStore } from '../../src/connector/state.js';
import { ADMIN_TOKEN, freePort, tempDir, until } from './procs.js';

/** A clock whose "now" can jump (timers stay real); `advance` takes negative steps too. */
export function offsetClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return { ...systemClock, now: () => Date.now() + offset, advance: (ms) => (offset += ms) };
}

export async function startInprocCloud(
  opts: { clock?: Clock; logger?: Logger; heartbeatSeconds?: number; maxPendingHandshakes?: number; tls?: { cert: string; key: string; maxConcurrentHandshakes?: number }; relayTimeoutMs?: number; maxRequestBytes?: number; certificateDays?: number; renewBeforeDays?: number; metrics?: boolean; dataDir?: string; /** relay.accessLog */ accessLog?: { file: string; maxBytes?: number; maxFiles?: number } } = {},
): Promise<CloudServer> {
  const dir = tempDir('uemlink-inproc-');
  const port = await freePort();
  const cfg: CloudConfig = {
    file: join(dir, 'cloud.json'),
    listen: { host: '127.0.0.1', port },
    publicUrl: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    dataDir: opts.dataDir ?? join(dir, 'data'),
    adminToken: ADMIN_TOKEN,
    tunnel: {
      heartbeatSeconds: opts.heartbeatSeconds ?? 15,
      handshakeTimeoutSeconds: 5,
      maxConcurrentStreams: 1024,
      initialWindowBytes: 1024 * 1024,
      maxFrameBytes: 64 * 1024,
    },
    drainTimeoutMs: 2000,
    pairing: { maxFailuresPerMinute: 100, certificateDays: opts.certificateDays ?? 365, renewBeforeDays: opts.renewBeforeDays ?? 30 },
    maxPendingHandshakes: opts.maxPendingHandshakes ?? 512,
    relay: { timeoutMs: opts.relayTimeoutMs ?? 10_000, maxRequestBytes: opts.maxRequestBytes ?? 64 * 1024 * 1024 },
    integrations: { retryBaseMs: 20, firstRunWithinSeconds: 3600 },
  };
  if (opts.metrics) cfg.metrics = { listen: { host: '127.0.0.1', port: 0 } };
  if (opts.accessLog) cfg.relay.accessLog = { maxBytes: 10 * 1024 * 1024, maxFiles: 3, ...opts.accessLog };
  if (opts.tls) cfg.tls = { cert: opts.tls.cert, key: opts.tls.key, certFile: 'test', ...(opts.tls.maxConcurrentHandshakes ? { maxConcurrentHandshakes: opts.tls.maxConcurrentHandshakes } : {}) };
  return CloudServer.start(cfg, { logger: opts.logger ?? silentLogger(), clock: opts.clock ?? systemClock });
}

export interface TestIdentity {
  connectorId: string;
  tenant: string;
  group: string;
  privateKeyPem: string;
  certificate: string;
}

/** Pairs an identity directly through the pairing service (no HTTP), as a connector would. */
export async function pairInproc(cloud: CloudServer, tenant = 'acme', group = 'default'): Promise<TestIdentity> {
  const t = await cloud.pairing.createToken({ tenant, group });
  const keys = generateRsaKeyPair(2048);
  const r = await cloud.pairing.redeem({ token: t.token, csr: createCsr(keys.privateKeyPem, { CN: 'test' }), hostname: 'test-host', version: 'test' });
  return { connectorId: r.connectorId, tenant: r.tenant, group: r.group, privateKeyPem: keys.privateKeyPem, certificate: r.certificate };
}

export function tunnelOptions(cloud: CloudServer, id: TestIdentity, extra: Partial<TunnelClientOptions> = {}): TunnelClientOptions {
  return {
    url: `ws://127.0.0.1:${cloud.port}/api/v1/tunnel`,
    connectorId: id.connectorId,
    privateKey: createPrivateKey(id.privateKeyPem),
    hostname: hostname(),
    software: 'uemlink-connector/test',
    targets: ['t1'],
    limits: DEFAULT_LIMITS,
    heartbeatMs: 0,
    handshakeTimeoutMs: 5000,
    clock: systemClock,
    ...extra,
  };
}

export function connectAs(cloud: CloudServer, id: TestIdentity, extra: Partial<TunnelClientOptions> = {}): Promise<Connected> {
  return connectTunnel(tunnelOptions(cloud, id, extra));
}

/**
 * A connector daemon in this process, paired with `cloud` (or with the identity `id` paired before),
 * serving the given targets; `daemon` overrides its options (logger, clock, …).
 */
export async function startInprocConnector(
  cloud: CloudServer,
  opts: {
    targets?: Array<Record<string, unknown>>;
    tenant?: string;
    group?: string;
    extra?: Record<string, unknown>;
    files?: Record<string, string>;
    id?: TestIdentity;
    daemon?: Partial<DaemonOptions>;
  } = {},
): Promise<{ daemon: ConnectorDaemon; id: TestIdentity; dir: string }> {
  const dir = tempDir('uemlink-inproc-conn-');
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content, { mode: 0o600 });
  const id = opts.id ?? (await pairInproc(cloud, opts.tenant ?? 'acme', opts.group ?? 'default'));
  const configFile = join(dir, 'connector.json');
  // Periodic health checks off unless asked for: tests count what reaches each upstream.
  writeFileSync(configFile, JSON.stringify({ stateDir: './state', targets: opts.targets ?? [], health: { checkIntervalSeconds: 0 }, ...opts.extra }));
  const cfg = loadConnectorConfig(configFile);
  await new ConnectorStateStore(cfg.stateDir).save(
    { connectorId: id.connectorId, tenant: id.tenant, group: id.group, cloudUrl: cloud.config.publicUrl, certificate: id.certificate, caCertificate: cloud.ca.certificatePem, pairedAt: new Date().toISOString() },
    id.privateKeyPem,
  );
  const daemon = await ConnectorDaemon.start(cfg, { logger: silentLogger(), ...opts.daemon });
  await until(() => daemon.tunnel?.state.state === 'connected' && cloud.registry.get(id.connectorId) !== undefined, 10_000, 'connector connected');
  return { daemon, id, dir };
}
