/**
 * Composition of the cloud relay: state, CA, pairing, tunnel server, admin API, one HTTP(S) listener.
 * SIGTERM (via shutdown()) drains: no new tunnels or requests, in-flight streams finish up to the drain
 * timeout, then every tunnel closes with "going away" and connectors redial (the next instance).
 */
import { CloudMetrics, portOf } from './metrics.js';
import { UemlinkError } from '../common/errors.js';
import type { Server as HttpServer } from 'node:http';
import { basename } from 'node:path';
import { ensurePrivateDir, sweepOrphanTemps } from '../common/fs-secure.js';
import { takeDaemonLock, type DaemonLock } from '../common/daemon-lock.js';
import { createServer as createHttpServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import express from 'express';
import helmet from 'helmet';
import { systemClock, type Clock } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import { VERSION } from '../common/version.js';
import { adminApi, notFound } from './admin-api.js';
import { ConnectorCA } from './ca.js';
import { consoleRouter } from './console/router.js';
import { DEFAULT_MAX_TLS_HANDSHAKES, type CloudConfig } from './config.js';
import { errorHandler } from './http-errors.js';
import { ManagedTargetsService } from './managed-targets.js';
import { RelayClient } from './relay/client.js';
import { secrets } from '../common/redact.js';
import { isRelayUrl, relayHttp, type RelayFinished } from './relay/http.js';
import { createRelayAccessLog, type RelayAccessLog } from './relay/access-log.js';
import { Relay } from './relay/relay.js';
import { loadOrCreateSecretKey } from './secret-key.js';
import { gateTlsHandshakes, type HandshakeGate } from './handshake-gate.js';
import { TicketKeys } from './tls-tickets.js';
import { tenantApi } from './tenant-api.js';
import { InventoryDb } from './inventory/db.js';
import { integrationsApi } from './integrations/api.js';
import { IntegrationsService } from './integrations/service.js';
import { PairingService } from './pairing.js';
import { PresenceBook } from './presence-book.js';
import { FailureLimiter } from '../common/rate-limit.js';
import { InMemoryRegistry, type SessionRegistry } from './registry.js';
import { openCloudStore, type CloudStore } from './state.js';
import { TunnelServer } from './tunnel-server.js';
import { BATCH_BYTES } from '../protocol/writer.js';

export const TUNNEL_PATH = '/api/v1/tunnel';

export interface CloudServerOptions {
  logger: Logger;
  clock?: Clock;
}

/**
 * The answer to a request Node's parser refused (it never reaches a handler): the status Node's own
 * default would give, with the JSON error body every other answer has.
 */
export function clientErrorAnswer(code: string | undefined): string {
  const [status, reason, error, message] =
    code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'headers_too_large', "the request's headers are larger than this server accepts"]
      : code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'request_timeout', 'the request did not arrive in time']
        : [400, 'Bad Request', 'bad_request', 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify({ error, message });
  // x-uemlink-error as on every error of the relay (a relay client tells ours from the UEM's by it).
  return `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nx-uemlink-error: ${error}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * The origin form ("/path?query") of an absolute-form request target ("http://host/path?query")
 * that names this server (its Host, or the public URL's host); anything else is left as it is,
 * and answered 404: this is no forward proxy, and another authority must not look relayed.
 */
export function originForm(url: string, ownHosts: ReadonlyArray<string | undefined>): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url);
  if (!m) return url;
  const authority = m[1]!.toLowerCase();
  if (!ownHosts.some((h) => h !== undefined && h.toLowerCase() === authority)) return url;
  const rest = url.slice(m[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

export class CloudServer {
  private draining = false;
  /** The data dir's daemon lock, released when stopped. */
  private lock: DaemonLock | undefined;
  /** The `metrics.listen` listener, when configured. */
  metricsServer: HttpServer | undefined;
  /** The relay's access log (`relay.accessLog`), when configured. */
  private accessLog: RelayAccessLog | undefined;

  private constructor(
    readonly config: CloudConfig,
    readonly store: CloudStore,
    readonly ca: ConnectorCA,
    readonly registry: SessionRegistry,
    readonly tunnels: TunnelServer,
    readonly pairing: PairingService,
    readonly managedTargets: ManagedTargetsService,
    /** `relay.fetch(tenant, target, path, init, route?)` for the cloud's own code. */
    readonly relay: RelayClient,
    readonly integrations: IntegrationsService,
    readonly inventory: InventoryDb,
    private readonly book: PresenceBook,
    private readonly server: Server,
    private readonly logger: Logger,
    private readonly tickets: TicketKeys | undefined,
    private readonly gate: HandshakeGate<Socket> | undefined,
    readonly metrics: CloudMetrics,
    private readonly relayResponses: Set<ServerResponse>,
  ) {}

  static async start(config: CloudConfig, opts: CloudServerOptions): Promise<CloudServer> {
    // One cloud per data dir: two ran every integration twice and raced on the inventory.
    await ensurePrivateDir(config.dataDir);
    const lock = takeDaemonLock(config.dataDir, 'cloud', 'stop it first (systemctl stop uemlink-cloud), or give this one another dataDir');
    if (lock.unheld) opts.logger.warn('cannot create the daemon lock: running without it (a second cloud on this data directory would not be stopped)', { file: lock.file, reason: lock.unheld });
    try {
      const self = await CloudServer.startLocked(config, opts);
      self.lock = lock;
      return self;
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  private static async startLocked(config: CloudConfig, opts: CloudServerOptions): Promise<CloudServer> {
    const clock = opts.clock ?? systemClock;
    // Known to the redaction however the config was made (loadCloudConfig registers it too).
    secrets.add(config.adminToken);
    const logger = opts.logger;
    const store = openCloudStore(config.dataDir, { onLockCompromised: (err) => logger.error('lost the state file lock', { err }) });
    await store.read(); // a corrupt state file stops the start, with its path, before anything listens
    const swept = await sweepOrphanTemps(config.dataDir);
    if (swept > 0) logger.info('removed the temp files of writes an earlier process did not finish', { count: swept, dataDir: config.dataDir });
    const { ca, created } = await ConnectorCA.loadOrCreate(config.dataDir);
    if (created) logger.info('created the connector CA', { dataDir: config.dataDir });
    const registry = new InMemoryRegistry();
    const book = new PresenceBook(store, logger, clock);
    const pairing = new PairingService(store, ca, config.publicUrl, config.pairing.certificateDays, clock);
    const t = config.tunnel;
    const tunnels = new TunnelServer({
      store,
      ca,
      registry,
      book,
      logger,
      clock,
      limits: { maxFrameSize: t.maxFrameBytes, maxConcurrentStreams: t.maxConcurrentStreams, initialWindow: t.initialWindowBytes },
      heartbeatMs: Math.round(t.heartbeatSeconds * 1000),
      handshakeTimeoutMs: Math.round(t.handshakeTimeoutSeconds * 1000),
      maxPendingHandshakes: config.maxPendingHandshakes,
      software: `uemlink-cloud/${VERSION}`,
      certificateDays: config.pairing.certificateDays,
      renewBeforeDays: config.pairing.renewBeforeDays,
    });

    const secretKey = await loadOrCreateSecretKey(config.dataDir);
    const managed = new ManagedTargetsService(store, secretKey, registry, book, logger, clock);
    const metrics = new CloudMetrics({ connectors: () => registry.size, pendingHandshakes: () => tunnels.pendingHandshakes, draining: () => self?.draining ?? false });
    tunnels.on('handshake', (outcome) => metrics.handshake(outcome));
    tunnels.on('session', (live) => void managed.onSession(live));
    tunnels.on('control', (live, msg) => {
      if (msg.type === 'target.status') void store.read().then((s) => managed.onStatus(live, msg, s.connectors[live.connectorId]));
    });
    const relay = new Relay({ registry, store, clock, book, timeoutMs: config.relay.timeoutMs });
    const relayClient = new RelayClient(relay, config.relay.timeoutMs);
    const inventory = InventoryDb.open(config.dataDir);
    const integrations = new IntegrationsService({
      store,
      key: secretKey,
      db: inventory,
      relay: relayClient,
      managed,
      registry,
      clock,
      logger,
      ...(config.integrations.retryBaseMs !== undefined ? { retryBaseMs: config.integrations.retryBaseMs } : {}),
      ...(config.integrations.firstRunWithinSeconds !== undefined ? { firstRunWithinMs: config.integrations.firstRunWithinSeconds * 1000 } : {}),
    });
    // Separate budgets: a client hammering the relay with bad keys must not lock admins out.
    const adminLimiter = new FailureLimiter(20, 60_000, clock);
    const relayLimiter = new FailureLimiter(120, 60_000, clock);

    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    let self: CloudServer | undefined;
    const relayResponses = new Set<ServerResponse>();
    const accessLog = config.relay.accessLog ? createRelayAccessLog({ ...config.relay.accessLog, clock, logger }) : undefined;
    const relayListener = relayHttp({
      relay,
      inflight: relayResponses,
      adminToken: config.adminToken,
      store,
      limiter: relayLimiter,
      logger,
      maxRequestBytes: config.relay.maxRequestBytes,
      idleTimeoutMs: config.relay.timeoutMs,
      draining: () => self?.draining ?? false,
      // Reported only when someone reads the figures or the log (a listener and a closure per call).
      ...(config.metrics || accessLog
        ? {
            onFinished: (e: RelayFinished) => {
              if (config.metrics) metrics.relayFinished(e);
              accessLog?.record(e);
            },
          }
        : {}),
    });
    // The console sets its own, stricter security headers (and answers everything under /console).
    app.use('/console', consoleRouter({ adminToken: config.adminToken, adminLimiter, store, registry, book, pairing, integrations, inventory, logger, clock, secure: Boolean(config.tls) || /^(https|wss):/i.test(config.publicUrl), publicUrl: config.publicUrl }));
    app.use(helmet());
    app.get('/healthz', (_req, res) => {
      res.json({ status: 'ok', version: VERSION });
    });
    app.get('/readyz', (_req, res) => {
      if (self?.draining) res.status(503).json({ error: 'draining', message: 'shutting down' });
      else res.json({ status: 'ready', connectors: registry.size });
    });
    // Express answers OPTIONS on its own with the route's methods (200, a text list), before any
    // credentials check; the API serves no CORS preflight, so it is an unserved method like others.
    const unserved = notFound();
    app.use((req, res, next) => (req.method === 'OPTIONS' ? unserved(req, res, next) : next()));
    app.use(
      adminApi({
        adminToken: config.adminToken,
        store,
        pairing,
        registry,
        book,
        adminLimiter,
        pairLimiter: new FailureLimiter(config.pairing.maxFailuresPerMinute, 60_000, clock),
        pairTenantLimiter: new FailureLimiter(config.pairing.maxFailuresPerTenantPerMinute ?? 30, 60_000, clock),
        logger,
        clock,
      }),
    );
    app.use(tenantApi({ adminToken: config.adminToken, store, managed, adminLimiter, limiter: relayLimiter, clock }));
    app.use(integrationsApi({ adminToken: config.adminToken, store, limiter: relayLimiter, integrations, db: inventory }));
    app.use(notFound());
    app.use(errorHandler(logger));

    // The relay is answered before Express sees the request (see relayHttp): its calls and answers
    // pass through untouched, and routing them through Express was most of their cost.
    const publicHost = new URL(config.publicUrl).host;
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      // RFC 9112 §3.2.2: a server must accept the absolute form ("GET http://host/path").
      if (req.url && !req.url.startsWith('/')) req.url = originForm(req.url, [req.headers.host, publicHost]);
      if (isRelayUrl(req.url ?? '')) relayListener(req, res);
      else app(req, res);
    };
    // Expect: 100-continue is answered by the handlers once the head passed their checks: Node's
    // automatic 100 told a client without credentials, or with a body over the limit, to upload it
    // all before the refusal (RFC 9110 §10.1.1: the final status comes at once).
    const continueListener = (req: IncomingMessage, res: ServerResponse): void => {
      if (req.url && !req.url.startsWith('/')) req.url = originForm(req.url, [req.headers.host, publicHost]);
      if (isRelayUrl(req.url ?? '')) relayListener(req, res);
      else {
        res.writeContinue();
        app(req, res);
      }
    };
    // Client sockets buffer up to one tunnel message (BATCH_BYTES) before pushing back: with Node's
    // 16 KiB default, a relayed download left in one write per 16 KiB DATA frame (8,100 system calls
    // per 128 MiB instead of ~640; docs/performance.md). The cost: a client that reads slowly holds up
    // to 240 KiB more of its response here; the stream's window still bounds the rest.
    const highWaterMark = BATCH_BYTES;
    // Session tickets let reconnecting connectors resume TLS (tls-tickets.ts).
    const tickets = config.tls ? await TicketKeys.load(config.dataDir, config.tls.cert, clock, logger) : undefined;
    const server = config.tls
      ? createHttpsServer(
          // pauseOnConnect: a connection waiting at the handshake gate must not be read yet.
          // handshakeTimeout: 10 s, what a connector waits (Node's default is 120 s), so a client
          // that dribbles a ClientHello does not keep its socket for two minutes.
          { cert: config.tls.cert, key: config.tls.key, highWaterMark, ticketKeys: tickets!.key, sessionTimeout: TicketKeys.lifetimeSeconds, pauseOnConnect: true, handshakeTimeout: 10_000 },
          listener,
        )
      : createHttpServer({ highWaterMark }, listener);
    let gate: HandshakeGate<Socket> | undefined;
    if (config.tls) {
      // A connector gives up its handshake after 10 s (its default): one that waited 8 s for its turn
      // would likely not finish, and the work would be lost. 256 and 2048 handshakes at once did worse
      // than 1024 in 10,000-connector storms (docs/performance.md).
      gate = gateTlsHandshakes(server as HttpsServer, {
        maxInProgress: config.tls.maxConcurrentHandshakes ?? DEFAULT_MAX_TLS_HANDSHAKES,
        maxWaitMs: 8000,
        slotMs: 2000,
        maxQueued: 65_536,
        clock,
        report: (dropped, s) =>
          logger.warn('connections closed unserved at the TLS handshake gate (a reconnect storm, a flood, or more clients than the cloud can take)', {
            dropped,
            queued: s.queued,
            inProgress: s.inProgress,
            slotsExpired: s.expired,
            sources: s.sources,
            // The source with the most waiting: one address far above the rest is a flood.
            ...(s.busiest ? { busiestSource: s.busiest.source, busiestQueued: s.busiest.queued } : {}),
          }),
      });
    }
    server.keepAliveTimeout = 65_000;
    // Node's default (300 s for a whole request, body included) cut relayed uploads short of
    // relay.timeoutSeconds, which covers the upload (a 1 GiB body needed ~29 Mbit/s). The relay's
    // own deadline bounds a relayed call; this one only has to outlast it.
    server.requestTimeout = config.relay.timeoutMs + 60_000;
    server.on('upgrade', (req, socket, head) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== TUNNEL_PATH) {
        // RFC 9110 §7.8: an Upgrade the server does not take (curl --http2 over http sends h2c) is
        // ignored and the request served as it is. Node hands every request that asks for one to
        // this listener, without its body: a request without a body is served here (and the
        // connection closed after it); one with a body is refused in JSON, not a bare 404.
        const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
        if (hasBody || head.length > 0) {
          const body = JSON.stringify({ error: 'bad_request', message: 'Upgrade is only for the tunnel: send this request without it (curl: --http1.1)' });
          socket.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nx-uemlink-error: bad_request\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
          return;
        }
        const res = new ServerResponse(req);
        res.shouldKeepAlive = false;
        res.assignSocket(socket as Socket);
        res.once('finish', () => socket.end());
        listener(req, res);
        return;
      }
      void tunnels.handleUpgrade(req, socket, head);
    });
    server.on('checkContinue', continueListener);
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return void socket.destroy();
      socket.end(clientErrorAnswer(err.code));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listen.port, config.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    tickets?.rotate((key) => (server as HttpsServer).setTicketKeys(key));
    self = new CloudServer(config, store, ca, registry, tunnels, pairing, managed, relayClient, integrations, inventory, book, server, logger, tickets, gate, metrics, relayResponses);
    self.accessLog = accessLog;
    if (config.metrics) {
      try {
        self.metricsServer = await metrics.serve(config.metrics.listen);
      } catch (err) {
        await self.shutdown();
        throw new UemlinkError('CONFIG_INVALID', `${basename(config.file)}: metrics.listen: cannot listen on ${config.metrics.listen.host}:${config.metrics.listen.port}: ${(err as Error).message}`);
      }
      logger.info('metrics listening', { address: config.metrics.listen.host, port: portOf(self.metricsServer) });
    }
    await integrations.start();
    const addr = server.address() as AddressInfo;
    logger.info('cloud relay listening', { address: addr.address, port: addr.port, publicUrl: config.publicUrl, tls: Boolean(config.tls), version: VERSION });
    return self;
  }

  /** SIGHUP: the access log is reopened under its name (after logrotate moved it). */
  reopenFiles(): void {
    this.accessLog?.reopen();
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * Waits, until `deadline`, for relayed responses still on their way to clients: a stream ends on
   * the tunnel when its last DATA arrives, while up to a window's worth (1 MiB and more) still waits
   * for a client reading at its own pace, and closing every connection then cut those downloads
   * short (an aborted body) long before the drain timeout.
   */
  private async relayResponsesSent(deadline: number): Promise<void> {
    const pending = [...this.relayResponses].filter((r) => !r.writableFinished);
    const left = deadline - Date.now();
    if (pending.length === 0 || left <= 0) return;
    this.logger.info('draining: waiting for relayed responses to reach their clients', { responses: pending.length, timeoutMs: left });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(pending.map((r) => new Promise<void>((resolve) => (r.writableFinished || r.destroyed ? resolve() : r.once('close', () => resolve()))))),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, left))),
    ]);
    clearTimeout(timer);
  }

  /** Graceful stop (SIGTERM): drain tunnels, flush presence, close the listener. */
  async shutdown(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const deadline = Date.now() + this.config.drainTimeoutMs;
    this.logger.info('draining', { connectors: this.registry.size, timeoutMs: this.config.drainTimeoutMs });
    this.server.close();
    this.gate?.close();
    this.server.closeIdleConnections();
    this.tickets?.stop();
    await this.integrations.stop();
    await this.tunnels.drain(this.config.drainTimeoutMs);
    await this.relayResponsesSent(deadline);
    await this.book.stop();
    this.inventory.close();
    this.server.closeAllConnections();
    this.metricsServer?.close();
    this.metricsServer?.closeAllConnections();
    // After the connections' close events, which record the last calls.
    await new Promise((resolve) => setImmediate(resolve));
    await this.accessLog?.close();
    this.lock?.release();
    this.logger.info('stopped');
  }
}
