/**
 * Composition of the connector daemon: identity, the tunnel supervisor, and what serves the streams
 * the cloud opens. Waits for pairing when unpaired (another process may pair it meanwhile).
 */
import { hostname as osHostname } from 'node:os';
import { systemClock, type Clock, type TimerHandle } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import { VERSION } from '../common/version.js';
import { ensurePrivateDir } from '../common/fs-secure.js';
import type { MuxStream } from '../protocol/stream.js';
import { Backoff } from './backoff.js';
import type { ConnectorConfig } from './config.js';
import { readCloudCa, tunnelUrl } from './pair.js';
import { ConnectorStateStore, type Identity } from './state.js';
import { Supervisor } from './supervisor.js';
import { connectTunnel } from './tunnel-client.js';

export type StreamHandler = (stream: MuxStream) => void;

export interface DaemonOptions {
  logger: Logger;
  clock?: Clock;
  /** Serves each stream the cloud opens (the relay). */
  handler: StreamHandler;
}

export class ConnectorDaemon {
  readonly state: ConnectorStateStore;
  private supervisor: Supervisor | undefined;
  private _identity: Identity | undefined;
  private pollTimer: TimerHandle | undefined;
  private readonly clock: Clock;

  private constructor(
    readonly config: ConnectorConfig,
    private readonly o: DaemonOptions,
  ) {
    this.state = new ConnectorStateStore(config.stateDir);
    this.clock = o.clock ?? systemClock;
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
    const ca = await readCloudCa(cfg);
    const cloudUrl = cfg.cloudUrl ?? identity.cloudUrl;
    const t = cfg.tunnel;
    const logger = this.o.logger;
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
          targets: cfg.targets.map((x) => x.id),
          limits: { maxFrameSize: t.maxFrameBytes, maxConcurrentStreams: t.maxConcurrentStreams, initialWindow: t.initialWindowBytes },
          heartbeatMs: t.heartbeatSeconds * 1000,
          handshakeTimeoutMs: t.handshakeTimeoutSeconds * 1000,
          clock: this.clock,
          ...(ca ? { ca } : {}),
        }),
    });
    sup.on('session', (session) => {
      session.on('stream', (stream) => this.o.handler(stream));
    });
    this.supervisor = sup;
    logger.info('starting tunnel', { connectorId: identity.connectorId, tenant: identity.tenant, cloud: cloudUrl });
    sup.start();
  }

  /** SIGTERM: stop taking streams, let in-flight ones finish (drain timeout), close. */
  async shutdown(): Promise<void> {
    if (this.pollTimer !== undefined) this.clock.clearTimeout(this.pollTimer);
    await this.supervisor?.stop(this.config.drainTimeoutMs);
  }
}
