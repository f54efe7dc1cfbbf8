/**
 * Composition of the connector daemon: identity, targets (local and cloud-managed), the relay, the
 * audit log and the tunnel supervisor. Waits for pairing when unpaired (another process, or the local
 * page, may pair it meanwhile).
 */
import { hostname as osHostname } from 'node:os';
import { systemClock, type Clock, type TimerHandle } from '../common/clock.js';
import { ensurePrivateDir } from '../common/fs-secure.js';
import type { Logger } from '../common/log.js';
import { VERSION } from '../common/version.js';
import type { MuxSession } from '../protocol/session.js';
import { createAuditLog, type AuditLog } from './audit.js';
import { Backoff } from './backoff.js';
import type { ConnectorConfig } from './config.js';
import { ManagedTargets } from './managed-targets.js';
import { readCloudCa, tunnelUrl } from './pair.js';
import { createRelayHandler } from './relay.js';
import { ConnectorStateStore, type Identity } from './state.js';
import { Supervisor } from './supervisor.js';
import { Target } from './targets/target.js';
import { connectTunnel } from './tunnel-client.js';

export interface DaemonOptions {
  logger: Logger;
  clock?: Clock;
}

export class ConnectorDaemon {
  readonly state: ConnectorStateStore;
  readonly localTargets: Target[];
  private managed: ManagedTargets | undefined;
  private supervisor: Supervisor | undefined;
  private _identity: Identity | undefined;
  private pollTimer: TimerHandle | undefined;
  private readonly clock: Clock;
  private readonly audit: AuditLog;
  private readonly handler;

  private constructor(
    readonly config: ConnectorConfig,
    private readonly o: DaemonOptions,
  ) {
    this.state = new ConnectorStateStore(config.stateDir);
    this.clock = o.clock ?? systemClock;
    // Resolving reads secret files and CA bundles: a problem stops the start with file and key.
    this.localTargets = config.targets.map((def, i) => Target.resolve(def, { configFile: config.file, where: `targets[${i}]`, origin: 'local', clock: this.clock }));
    this.audit = createAuditLog(config.audit);
    this.handler = createRelayHandler({
      target: (id) => this.target(id),
      tenant: () => this._identity?.tenant,
      connectorId: () => this._identity?.connectorId,
      audit: this.audit,
      logger: o.logger,
      clock: this.clock,
    });
  }

  static async start(config: ConnectorConfig, o: DaemonOptions): Promise<ConnectorDaemon> {
    const d = new ConnectorDaemon(config, o);
    await ensurePrivateDir(config.stateDir);
    const identity = await d.state.identity(); // corrupt state stops the start with its path
    if (identity) await d.startTunnel(identity);
    else {
      o.logger.warn('this connector is not paired yet: run "uemlink connector pair --config FILE --token-file FILE"', { stateDir: config.stateDir });
      d.pollForPairing();
    }
    return d;
  }

  get identity(): Identity | undefined {
    return this._identity;
  }
  get tunnel(): Supervisor | undefined {
    return this.supervisor;
  }
  get managedTargets(): ManagedTargets | undefined {
    return this.managed;
  }

  /** Local targets win over cloud-managed ones with the same id. */
  target(id: string): Target | undefined {
    return this.localTargets.find((t) => t.id === id) ?? this.managed?.targets().find((t) => t.id === id);
  }

  targetIds(): string[] {
    return [...new Set([...this.localTargets.map((t) => t.id), ...(this.managed?.targets().map((t) => t.id) ?? [])])];
  }

  private pollForPairing(): void {
    this.pollTimer = this.clock.setTimeout(() => {
      void this.state.identity().then(
        (id) => (id ? this.startTunnel(id) : this.pollForPairing()),
        (err: unknown) => {
          this.o.logger.error('cannot read the connector state', { err });
          this.pollForPairing();
        },
      );
    }, 2000);
  }

  private async startTunnel(identity: Identity): Promise<void> {
    this._identity = identity;
    const cfg = this.config;
    const logger = this.o.logger;
    this.managed = new ManagedTargets({
      stateDir: cfg.stateDir,
      privateKeyPem: identity.privateKeyPem,
      allowedHosts: cfg.cloudManagedTargets.allowedHosts,
      localIds: new Set(this.localTargets.map((t) => t.id)),
      logger,
      clock: this.clock,
      onChange: () => this.supervisor?.session?.sendControl({ type: 'targets', targets: this.targetIds() }),
    });
    await this.managed.load();
    const ca = await readCloudCa(cfg);
    const cloudUrl = cfg.cloudUrl ?? identity.cloudUrl;
    const t = cfg.tunnel;
    const sup = new Supervisor({
      clock: this.clock,
      logger,
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000 }),
      connect: () =>
        connectTunnel({
          url: tunnelUrl(cloudUrl),
          connectorId: identity.connectorId,
          privateKeyPem: identity.privateKeyPem,
          hostname: osHostname(),
          software: `uemlink-connector/${VERSION}`,
          targets: this.targetIds(),
          limits: { maxFrameSize: t.maxFrameBytes, maxConcurrentStreams: t.maxConcurrentStreams, initialWindow: t.initialWindowBytes },
          heartbeatMs: t.heartbeatSeconds * 1000,
          handshakeTimeoutMs: t.handshakeTimeoutSeconds * 1000,
          clock: this.clock,
          ...(ca ? { ca } : {}),
        }),
    });
    sup.on('session', (session) => this.attach(session));
    this.supervisor = sup;
    logger.info('starting tunnel', { connectorId: identity.connectorId, tenant: identity.tenant, cloud: cloudUrl, targets: this.targetIds() });
    sup.start();
  }

  private attach(session: MuxSession): void {
    session.on('stream', this.handler);
    session.on('control', (msg) => void this.onControl(session, msg));
  }

  private async onControl(session: MuxSession, msg: Record<string, unknown>): Promise<void> {
    const managed = this.managed;
    if (!managed) return;
    try {
      if (msg.type === 'target.offer') {
        const r = await managed.offer(msg.target);
        session.sendControl({ type: 'target.status', ...r });
      } else if (msg.type === 'target.withdraw' && typeof msg.id === 'string') {
        await managed.withdraw(msg.id);
      }
    } catch (err) {
      this.o.logger.error('cannot apply a cloud-managed target change', { err });
    }
  }

  /** SIGTERM: stop taking streams, let in-flight ones finish (drain timeout), close. */
  async shutdown(): Promise<void> {
    if (this.pollTimer !== undefined) this.clock.clearTimeout(this.pollTimer);
    await this.supervisor?.stop(this.config.drainTimeoutMs);
    for (const t of [...this.localTargets, ...(this.managed?.targets() ?? [])]) t.close();
    await this.audit.close();
  }
}
