/**
 * Diagnosis and observability (status, readiness, metrics, diagnose and the CLI around them): what
 * a review confirmed, kept as regression tests.
 */
import { expect } from 'chai';
import { createServer as createHttpsServer } from 'node:https';
import { requestJson } from '../../src/connector/http-json.js';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/log.js';
import { createTestPki, generateRsaKeyPair, issueCertificate } from '../../src/common/pki.js';
import { runConnector } from '../../src/connector/app.js';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { diagnose } from '../../src/connector/diagnose.js';
import { Target } from '../../src/connector/targets/target.js';
import { ConnectorMetrics } from '../../src/connector/metrics.js';
import type { Supervisor } from '../../src/connector/supervisor.js';
import { startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { cli, freePort, sleep, tempDir, until } from '../helpers/procs.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

function writeConfig(dir: string, cfg: Record<string, unknown>): string {
  const file = join(dir, 'connector.json');
  writeFileSync(file, JSON.stringify(cfg));
  return file;
}

/** A TCP server that accepts and then never says a word (a black-holing middlebox). */
async function silentServer(): Promise<{ server: NetServer; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function metricLine(text: string, name: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
}

describe('diagnostics and observability (found in review)', function () {
  this.timeout(60_000);

  describe('diagnose', () => {
    it('cloud.tls gives up within its timeout when the cloud accepts TCP but never answers the TLS handshake', async () => {
      const silent = await silentServer();
      try {
        const dir = tempDir('uemlink-rv-diag-');
        const cfg = loadConnectorConfig(writeConfig(dir, { stateDir: './state', cloudUrl: `https://127.0.0.1:${silent.port}` }));
        const started = Date.now();
        const outcome = await Promise.race([diagnose({ config: cfg, identity: undefined, targets: [] }), sleep(20_000).then(() => 'hung' as const)]);
        // Every step has an 8 s timeout (diagnose.ts TIMEOUT); 20 s is generous.
        expect(outcome, `diagnose still running after ${Date.now() - started} ms: the TLS step has no timeout`).to.not.equal('hung');
        if (outcome !== 'hung') {
          const tls = outcome.checks.find((c) => c.id === 'cloud.tls');
          expect(tls?.status).to.equal('fail');
        }
      } finally {
        await silent.close();
      }
    });

    it('a target whose https:// port speaks plain HTTP: the hint says to check the port and scheme, not to add a CA (found in a walkthrough)', async () => {
      const plain = createNetServer((sock) => {
        sock.once('data', () => sock.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'));
        sock.on('error', () => {});
      });
      await new Promise<void>((r) => plain.listen(0, '127.0.0.1', () => r()));
      try {
        const port = (plain.address() as { port: number }).port;
        const dir = tempDir('uemlink-rv-diag-');
        const cfg = loadConnectorConfig(writeConfig(dir, { stateDir: './state', targets: [{ id: 'ws1', baseUrl: `https://127.0.0.1:${port}/API`, auth: { type: 'none' }, healthPath: '/system/info' }] }));
        const targets = cfg.targets.map((t) => Target.resolve(t as never, { where: t.id, origin: 'local', configFile: cfg.file } as never));
        try {
          const d = await diagnose({ config: cfg, identity: undefined, targets });
          const c = d.checks.find((x) => x.id === 'target.ws1.request')!;
          expect(c.status).to.equal('fail');
          expect(c.hint).to.match(/does not speak TLS: check the port and scheme of baseUrl of target "ws1"/);
          expect(c.hint).to.not.match(/caFile/);
        } finally {
          for (const t of targets) t.close();
        }
      } finally {
        plain.close();
      }
    });

    it('"secret files readable by the service only" does not pass while proxy.passwordFile and health.tls.keyFile are world-readable', async () => {
      const dir = tempDir('uemlink-rv-diag-');
      const pki = createTestPki(['127.0.0.1']);
      writeFileSync(join(dir, 'proxy.password'), 'proxy-secret-123456\n');
      writeFileSync(join(dir, 'page.key'), pki.keyPem);
      writeFileSync(join(dir, 'page.crt'), pki.certPem);
      chmodSync(join(dir, 'proxy.password'), 0o644);
      chmodSync(join(dir, 'page.key'), 0o644);
      const cfg = loadConnectorConfig(
        writeConfig(dir, {
          stateDir: './state',
          proxy: { url: 'http://127.0.0.1:3128', username: 'svc', passwordFile: 'proxy.password' },
          health: { listen: '127.0.0.1:0', tls: { certFile: 'page.crt', keyFile: 'page.key' } },
        }),
      );
      const d = await diagnose({ config: cfg, identity: undefined, targets: [] });
      const c = d.checks.find((x) => x.id === 'secrets.files')!;
      expect(c.status, `${c.status}: ${c.detail}`).to.equal('warn');
      expect(c.detail).to.contain('proxy.password');
      expect(c.detail).to.contain('page.key');
    });
  });

  describe('metrics', () => {
    it('uemlink_tunnel_rtt_seconds is not left at the last session\'s value once the tunnel is gone', async () => {
      let sup: unknown = { state: { state: 'connected', since: 0 }, session: { rttMs: 42, activeStreams: 0 }, reconnects: 0 };
      const m = new ConnectorMetrics({ supervisor: () => sup as Supervisor, targets: () => [], certificatePem: () => undefined });
      expect(metricLine(await m.text(), 'uemlink_tunnel_rtt_seconds')).to.equal('uemlink_tunnel_rtt_seconds 0.042');
      sup = { state: { state: 'disconnected', since: 0, retryAt: 0 }, session: undefined, reconnects: 0 };
      const after = await m.text();
      expect(metricLine(after, 'uemlink_tunnel_up')).to.equal('uemlink_tunnel_up 0');
      // /api/status says rttMs: null now; the metric still reports the dead session's 42 ms.
      expect(metricLine(after, 'uemlink_tunnel_rtt_seconds')).to.not.equal('uemlink_tunnel_rtt_seconds 0.042');
    });

    it('uemlink_oauth_token_requests_total counts the token requests of cloud-managed targets too', async () => {
      const cloud = await startInprocCloud();
      const stops: Array<() => Promise<void>> = [];
      try {
        const deadPort = await freePort();
        const { daemon } = await startInprocConnector(cloud, { extra: { cloudManagedTargets: { allowedHosts: ['127.0.0.1'] } } });
        stops.push(() => daemon.shutdown());
        await cloud.managedTargets.put('acme', 'm1', {
          baseUrl: `https://127.0.0.1:${deadPort}`,
          auth: { type: 'oauth2', tokenUrl: `https://127.0.0.1:${deadPort}/token`, clientId: 'cid', clientSecret: 'managed-client-secret-1' },
        });
        await until(() => daemon.target('m1') !== undefined, 8000, 'the managed target to be accepted');
        await daemon.checkTargets();
        expect(daemon.target('m1')!.health?.error?.code).to.equal('upstream_auth'); // a token request was made and failed
        const text = await daemon.metrics.text();
        expect(text).to.match(/^uemlink_oauth_token_requests_total\{target="m1",outcome="unreachable"\} 1$/m);
      } finally {
        for (const s of stops) await s();
        await cloud.shutdown();
      }
    });
  });

  describe('status and readiness', () => {
    let up: Upstream;
    let release: () => void = () => {};
    before(async () => {
      up = await startUpstream({
        handler: async (req, res) => {
          if (req.url?.includes('/slow')) await new Promise<void>((r) => ((release = r), setTimeout(r, 8000)));
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{}');
        },
      });
    });
    after(async () => {
      release();
      await up.close();
    });

    it('a connector draining on SIGTERM is not reported ready (tunnel "connected", /readyz 200)', async () => {
      const cloud = await startInprocCloud();
      let shutdown: Promise<void> | undefined;
      try {
        const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'ws1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }], extra: { drainTimeoutSeconds: 5 } });
        const n = up.seen.length;
        const inflight = cloud.relay.fetch('acme', 'ws1', '/slow').catch(() => undefined);
        await until(() => up.seen.length > n, 5000, 'the request to reach the UEM');
        shutdown = daemon.shutdown();
        await until(() => daemon.tunnel?.session?.state === 'draining', 3000, 'the session to drain');
        const s = await daemon.status();
        release();
        await inflight;
        expect({ ready: s.ready, state: s.tunnel.state }, 'the connector accepts no new requests while draining').to.not.deep.equal({ ready: true, state: 'connected' });
      } finally {
        release();
        await shutdown;
        await cloud.shutdown();
      }
    });

    it('a tunnel the cloud is draining (GOAWAY received) is not reported connected and ready', async () => {
      const cloud = await startInprocCloud();
      let daemonRef: { shutdown(): Promise<void> } | undefined;
      let cloudDown: Promise<void> | undefined;
      try {
        const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'ws1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
        daemonRef = daemon;
        const n = up.seen.length;
        const inflight = cloud.relay.fetch('acme', 'ws1', '/slow').catch(() => undefined);
        await until(() => up.seen.length > n, 5000, 'the request to reach the UEM');
        cloudDown = cloud.shutdown();
        await until(() => daemon.tunnel?.session?.state === 'draining', 3000, 'the GOAWAY to arrive');
        const s = await daemon.status();
        const metrics = await daemon.metrics.text();
        release();
        await inflight;
        expect({ ready: s.ready, state: s.tunnel.state, up: metricLine(metrics, 'uemlink_tunnel_up') }).to.not.deep.equal({ ready: true, state: 'connected', up: 'uemlink_tunnel_up 1' });
      } finally {
        release();
        await cloudDown?.catch(() => {});
        await daemonRef?.shutdown();
      }
    });

    it('with health.requireTargets, a target that rejects the configured credentials (401 on every call) is not ready / up', async () => {
      const cloud = await startInprocCloud();
      const denying = await startUpstream({
        handler: (_req, res) => {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end('{"errorCode":1005,"message":"User credentials are incorrect"}');
        },
      });
      try {
        const { daemon } = await startInprocConnector(cloud, {
          targets: [{ id: 'ws1', baseUrl: denying.baseUrl, auth: { type: 'basic', username: 'u', password: 'wrong-password-1' }, tls: { ca: denying.caPem } }],
          extra: { health: { checkIntervalSeconds: 3600, requireTargets: true } },
        });
        try {
          await daemon.checkTargets();
          const s = await daemon.status();
          const metrics = await daemon.metrics.text();
          expect(s.targets[0]!.lastStatus).to.equal(401);
          // The same broken credentials with OAuth2 (token endpoint says invalid_client) give
          // reachable:false and not ready; with basic/apiKey everything said healthy.
          expect({ ready: s.ready, reason: s.notReadyReason, checkStatus: s.targets[0]!.checkStatus, status: metricLine(metrics, 'uemlink_target_health_status') }).to.deep.equal({
            ready: false,
            reason: 'credentials rejected by ws1 (HTTP 401)',
            checkStatus: 401,
            status: 'uemlink_target_health_status{target="ws1"} 401',
          });
        } finally {
          await daemon.shutdown();
        }
      } finally {
        await denying.close();
        await cloud.shutdown();
      }
    });
  });

  describe('CLI', () => {
    async function statusAgainstTlsPage(certPem: string, keyPem: string, listenHost: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
      const dir = tempDir('uemlink-rv-cli-');
      writeFileSync(join(dir, 'page.crt'), certPem);
      writeFileSync(join(dir, 'page.key'), keyPem, { mode: 0o600 });
      writeFileSync(join(dir, 'admin.pw'), 'correct-horse-battery\n', { mode: 0o600 });
      const port = await freePort();
      const file = writeConfig(dir, { stateDir: './state', health: { listen: `${listenHost}:${port}`, tls: { certFile: 'page.crt', keyFile: 'page.key' }, adminPasswordFile: 'admin.pw', checkIntervalSeconds: 0 } });
      const running = await runConnector(loadConnectorConfig(file), silentLogger());
      try {
        return await cli(['connector', 'status', '--config', file], { timeoutMs: 20_000 });
      } finally {
        await running.shutdown();
      }
    }

    it('after a bad edit of the config (a typo), `connector status` still reads the running connector and `support-bundle` still writes a bundle, both saying what is wrong (found in a walkthrough)', async () => {
      const pki = createTestPki(['127.0.0.1', 'localhost']);
      const dir = tempDir('uemlink-rv-cli-');
      writeFileSync(join(dir, 'page.crt'), pki.certPem);
      writeFileSync(join(dir, 'page.key'), pki.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, 'admin.pw'), 'correct-horse-battery\n', { mode: 0o600 });
      const port = await freePort();
      const good = { stateDir: './state', health: { listen: `127.0.0.1:${port}`, tls: { certFile: 'page.crt', keyFile: 'page.key' }, adminPasswordFile: 'admin.pw', checkIntervalSeconds: 0 } };
      const file = writeConfig(dir, good);
      const running = await runConnector(loadConnectorConfig(file), silentLogger());
      try {
        writeConfig(dir, { ...good, loglevel: 'debug' }); // the admin's edit, with a typo
        const st = await cli(['connector', 'status', '--config', file], { timeoutMs: 20_000 });
        expect(st.stderr).to.contain('unknown key "loglevel"').and.contain('reading the running connector');
        expect(st.stdout).to.contain('not paired');
        expect(st.stdout).to.match(/^next {7}pair it: uemlink connector pair --config .* --token-file FILE/m);
        const out = join(dir, 'bundle.tar.gz');
        const b = await cli(['connector', 'support-bundle', '--config', file, '-o', out], { timeoutMs: 60_000 });
        expect(b.code, b.stderr).to.equal(0);
        expect(b.stderr).to.contain('the config is invalid');
        const listing = gunzipSync(readFileSync(out)).toString('latin1');
        expect(listing).to.contain('status.json').and.contain('not run: the config is invalid');
      } finally {
        await running.shutdown();
      }
    });

    it('`connector status` reads a local page served with health.tls by a certificate from a CA (the usual case)', async () => {
      const pki = createTestPki(['127.0.0.1', 'localhost']);
      const r = await statusAgainstTlsPage(pki.certPem, pki.keyPem, '127.0.0.1');
      // Unpaired: a successful read prints "not paired" and exits 1; a failed read says "cannot read".
      expect(r.stderr, r.stderr).to.not.contain('cannot read the connector');
      expect(r.stdout).to.contain('not paired');
    });

    it('`connector status` reads a page on 0.0.0.0 with health.tls whose certificate names this host (not 127.0.0.1)', async () => {
      const keys = generateRsaKeyPair(2048);
      const name = hostname().toLowerCase() || 'uem-gw-01.corp.example';
      const cert = issueCertificate({ subject: { CN: name }, publicKeyPem: keys.publicKeyPem, signingKeyPem: keys.privateKeyPem, days: 30, serverNames: [name], serverAuth: true });
      const r = await statusAgainstTlsPage(cert, keys.privateKeyPem, '0.0.0.0');
      expect(r.stderr, r.stderr).to.not.contain('cannot read the connector');
      expect(r.stdout).to.contain('not paired');
    });

    it('the pinned page certificate is the only one accepted: another, even from the same CA, is refused before the answer is read', async () => {
      const a = createTestPki(['127.0.0.1']);
      const b = createTestPki(['127.0.0.1']);
      const server = createHttpsServer({ cert: a.certPem, key: a.keyPem }, (_req, res) => res.end('{"ok":true}'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const url = `https://127.0.0.1:${(server.address() as { port: number }).port}/api/status`;
      try {
        const good = await requestJson(url, { method: 'GET', timeoutMs: 5_000, pinnedCertPem: a.certPem });
        expect(good.body).to.deep.equal({ ok: true });
        const bad = await requestJson(url, { method: 'GET', timeoutMs: 5_000, pinnedCertPem: b.certPem }).then(
          () => 'accepted',
          (e: NodeJS.ErrnoException) => e.code,
        );
        expect(bad).to.equal('ERR_UEMLINK_PIN_MISMATCH');
      } finally {
        server.close();
      }
    });
  });
});
