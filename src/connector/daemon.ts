/**
 * Composition of the connector daemon: identity, targets (local and cloud-managed), the relay, the
 * audit log, health checks, metrics and the tunnel supervisor. It waits for pairing when unpaired
 * (the local page or another process may pair it), and can be re-paired while running.
 */
import type { ControlMessage } from '../protocol/control.js';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import { systemClock, type Clock, type TimerHandle } from '../common/clock.js';
import { ensurePrivateDir, sweepOrphanTemps } from '../common/fs-secure.js';
import { takeDaemonLock, type DaemonLock } from '../common/daemon-lock.js';
import type { Logger, RecentProblems } from '../common/log.js';
import { VERSION } from '../common/version.js';
import type { MuxSession } from '../protocol/session.js';
import { TlsSessionCache } from '../transport/ws.js';
import { createAuditLog, type AuditLog } from '../common/audit.js';
import { Backoff } from './backoff.js';
import type { ConnectorConfig } from './config.js';
import { ManagedTargets } from './managed-targets.js';
import { ConnectorMetrics } from './metrics.js';
import { pairConnector, readCloudCa, tunnelUrl, type PairOutcome } from './pair.js';
import { proxyAgent, proxyFor, proxyLabel } from './proxy.js';
import { createRelayHandler } from './relay.js';
import { CertificateRenewer } from './renewal.js';
import { ConnectorStateStore, type Identity } from './state.js';
import { collectStatus, type ConnectorStatus } from './status.js';
import { Supervisor } from './supervisor.js';
import { Target, resolveLocalTargets, type TargetHealth } from './targets/target.js';
import { connectTunnel, type TunnelClientOptions } from './tunnel-client.js';

/**
 * The identity's key, parsed once: the supervisor rebuilds the dial options on every dial, and
 * parsing the PEM was ~0.9 ms of the ~1.2 ms a handshake's signature took (OpenSSL 3). A renewal
 * brings a new Identity object, hence a new key.
 */
const parsedKeys = new WeakMap<Identity, KeyObject>();
function privateKeyOf(identity: Identity): KeyObject {
  let k = parsedKeys.get(identity);
  if (!k) {
    k = createPrivateKey(identity.privateKeyPem);
    parsedKeys.set(identity, k);
  }
  return k;
}

/** Dial options for `identity` under `cfg`: cloud URL, proxy, extra CA, limits (daemon and diagnose). */
export async function buildTunnelOptions(cfg: ConnectorConfig, identity: Identity, targets: string[], clock: Clock, extra: Partial<TunnelClientOptions> = {}): Promise<TunnelClientOptions> {
  const ca = await readCloudCa(cfg);
  const url = tunnelUrl(cfg.cloudUrl ?? identity.cloudUrl);
  const proxy = proxyFor(url, cfg.proxy);
  const t = cfg.tunnel;
  return {
    url,
    connectorId: identity.connectorId,
    privateKey: privateKeyOf(identity),
    hostname: osHostname(),
    software: `uemlink-connector/${VERSION}`,
    targets,
    limits: { maxFrameSize: t.maxFrameBytes, maxConcurrentStreams: t.maxConcurrentStreams, initialWindow: t.initialWindowBytes },
    heartbeatMs: Math.round(t.heartbeatSeconds * 1000),
    handshakeTimeoutMs: Math.round(t.handshakeTimeoutSeconds * 1000),
    clock,
    ...(ca ? { ca } : {}),
    ...(proxy ? { agent: proxyAgent(proxy, ca), proxy: proxyLabel(proxy) } : {}),
    ...extra,
  };
}

export interface DaemonOptions {
  logger: Logger;
  clock?: Clock;
  /** The logger's ring of recent warnings and errors (status page). */
  recent?: RecentProblems;
  /**
   * Retries of a renewal that failed, asked for by the cloud or our own (a rotated CA or an
   * expiring certificate must not wait for the next reconnect, which may be weeks away):
   * exponential from baseMs to capMs, jittered, while the session lasts.
   * Default 1 min to 30 min; tests shorten it.
   */
  renewRetry?: { baseMs: number; capMs: number };
}

/** How often a paired daemon looks for a pairing made by the CLI (watchIdentity). */
const IDENTITY_WATCH_MS = 5000;

/** What is wrong with a target's last health check, by kind (undefined: nothing, or not checked yet). */
function healthProblem(h: TargetHealth | undefined): string | undefined {
  if (!h) return undefined;
  if (!h.reachable) return h.error.code;
  return h.status === 401 || h.status === 403 ? 'auth' : undefined;
}

export class ConnectorDaemon {
  readonly state: ConnectorStateStore;
  readonly localTargets: Target[];
  readonly metrics: ConnectorMetrics;
  private managed: ManagedTargets | undefined;
  private supervisor: Supervisor | undefined;
  private _identity: Identity | undefined;
  private pollTimer: TimerHandle | undefined;
  /** The watch for a pairing made by the CLI while paired (watchIdentity). */
  private identityTimer: TimerHandle | undefined;
  private pairing = false;
  private pairChain: Promise<unknown> = Promise.resolve();
  private healthTimer: TimerHandle | undefined;
  private readonly clock: Clock;
  private readonly audit: AuditLog & { reopen(): void };
  private readonly handler;
  private stopping = false;
  /** Certificate renewal over the tunnel (renewal.ts). */
  readonly renewer: CertificateRenewer;
  /** The target ids the last dial's HELLO advertised (afterConnect sends the list again if it changed meanwhile). */
  private dialedTargets: string[] | undefined;

  /** The state dir's daemon lock, released at shutdown. */
  private lock: DaemonLock | undefined;

  private constructor(
    readonly config: ConnectorConfig,
    private readonly o: DaemonOptions,
  ) {
    this.state = new ConnectorStateStore(config.stateDir);
    this.clock = o.clock ?? systemClock;
    this.renewer = new CertificateRenewer({
      clock: this.clock,
      logger: o.logger,
      state: this.state,
      identity: () => this._identity,
      renewed: (identity) => (this._identity = identity),
      session: () => this.supervisor?.session,
      renewDays: config.certificateRenewDays,
      ...(o.renewRetry ? { retry: o.renewRetry } : {}),
    });
    this.metrics = new ConnectorMetrics({
      supervisor: () => this.supervisor,
      targets: () => this.allTargets(),
      certificatePem: () => this._identity?.certificate,
    });
    // Resolving reads secret files and CA bundles: a problem stops the start with file and key.
    this.localTargets = resolveLocalTargets(config.file, config.targets, (def) => ({
      clock: this.clock,
      oauthHooks: { onTokenRequest: (outcome) => this.metrics.tokenRequested(def.id, outcome) },
    }));
    this.audit = createAuditLog({
      ...config.audit,
      onError: (err) => o.logger.error('cannot write the audit log: relayed calls are not recorded until it can be written again', { file: config.audit.file, err }),
      onRecovered: () => o.logger.info('the audit log can be written again', { file: config.audit.file }),
    });
    this.handler = createRelayHandler({
      target: (id) => this.target(id),
      tenant: () => this._identity?.tenant,
      connectorId: () => this._identity?.connectorId,
      audit: this.audit,
      logger: o.logger,
      clock: this.clock,
      onFinished: (e) => this.metrics.relayFinished(e),
    });
  }

  static async start(config: ConnectorConfig, o: DaemonOptions): Promise<ConnectorDaemon> {
    await ensurePrivateDir(config.stateDir);
    // Before anything dials: a second daemon on this state dir replaced the running one's session.
    const lock = takeDaemonLock(config.stateDir, 'connector', 'stop it first (systemctl stop uemlink-connector); `uemlink connector status` shows it');
    if (lock.unheld) o.logger.warn('cannot create the daemon lock: running without it (a second connector on this state directory would not be stopped)', { file: lock.file, reason: lock.unheld });
    let d: ConnectorDaemon;
    try {
      d = new ConnectorDaemon(config, o);
    } catch (e) {
      lock.release();
      throw e;
    }
    d.lock = lock;
    try {
      await d.begin();
    } catch (e) {
      await d.shutdown().catch(() => {});
      throw e;
    }
    return d;
  }

  private async begin(): Promise<void> {
    const swept = await sweepOrphanTemps(this.config.stateDir);
    if (swept > 0) this.o.logger.info('removed the temp files of writes an earlier process did not finish', { count: swept, stateDir: this.config.stateDir });
    const identity = await this.state.identity(); // corrupt state stops the start with its path
    if (identity) await this.startTunnel(identity);
    else {
      this.o.logger.warn('this connector is not paired yet: pair it on the local page or with "uemlink connector pair"', { stateDir: this.config.stateDir });
      this.pollForPairing();
    }
    this.scheduleHealthChecks(0);
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

  allTargets(): Target[] {
    const ids = new Set(this.localTargets.map((t) => t.id));
    return [...this.localTargets, ...(this.managed?.targets().filter((t) => !ids.has(t.id)) ?? [])];
  }

  targetIds(): string[] {
    return this.allTargets().map((t) => t.id);
  }

  /** The facts of the status page, /api/status, readiness and support bundles. */
  status(): Promise<ConnectorStatus> {
    const id = this._identity;
    return collectStatus({
      identity: () => id,
      supervisor: () => this.supervisor,
      targets: () => this.allTargets(),
      managed: () => this.managed?.list() ?? Promise.resolve([]),
      recent: () => this.o.recent?.list() ?? [],
      stateDir: this.config.stateDir,
      requireTargets: this.config.health.requireTargets,
      ...(this.config.cloudUrl ? { cloudUrlOverride: this.config.cloudUrl } : {}),
    });
  }

  /** Checks every target now (the page's "check now", and periodically). */
  async checkTargets(): Promise<void> {
    await Promise.all(
      this.allTargets().map(async (t) => {
        const before = t.health;
        this.sayHealthChange(t.id, before, await t.checkHealth(Math.min(t.timeoutMs, 10_000)));
      }),
    );
  }

  /**
   * A UEM that stops answering, or starts refusing the credentials, is said once when it happens,
   * and once when it is over: a gauge alone told nobody reading the log.
   */
  private sayHealthChange(target: string, before: TargetHealth | undefined, now: TargetHealth): void {
    const was = healthProblem(before);
    const is = healthProblem(now);
    if (is === was) return;
    if (is === undefined) this.o.logger.info('target healthy again', { target, status: now.status, was });
    else if (is === 'auth') this.o.logger.warn('target health check: the UEM refuses the credentials', { target, status: now.status, hint: 'check the target\'s auth settings (connector diagnose shows the answer)' });
    else this.o.logger.warn('target health check: the UEM cannot be reached', { target, code: now.error?.code, reason: now.error?.message, hint: 'run `uemlink connector diagnose`' });
  }

  private scheduleHealthChecks(delayMs: number): void {
    if (this.stopping || this.config.health.checkIntervalMs === 0) return;
    this.healthTimer = this.clock.setTimeout(() => {
      void this.checkTargets()
        .catch((err: unknown) => this.o.logger.warn('target health check failed', { err }))
        .finally(() => this.scheduleHealthChecks(this.config.health.checkIntervalMs));
    }, delayMs);
  }

  /** The dial options shared by the tunnel and diagnostics (proxy, trust, limits). */
  tunnelOptions(identity: Identity, extra: Partial<TunnelClientOptions> = {}): Promise<TunnelClientOptions> {
    return buildTunnelOptions(this.config, identity, this.targetIds(), this.clock, extra);
  }

  /**
   * `connector pair --force` from the command line while this daemon runs writes a new identity:
   * taken up here within seconds, as a pairing from the page is. The daemon went on with the old
   * (often revoked) identity until a restart, while `diagnose` already showed the new one.
   */
  private watchIdentity(): void {
    if (this.stopping || this.identityTimer !== undefined) return;
    this.identityTimer = this.clock.setTimeout(() => {
      this.identityTimer = undefined;
      void this.state.identity().then(
        (id) => {
          const was = this._identity?.connectorId;
          if (!this.stopping && !this.pairing && id && was !== undefined && id.connectorId !== was) {
            this.o.logger.info('paired again from the command line: the tunnel starts over with the new identity', { connectorId: id.connectorId, was });
            const run = this.pairChain.then(() => this.restartTunnel());
            this.pairChain = run.catch((err: unknown) => this.o.logger.error('cannot start the tunnel after pairing', { err }));
          }
          this.watchIdentity();
        },
        () => this.watchIdentity(),
      );
    }, IDENTITY_WATCH_MS);
  }

  /** Drains the tunnel and starts it again with the identity in the state (after a pairing). */
  private async restartTunnel(): Promise<void> {
    await this.supervisor?.stop(Math.min(this.config.drainTimeoutMs, 5000));
    for (const t of this.managed?.targets() ?? []) t.close();
    this.supervisor = undefined;
    const identity = await this.state.identity();
    if (identity && !this.stopping) await this.startTunnel(identity);
  }

  private pollForPairing(): void {
    this.pollTimer = this.clock.setTimeout(() => {
      this.pollTimer = undefined;
      // pair() or shutdown() may have taken over while the state was read: starting (or polling)
      // then would run a second tunnel beside pair()'s, or outlive the shutdown.
      const superseded = (): boolean => this.stopping || this.pairing || this.supervisor !== undefined;
      void this.state.identity().then(
        (id) => {
          if (superseded()) return;
          if (id) this.startTunnel(id).catch((err: unknown) => this.o.logger.error('cannot start the tunnel after pairing', { err }));
          else this.pollForPairing();
        },
        (err: unknown) => {
          if (superseded()) return;
          this.o.logger.error('cannot read the connector state', { err });
          this.pollForPairing();
        },
      );
    }, 2000);
  }

  private async startTunnel(identity: Identity): Promise<void> {
    if (this.supervisor || this.stopping) return; // one tunnel per connector
    this._identity = identity;
    this.watchIdentity();
    const cfg = this.config;
    const logger = this.o.logger;
    this.managed = new ManagedTargets({
      onTokenRequest: (id, outcome) => this.metrics.tokenRequested(id, outcome),
      stateDir: cfg.stateDir,
      allowedHosts: cfg.cloudManagedTargets.allowedHosts,
      localIds: new Set(this.localTargets.map((t) => t.id)),
      logger,
      clock: this.clock,
      onChange: () => this.supervisor?.session?.sendControl({ type: 'targets', targets: this.targetIds() }),
    });
    await this.managed.load();
    // One per tunnel: a redial resumes the last TLS session (see TlsSessionCache).
    const tlsSessions = new TlsSessionCache();
    const sup = new Supervisor({
      clock: this.clock,
      logger,
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000 }),
      // Options are rebuilt per dial: targets (and, after a renewal, the key) may have changed.
      connect: async (signal) => {
        const o = await this.tunnelOptions(this._identity ?? identity);
        this.dialedTargets = o.targets;
        return connectTunnel({ ...o, tlsSessions, signal, prepareSession: (s) => this.listen(s) });
      },
    });
    let first = true;
    sup.on('session', () => {
      if (!first) this.metrics.reconnected();
      first = false;
      this.afterConnect();
    });
    this.supervisor = sup;
    logger.info('starting tunnel', { connectorId: identity.connectorId, tenant: identity.tenant, cloud: cfg.cloudUrl ?? identity.cloudUrl, targets: this.targetIds() });
    sup.start();
  }

  /**
   * Pairs (or re-pairs) while running: redeems the token, drains the current tunnel, and starts
   * again with the new identity.
   */
  async pair(token: string, opts: { force?: boolean } = {}): Promise<PairOutcome> {
    // One at a time (a form posted twice): two at once each started a tunnel.
    const run = this.pairChain.then(() => this.pairNow(token, opts));
    this.pairChain = run.catch(() => {});
    return run;
  }

  private async pairNow(token: string, opts: { force?: boolean }): Promise<PairOutcome> {
    this.pairing = true;
    if (this.pollTimer !== undefined) this.clock.clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    try {
      const outcome = await pairConnector(this.config, this.state, token, opts);
      await this.restartTunnel();
      return outcome;
    } finally {
      this.pairing = false;
      // A failed pairing while unpaired: keep watching for one made by the CLI.
      if (!this.supervisor && !this.stopping) this.pollForPairing();
    }
  }

  /** Before the session reads its first frame (see TunnelClientOptions.prepareSession). */
  private listen(session: MuxSession): void {
    this.renewer.attach(session);
    session.on('stream', this.handler);
    session.on('control', (msg) => void this.onControl(session, msg));
  }

  private afterConnect(): void {
    // Targets that changed while dialling (an admin's decision on a cloud-managed target): their
    // message went to no session, and the HELLO carried the list as it was before; the cloud would
    // route by that stale list until the next change or reconnect.
    const now = this.targetIds();
    if (this.dialedTargets && now.join('\n') !== this.dialedTargets.join('\n')) this.supervisor?.session?.sendControl({ type: 'targets', targets: now });
    this.renewer.connected();
  }

  private async onControl(session: MuxSession, msg: ControlMessage): Promise<void> {
    const managed = this.managed;
    if (!managed) return;
    try {
      switch (msg.type) {
        case 'target.offer':
          session.sendControl({ type: 'target.status', ...(await managed.offer(msg.target)) });
          break;
        case 'target.withdraw':
          await managed.withdraw(msg.id);
          break;
        case 'target.sync':
          await managed.sync(msg.ids);
          break;
        case 'cert.renew-requested':
        case 'cert.renewed':
        case 'cert.renew-failed':
          await this.renewer.onControl(session, msg);
          break;
        default:
        // the cloud's own messages (targets, target.status, cert.renew) mean nothing here
      }
    } catch (err) {
      this.o.logger.error('cannot apply a cloud-managed target change', { err });
    }
  }

  /** A local admin's decision on a cloud-managed target, reported to the cloud. */
  async decideManaged(id: string, decision: 'accepted' | 'refused', offeredAt?: string): Promise<void> {
    if (!this.managed) throw new Error('not paired');
    const v = await this.managed.decide(id, decision, undefined, offeredAt);
    this.supervisor?.session?.sendControl({ type: 'target.status', id: v.id, state: v.state, ...(v.reason ? { reason: v.reason } : {}) });
  }

  /** SIGHUP: the audit log is closed and written again under its name (logrotate moved it). */
  reopenFiles(): void {
    this.audit.reopen();
  }

  /** SIGTERM: stop taking streams, let in-flight ones finish (drain timeout), close. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.pollTimer !== undefined) this.clock.clearTimeout(this.pollTimer);
    if (this.identityTimer !== undefined) this.clock.clearTimeout(this.identityTimer);
    if (this.healthTimer !== undefined) this.clock.clearTimeout(this.healthTimer);
    this.renewer.stop();
    await this.supervisor?.stop(this.config.drainTimeoutMs);
    // Streams the drain's timeout cut end their handlers asynchronously (499, audit line): wait
    // for them (bounded) before the audit log closes, or those lines were lost at exit.
    await this.handler.idle(2000);
    for (const t of this.allTargets()) t.close();
    await this.audit.close();
    this.lock?.release();
  }
}
