/**
 * The connector's lifecycle at its edges (found in review): stop during a dial, a session that dies
 * before anyone listens, pairing racing the unpaired poll, renewals asked for twice, and the audit
 * lines of requests a shutdown's drain cut.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/log.js';
import { type Clock, systemClock } from '../../src/common/clock.js';
import { type ConnectorConfig, loadConnectorConfig } from '../../src/connector/config.js';
import { tempDir, until } from '../helpers/procs.js';
import { expect } from 'chai';
import { Backoff } from '../../src/connector/backoff.js';
import { Supervisor } from '../../src/connector/supervisor.js';
import { type Connected, connectTunnel, TunnelError } from '../../src/connector/tunnel-client.js';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { type AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { encodeFrame, jsonPayload } from '../../src/protocol/frame.js';
import { DEFAULT_LIMITS } from '../../src/protocol/messages.js';
import { type CloudServer } from '../../src/cloud/server.js';
import type { MuxSession } from '../../src/protocol/session.js';
import { ConnectorDaemon } from '../../src/connector/daemon.js';
import { startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { UemlinkError } from '../../src/common/errors.js';
import { ConnectorStateStore } from '../../src/connector/state.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { capturingLogger } from '../helpers/logs.js';

/** A clock whose timers of exactly `ms` are captured (not scheduled) so a test can fire them. */
function capturingClock(ms: number): Clock & { captured: Array<{ fn: () => void; cleared: boolean }> } {
  const captured: Array<{ fn: () => void; cleared: boolean }> = [];
  return {
    ...systemClock,
    captured,
    setTimeout: (fn, t) => {
      if (t === ms) {
        const h = { fn, cleared: false };
        captured.push(h);
        return h;
      }
      return systemClock.setTimeout(fn, t);
    },
    clearTimeout: (h) => {
      if (captured.includes(h as never)) (h as { cleared: boolean }).cleared = true;
      else systemClock.clearTimeout(h);
    },
  };
}

function connectorConfig(extra: Record<string, unknown> = {}): ConnectorConfig {
  const dir = tempDir('uemlink-review-');
  const file = join(dir, 'connector.json');
  writeFileSync(file, JSON.stringify({ stateDir: './state', targets: [], health: { checkIntervalSeconds: 0 }, ...extra }));
  return loadConnectorConfig(file);
}

describe('supervisor: stop during a dial', function () {
  this.timeout(20_000);

  it('stop() returns promptly when the dial in progress then fails (no backoff wait after stop)', async () => {
    let failDial: ((e: Error) => void) | undefined;
    const sup = new Supervisor({
      clock: systemClock,
      logger: silentLogger(),
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000 }),
      connect: () =>
        new Promise<Connected>((_res, rej) => {
          failDial = rej;
        }),
    });
    sup.start();
    await new Promise((r) => setImmediate(r));
    expect(sup.state.state).to.equal('connecting');
    const t0 = Date.now();
    const stopped = sup.stop(1000).then(() => Date.now() - t0);
    // The dial in progress fails (handshake timeout, refused, or the cloud asks to come back later).
    setTimeout(() => failDial!(new TunnelError('TUNNEL_OVERLOADED', 'busy', { retryAfterMs: 5000 })), 50);
    const took = await Promise.race([stopped, new Promise<string>((r) => setTimeout(() => r('still stopping after 3 s'), 3000))]);
    expect(took).to.be.a('number').and.below(1000);
    expect(sup.state.state).to.equal('stopped');
  });
});

describe('supervisor: a session that dies in the same read as WELCOME', function () {
  this.timeout(20_000);

  it('is not reported connected forever; the supervisor redials', async () => {
    const connectorId = 'cn_0123456789abcdef0123';
    let dials = 0;
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    wss.on('connection', (ws) => {
      dials++;
      ws.send(
        encodeFrame({
          kind: 'hello',
          json: jsonPayload({ protocol: { min: 1, max: 2 }, software: 'fake-cloud', nonce: randomBytes(32).toString('base64url'), limits: DEFAULT_LIMITS, heartbeatMs: 0 }),
        }),
      );
      ws.once('message', () => {
        const sock = (ws as unknown as { _socket: import('node:net').Socket })._socket;
        sock.cork();
        ws.send(encodeFrame({ kind: 'welcome', json: jsonPayload({ sessionId: 's1', epoch: 1, connectorId, tenant: 't', group: 'g', serverTime: new Date().toISOString() }) }));
        // A second message in the same TCP segment that the session rejects (here: CONTROL that is not JSON).
        ws.send(encodeFrame({ kind: 'control', json: Buffer.from('not json') }));
        sock.uncork();
      });
    });
    await new Promise((r) => wss.once('listening', r));
    const port = (wss.address() as AddressInfo).port;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const sup = new Supervisor({
      clock: systemClock,
      logger: silentLogger(),
      backoff: new Backoff({ baseMs: 100, capMs: 200, stableMs: 60_000 }),
      connect: () =>
        connectTunnel({
          url: `ws://127.0.0.1:${port}/`,
          connectorId,
          privateKey,
          hostname: 'h',
          software: 'uemlink-connector/test',
          targets: [],
          limits: DEFAULT_LIMITS,
          heartbeatMs: 0,
          handshakeTimeoutMs: 3000,
          clock: systemClock,
        }),
    });
    sup.start();
    await new Promise((r) => setTimeout(r, 1500));
    const seen = { state: sup.state.state, sessionState: sup.session?.state ?? null, dials };
    await Promise.race([sup.stop(100), new Promise((r) => setTimeout(r, 500))]);
    wss.close();
    expect(seen.dials, 'the session did die and was redialled').to.be.greaterThan(1);
    expect(seen.state).to.not.equal('connected');
  });
});

describe('daemon: pairing from the page while the unpaired poll runs', function () {
  this.timeout(20_000);
  let cloud: CloudServer;
  before(async () => {
    cloud = await startInprocCloud();
  });
  after(async () => {
    await cloud.shutdown();
  });

  it('starts exactly one tunnel when the 2 s poll fires as pairing stores the identity', async () => {
    const { logger, lines } = capturingLogger();
    const clock = capturingClock(2000);
    const cfg = connectorConfig();
    const daemon = await ConnectorDaemon.start(cfg, { logger, clock });
    expect(clock.captured).to.have.length(1); // the poll timer
    const save = daemon.state.save.bind(daemon.state);
    daemon.state.save = async (...a: Parameters<typeof save>) => {
      await save(...a);
      // The poll's 2 s timer happens to fire right now (it fires every 2 s while unpaired).
      const p = clock.captured.at(-1)!;
      if (!p.cleared) p.fn();
    };
    const token = (await cloud.pairing.createToken({ tenant: 'acme', group: 'default' })).token;
    const r = await daemon.pair(token);
    await new Promise((res) => setTimeout(res, 1500));
    const starts = lines.filter((l) => l.message === 'starting tunnel').length;
    const connects = lines.filter((l) => l.message === 'tunnel connected').length;
    await daemon.shutdown();
    await new Promise((res) => setTimeout(res, 1500));
    const replaced = lines.filter((l) => String(l.message).startsWith('another session with this connector identity replaced ours')).length;
    expect({ starts, connects, replaced, connectorId: r.connectorId }).to.deep.equal({ starts: 1, connects: 1, replaced: 0, connectorId: r.connectorId });
  });

  it('polls no more after shutdown() when the poll was reading the state as shutdown began', async () => {
    const { logger } = capturingLogger();
    const clock = capturingClock(2000);
    const daemon = await ConnectorDaemon.start(connectorConfig(), { logger, clock });
    expect(clock.captured).to.have.length(1);
    clock.captured[0]!.fn(); // the 2 s poll fires: it starts reading state.json
    await daemon.shutdown(); // SIGTERM meanwhile
    await new Promise((res) => setTimeout(res, 200));
    const armedAfterShutdown = clock.captured.slice(1).filter((c) => !c.cleared).length; // timers armed after the one that fired
    expect(armedAfterShutdown).to.equal(0);
  });
});

describe('daemon: certificate renewal retries', function () {
  this.timeout(30_000);
  let cloud: CloudServer;
  const origSave = ConnectorStateStore.prototype.save;
  before(async () => {
    // Certificates of 10 days: both the cloud (renewBeforeDays 30) and the connector
    // (certificateRenewDays 30) want a renewal at every connection.
    cloud = await startInprocCloud({ certificateDays: 10 });
  });
  after(async () => {
    ConnectorStateStore.prototype.save = origSave;
    await cloud.shutdown();
  });

  it('keeps one retry timer after a failed renewal that both the cloud and the connector asked for, and none after shutdown', async () => {
    // The renewal fails when storing its answer (disk full, read-only state dir).
    ConnectorStateStore.prototype.save = async function (this: ConnectorStateStore, ...a: Parameters<typeof origSave>) {
      if (a[2]?.renewal) throw new UemlinkError('STATE_UNREADABLE', 'disk full');
      return origSave.apply(this, a);
    };
    // Retry timers are recognisable by their length (renewRetry 1000 s: 500..1000 s).
    const live = new Set<unknown>();
    const clock: Clock = {
      ...systemClock,
      setTimeout: (fn, ms) => {
        if (ms < 500_000) return systemClock.setTimeout(fn, ms);
        const h = systemClock.setTimeout(() => {
          live.delete(h);
          fn();
        }, ms);
        (h as NodeJS.Timeout).unref();
        live.add(h);
        return h;
      },
      clearTimeout: (h) => {
        live.delete(h);
        systemClock.clearTimeout(h);
      },
    };
    const { logger, lines } = capturingLogger();
    const { daemon } = await startInprocConnector(cloud, { daemon: { clock, logger, renewRetry: { baseMs: 1_000_000, capMs: 1_000_000 } } });
    await until(() => lines.some((l) => l.message === 'certificate renewal failed; retrying'), 20_000, 'a failed renewal');
    await new Promise((r) => setTimeout(r, 500));
    const warnings = lines.filter((l) => l.message === 'certificate renewal failed; retrying').length;
    const armedWhileConnected = live.size;
    await daemon.shutdown();
    const armedAfterShutdown = live.size;
    expect({ warnings, armedWhileConnected, armedAfterShutdown }).to.deep.equal({ warnings: 1, armedWhileConnected: 1, armedAfterShutdown: 0 });
  });
});

describe('daemon: a renewal and the session that carries it', function () {
  this.timeout(30_000);
  let cloud: CloudServer;
  const origSave = ConnectorStateStore.prototype.save;
  before(async () => {
    cloud = await startInprocCloud();
  });
  afterEach(() => {
    ConnectorStateStore.prototype.save = origSave;
  });
  after(async () => {
    await cloud.shutdown();
  });

  const sessionOf = (daemon: ConnectorDaemon): MuxSession | undefined => (daemon as unknown as { supervisor?: Supervisor }).supervisor?.session;

  it('fails at once when its session closes before the cloud answers (not at the 60 s timeout)', async () => {
    const { daemon } = await startInprocConnector(cloud, { daemon: { logger: silentLogger() } });
    try {
      await until(() => sessionOf(daemon)?.state === 'open', 10_000, 'connected');
      const session = sessionOf(daemon)!;
      // The request is lost on the way (the cloud never answers it).
      const send = session.sendControl.bind(session);
      session.sendControl = (msg) => (msg.type === 'cert.renew' ? undefined : send(msg));
      const started = Date.now();
      const renewal = daemon.renewer.renew('test', session).then(
        () => 'renewed',
        (e: Error) => e.message,
      );
      await new Promise((r) => setTimeout(r, 200));
      session.close(1000, 'test');
      const outcome = await Promise.race([renewal, new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5_000))]);
      expect(outcome).to.match(/tunnel closed before the cloud answered/);
      expect(Date.now() - started).to.be.below(5_000);
    } finally {
      await daemon.shutdown();
    }
  });

  it('starts the retry delay over in a new session', async () => {
    ConnectorStateStore.prototype.save = async function (this: ConnectorStateStore, ...a: Parameters<typeof origSave>) {
      if (a[2]?.renewal) throw new UemlinkError('STATE_UNREADABLE', 'disk full');
      return origSave.apply(this, a);
    };
    const { logger, lines } = capturingLogger();
    // base 100 s: the first retry waits 50..100 s, a second failure's 100..200 s.
    const { daemon } = await startInprocConnector(cloud, { daemon: { logger, renewRetry: { baseMs: 100_000, capMs: 10_000_000 } } });
    try {
      const failures = () => lines.filter((l) => l.message === 'certificate renewal failed; retrying');
      await until(() => sessionOf(daemon)?.state === 'open', 10_000, 'connected');
      await daemon.renewer.renew('test').catch(() => {});
      // Our own renewal failed; the one renewOver arms is what counts: ask for it as the cloud would.
      daemon.renewer.renewOver(sessionOf(daemon)!, 'test');
      await until(() => failures().length >= 1, 10_000, 'a failed renewal');
      const first = sessionOf(daemon)!;
      first.close(1000, 'test');
      await until(() => sessionOf(daemon) !== first && sessionOf(daemon)?.state === 'open', 15_000, 'reconnected');
      await daemon.renewer.renewOver(sessionOf(daemon)!, 'test');
      await until(() => failures().length >= 2, 10_000, 'a second failed renewal');
      const delays = failures().map((l) => l.retryInMs as number);
      expect(delays[delays.length - 1]).to.be.at.most(100_000);
    } finally {
      await daemon.shutdown();
    }
  });
});

describe('daemon: SIGTERM drain and the audit log', function () {
  this.timeout(30_000);
  let cloud: CloudServer;
  let up: Upstream;
  before(async () => {
    cloud = await startInprocCloud({ relayTimeoutMs: 20_000 });
    // A UEM that takes longer than the drain timeout.
    up = await startUpstream({ handler: () => new Promise(() => {}) });
  });
  after(async () => {
    await cloud.shutdown();
    await up.close();
  });

  it('has the audit line of a request cut by the drain timeout on disk when shutdown() resolves (the CLI exits right then)', async () => {
    const { daemon } = await startInprocConnector(cloud, {
      targets: [{ id: 'ws1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }],
      extra: { drainTimeoutSeconds: 0.5 },
    });
    const pending = cloud.relay.fetch('acme', 'ws1', '/slow/one').catch(() => undefined);
    await until(() => up.seen.length === 1, 10_000, 'the request reached the UEM');
    await daemon.shutdown();
    // onTerminate: shutdown().then(() => process.exit(0)) — whatever is not in the file now is lost.
    const file = daemon.config.audit.file;
    const atExit = existsSync(file) ? readFileSync(file, 'utf8') : '';
    await pending;
    await new Promise((r) => setTimeout(r, 300));
    const later = existsSync(file) ? readFileSync(file, 'utf8') : '';
    expect({ atExit: atExit.includes('/slow/one'), later: later.includes('/slow/one') }).to.deep.equal({ atExit: true, later: true });
  });
});
