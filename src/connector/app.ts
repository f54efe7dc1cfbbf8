/**
 * The connector as it runs as a service: the daemon plus its local page, wired to one backend. Also
 * the pieces the CLI uses without a running daemon (diagnose, support bundles).
 */
import { systemClock } from '../common/clock.js';
import type { Logger, RecentProblems } from '../common/log.js';
import { loadAdminPassword } from '../health/auth.js';
import { HealthServer, type HealthBackend } from '../health/server.js';
import type { ConnectorConfig } from './config.js';
import { ConnectorDaemon } from './daemon.js';
import { diagnose, type Diagnosis } from './diagnose.js';
import { ConnectorStateStore } from './state.js';
import { systemFacts } from './status.js';
import { buildSupportBundle } from './support-bundle.js';
import { resolveLocalTargets } from './targets/target.js';
import { buildTunnelOptions } from './daemon.js';
import { ManagedTargets } from './managed-targets.js';

export interface RunningConnector {
  daemon: ConnectorDaemon;
  page: HealthServer;
  shutdown(): Promise<void>;
}

export function daemonBackend(daemon: ConnectorDaemon): HealthBackend {
  const cfg = daemon.config;
  const runDiagnosis = (): Promise<Diagnosis> =>
    diagnose({ config: cfg, identity: daemon.identity, targets: daemon.allTargets(), tunnelOptions: (id, extra) => daemon.tunnelOptions(id, extra) });
  return {
    status: () => daemon.status(),
    metrics: () => daemon.metrics.text(),
    pair: (token, force) => daemon.pair(token, { force }),
    decide: (id, decision, offeredAt) => daemon.decideManaged(id, decision, offeredAt),
    diagnose: runDiagnosis,
    supportBundle: async () =>
      buildSupportBundle({
        configFile: cfg.file,
        status: await daemon.status(),
        diagnosis: await runDiagnosis(),
        auditFile: cfg.audit.file,
        system: await systemFacts(cfg.stateDir),
        ...(cfg.logFile ? { logFile: cfg.logFile } : {}),
      }),
  };
}

export async function runConnector(cfg: ConnectorConfig, logger: Logger, recent?: RecentProblems): Promise<RunningConnector> {
  const daemon = await ConnectorDaemon.start(cfg, { logger, ...(recent ? { recent } : {}) });
  const admin = await loadAdminPassword({ stateDir: cfg.stateDir, logger, ...(cfg.health.adminPasswordFile ? { file: cfg.health.adminPasswordFile } : {}) });
  let page: HealthServer;
  try {
    page = await HealthServer.start({ listen: cfg.health.listen, allowedHostnames: cfg.health.allowedHostnames, adminPassword: admin.password, adminPasswordFile: admin.file, backend: daemonBackend(daemon), logger, ...(cfg.health.tls ? { tls: cfg.health.tls } : {}) });
  } catch (e) {
    await daemon.shutdown();
    throw e;
  }
  return {
    daemon,
    page,
    async shutdown() {
      await daemon.shutdown();
      await page.close();
    },
  };
}

/** Diagnose without a running daemon (the CLI): local targets plus accepted cloud-managed ones. */
export async function diagnoseOffline(cfg: ConnectorConfig, logger: Logger): Promise<Diagnosis> {
  const state = new ConnectorStateStore(cfg.stateDir);
  // A state file that cannot be read is a failed check in the report (JSON included), not a
  // report that never comes.
  let identityError: string | undefined;
  const identity = await state.identity().catch((e: unknown) => {
    identityError = (e as Error).message;
    return undefined;
  });
  // A target whose secret or CA file cannot be read is a failed check, and the rest is still checked
  // (a systemd credential exists only while the service runs: diagnose was exit 78 when it was down).
  const unresolved: Array<{ id: string; problem: string }> = [];
  const targets = resolveLocalTargets(cfg.file, cfg.targets, undefined, (def, e) => unresolved.push({ id: def.id, problem: e.message }));
  if (identity) {
    const managed = new ManagedTargets({ stateDir: cfg.stateDir, allowedHosts: cfg.cloudManagedTargets.allowedHosts, localIds: new Set(targets.map((t) => t.id)), logger, clock: systemClock, onChange: () => {} });
    await managed.load().catch(() => {});
    targets.push(...managed.targets());
  }
  try {
    return await diagnose({ config: cfg, identity, ...(identityError ? { identityError } : {}), targets, unresolved, tunnelOptions: (id, extra) => buildTunnelOptions(cfg, id, targets.map((t) => t.id), systemClock, extra) });
  } finally {
    for (const t of targets) t.close();
  }
}
