/**
 * Day-2 operations: what an on-call SRE sees in logs, metrics and the audit log over weeks of
 * running (found in a review; each test failed on the code as reviewed).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { systemClock, type Clock } from '../../src/common/clock.js';
import { createLogger } from '../../src/common/log.js';
import { portOf } from '../../src/cloud/metrics.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { IntegrationRunner } from '../../src/cloud/integrations/runner.js';
import { InventoryDb } from '../../src/cloud/inventory/db.js';
import { generateRsaKeyPair } from '../../src/common/pki.js';
import { createAuditLog, type AuditEntry } from '../../src/common/audit.js';
import { ConnectorMetrics } from '../../src/connector/metrics.js';
import { Target } from '../../src/connector/targets/target.js';
import { UemError } from '../../src/uem/adapter.js';
import { bareIntegration, jumpingClock } from '../helpers/integrations.js';
import { relayOver } from '../helpers/relay.js';
import { capturingLogger } from '../helpers/logs.js';
import { connectAs, pairInproc, startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { ADMIN_TOKEN, freePort, makeConnector, sleep, startCloud, tempDir, until } from '../helpers/procs.js';
import { waitFor } from '../helpers/sessions.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const LOG_JS = fileURLToPath(new URL('../../src/common/log.js', import.meta.url));

/** A stream that counts the JSON lines written to it (what journald would get on stdout). */
function countingStream(): { stream: Writable; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { stream, lines };
}

function metricValue(text: string, series: string): number | undefined {
  const l = text.split('\n').find((x) => x.startsWith(`${series} `));
  return l === undefined ? undefined : Number(l.slice(series.length + 1));
}

describe('day-2 operations: logs, metrics, audit (found in review)', function () {
  this.timeout(60_000);

  describe('log file (connector logFile)', () => {
    it('a full disk under logFile must not silence the JSON log on stdout (journald) too', async () => {
      const out = countingStream();
      // /dev/full: every write fails with ENOSPC, as a full /var/log would.
      const logger = createLogger({ component: 'connector', level: 'info', stream: out.stream, file: { path: '/dev/full' } });
      const N = 600;
      for (let i = 0; i < N; i++) {
        logger.info('relay line', { i, pad: 'x'.repeat(100) });
        if (i % 50 === 0) await sleep(5);
      }
      await sleep(500);
      const onStdout = out.lines.filter((l) => l.message === 'relay line').length;
      expect(onStdout, `only ${onStdout} of ${N} lines reached stdout once the log file's disk was full`).to.equal(N);
    });

    it('a removed log directory must not silence the JSON log on stdout once the file rotates', async () => {
      const out = countingStream();
      const dir = tempDir('uemlink-rv-logdir-');
      const logger = createLogger({ component: 'connector', level: 'info', stream: out.stream, file: { path: join(dir, 'sub', 'connector.log'), maxBytes: 4096 } });
      await sleep(100);
      rmSync(join(dir, 'sub'), { recursive: true }); // an admin's cleanup, a tmpfiles rule, an unmounted volume
      const N = 400;
      for (let i = 0; i < N; i++) {
        logger.info('relay line', { i, pad: 'x'.repeat(100) });
        if (i % 50 === 0) await sleep(5);
      }
      await sleep(500);
      const onStdout = out.lines.filter((l) => l.message === 'relay line').length;
      expect(onStdout, `only ${onStdout} of ${N} lines reached stdout after the log directory was removed`).to.equal(N);
    });

    it('a stdout whose reader went away (EPIPE) does not crash the daemon on its next log line', async () => {
      // The logger as `connector run` creates it (stdout), in a child whose stdout pipe we close.
      const script = `
        const { createLogger } = await import(${JSON.stringify(LOG_JS)});
        const logger = createLogger({ component: 'connector', level: 'info' });
        let i = 0;
        setInterval(() => logger.info('tick', { i: i++ }), 10);
        setTimeout(() => { process.stderr.write('still alive\\n'); process.exit(0); }, 1500);
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.once('data', () => child.stdout.destroy()); // the journal / pipe reader is gone
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      expect(stderr.split('\n').filter((l) => /Error|EPIPE/.test(l)).slice(0, 3).join(' | '), 'no crash').to.equal('');
      expect(code).to.equal(0);
    });
  });

  describe('signals', () => {
    it('SIGHUP (logrotate postrotate, `systemctl kill -s HUP`) does not kill the connector without a drain', async () => {
      const c = await makeConnector();
      await c.start();
      try {
        await c.proc.waitLog((l) => l.message === 'local page listening', 20_000, 'local page');
        c.proc.kill('SIGHUP');
        await sleep(1500);
        // Killed by SIGHUP, systemd counts a "clean" exit: Restart=on-failure does not bring it back.
        expect(c.proc.exitCode, `the connector was killed by SIGHUP, no drain, no log line (exit code ${String(c.proc.exitCode)}, signal ${String(c.proc.child.signalCode)})`).to.equal(undefined);
      } finally {
        await c.proc.stop();
      }
    });
  });

  describe('cloud signals', () => {
    it('SIGHUP makes `cloud run` reopen its relay access log under its name (logrotate moved it away)', async () => {
      const cloud = await startCloud({ extra: { relay: { accessLog: { file: 'logs/relay-access.log' } } } });
      const file = join(cloud.dir, 'logs', 'relay-access.log');
      const call = (path: string): Promise<number> => fetch(`${cloud.url}/api/v1/relay/acme/ws1/${path}`).then((r) => r.status);
      try {
        expect(await call('before')).to.equal(401);
        await until(() => existsSync(file) && readFileSync(file, 'utf8').includes('/before'), 5000, 'the first line');
        renameSync(file, `${file}.1`);
        cloud.proc.kill('SIGHUP');
        await cloud.proc.waitLog((l) => l.message === 'SIGHUP: log files reopened', 5000, 'the reopen');
        expect(await call('after')).to.equal(401);
        await until(() => existsSync(file) && readFileSync(file, 'utf8').includes('/after'), 5000, 'the line in a new file');
        expect(readFileSync(`${file}.1`, 'utf8')).to.not.contain('/after');
      } finally {
        await cloud.proc.stop();
      }
    });
  });

  describe('connector relay', () => {
    let up: Upstream | undefined;
    afterEach(async () => {
      await up?.close();
      up = undefined;
    });

    it('a UEM that is down does not write one warning per relayed request (a client retrying writes GBs a day)', async () => {
      const port = await freePort(); // nothing listens: ECONNREFUSED, as a UEM that is down
      const target = Target.resolve({ id: 'ws1', baseUrl: `https://127.0.0.1:${port}/API`, auth: { type: 'none' }, tls: {}, timeoutMs: 5000, maxConcurrent: 8, allow: [] } as never, { where: 'ws1', origin: 'local' });
      const { logger, lines } = capturingLogger();
      const finished: number[] = [];
      const pair = relayOver(target, { logger, onFinished: (e) => finished.push(e.status) });
      try {
        const N = 200;
        for (let i = 0; i < N; i += 20) {
          const batch = [];
          for (let j = 0; j < 20; j++) {
            const s = pair.cloud.openStream({ method: 'GET', path: '/mdm/devices', target: 'ws1', headers: [] });
            s.on('error', () => {});
            s.resume();
            batch.push(new Promise((r) => s.once('response', r)));
          }
          await Promise.all(batch);
        }
        await waitFor(() => finished.length === N, 10_000, 'all finished');
        expect(finished.every((s) => s === 502)).to.equal(true);
        const warns = lines.filter((l) => l.level === 'warn' || l.level === 'error');
        // One line for the condition (and one when it clears), or a summary with a count: not N.
        expect(warns.length, `${warns.length} warning lines for ${N} requests to one unreachable UEM within seconds: "${String(warns[0]?.message)}"`).to.be.at.most(5);
      } finally {
        pair.cloud.close();
        target.close();
      }
    });

    it('a wall-clock step back during a request gives no negative duration (audit) and no falling histogram _sum', async () => {
      up = await startUpstream();
      let offset = 0;
      const clock: Clock = { ...systemClock, now: () => Date.now() + offset };
      let stepBack = false;
      up.setHandler(async (_req, res) => {
        // NTP steps the connector's clock back an hour while the UEM answers.
        if (stepBack) offset -= 3_600_000;
        await sleep(20);
        res.writeHead(200, { 'content-length': '2' }).end('ok');
      });
      const target = Target.resolve({ id: 'ws1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem }, timeoutMs: 5000, maxConcurrent: 4, allow: [] } as never, { where: 'ws1', origin: 'local' });
      const metrics = new ConnectorMetrics({ supervisor: () => undefined, targets: () => [], certificatePem: () => undefined });
      const audit: AuditEntry[] = [];
      const pair = relayOver(target, { clock, audit, onFinished: (e) => metrics.relayFinished(e) });
      const call = async (): Promise<void> => {
        const s = pair.cloud.openStream({ method: 'GET', path: '/x', target: 'ws1', headers: [] });
        s.on('error', () => {});
        s.resume();
        await new Promise((r) => s.once('end', r));
      };
      try {
        await call();
        await waitFor(() => audit.length === 1, 3000, 'first audit line');
        const sum1 = metricValue(await metrics.text(), 'uemlink_relay_duration_seconds_sum{target="ws1"}')!;
        stepBack = true;
        await call();
        await waitFor(() => audit.length === 2, 3000, 'second audit line');
        const sum2 = metricValue(await metrics.text(), 'uemlink_relay_duration_seconds_sum{target="ws1"}')!;
        expect(audit[1]!.durationMs, 'audit durationMs').to.be.at.least(0);
        // A histogram's _sum that falls reads as a counter reset to rate() and increase().
        expect(sum2, `uemlink_relay_duration_seconds_sum went from ${sum1} to ${sum2}`).to.be.at.least(sum1);
      } finally {
        pair.cloud.close();
        target.close();
      }
    });
  });

  describe('audit log', () => {
    it('an audit.log removed (or moved away) while running is written again, not into the unlinked file', async () => {
      const dir = tempDir('uemlink-rv-audit-');
      const file = join(dir, 'audit.log');
      const errors: Error[] = [];
      const log = createAuditLog({ file, maxBytes: 10 * 1024 * 1024, maxFiles: 3, onError: (e) => errors.push(e) });
      const entry = (path: string): AuditEntry => ({ tenant: 'acme', target: 'ws1', method: 'GET', path, status: 200, bytesIn: 0, bytesOut: 2, durationMs: 3, connectorId: 'cn_1' });
      log.record(entry('/before'));
      await sleep(200);
      expect(readFileSync(file, 'utf8')).to.contain('/before');
      unlinkSync(file); // an admin freeing space, a logrotate rule with `create`, a cleanup script
      for (let i = 0; i < 5; i++) log.record(entry(`/after-${i}`));
      await sleep(300);
      await log.close();
      const present = existsSync(file);
      expect(present && readFileSync(file, 'utf8').includes('/after-4'), `audit lines after the removal went nowhere visible (file exists: ${present}; errors reported: ${errors.length})`).to.equal(true);
    });
  });

  describe('cloud, and a connector with a cloud', () => {
    let cloud: CloudServer | undefined;
    let up: Upstream | undefined;
    afterEach(async () => {
      await cloud?.shutdown();
      await up?.close();
      cloud = undefined;
      up = undefined;
    });

    it('a refused tunnel handshake names the connector it was for (AUTH_FAILED: wrong key)', async () => {
      const { logger, lines } = capturingLogger();
      cloud = await startInprocCloud({ logger });
      const id = await pairInproc(cloud);
      const otherKey = createPrivateKey(generateRsaKeyPair(2048).privateKeyPem);
      const err = await connectAs(cloud, id, { privateKey: otherKey }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err, 'the handshake is refused').to.be.instanceOf(Error);
      const refused = await until(() => lines.find((l) => l.message === 'tunnel refused'), 5000, 'tunnel refused line');
      expect(refused, `"tunnel refused" line: ${JSON.stringify(refused)}`).to.have.property('connectorId', id.connectorId);
    });

    it('a target whose health check stops getting an answer is said once at warn (not zero times, not every 30 s), naming the target', async () => {
      cloud = await startInprocCloud();
      const { logger, lines } = capturingLogger();
      const port = await freePort(); // the UEM is down: nothing listens
      const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'ws1', baseUrl: `https://127.0.0.1:${port}/API`, auth: { type: 'none' } }], daemon: { logger } });
      try {
        // Three periodic checks (health.checkIntervalSeconds), run here directly.
        for (let i = 0; i < 3; i++) await daemon.checkTargets();
        expect(daemon.localTargets[0]!.health?.reachable).to.equal(false);
        const said = lines.filter((l) => (l.level === 'warn' || l.level === 'error') && (l.target === 'ws1' || JSON.stringify(l).includes('ws1')));
        expect(said.length, `lines about ws1 going down: ${JSON.stringify(said.map((l) => l.message))}`).to.equal(1);
        expect(said[0]).to.include({ message: 'target health check: the UEM cannot be reached', target: 'ws1', code: 'upstream_unreachable' });
      } finally {
        await daemon.shutdown();
      }
    });

    it('uemlink_cloud_relay_errors_total counts only uemlink\'s own errors: a UEM\'s x-uemlink-error header adds no series', async () => {
      cloud = await startInprocCloud({ metrics: true });
      let n = 0;
      up = await startUpstream({
        handler: (_req, res) => {
          // A UEM (or a proxy before it) that happens to send this header, with values of its own.
          res.writeHead(500, { 'content-type': 'application/json', 'x-uemlink-error': `uem-said-${n++}` }).end('{}');
        },
      });
      const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'ws1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
      try {
        for (let i = 0; i < 10; i++) {
          const r = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/relay/acme/ws1/x`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
          await r.arrayBuffer();
        }
        const text = await (await fetch(`http://127.0.0.1:${portOf(cloud.metricsServer!)}/metrics`)).text();
        const series = text.split('\n').filter((l) => l.startsWith('uemlink_cloud_relay_errors_total{'));
        expect(series, series.slice(0, 3).join('\n')).to.deep.equal([]);
      } finally {
        await daemon.shutdown();
      }
    });

    it("a relayed call carries a request id shared by the client's answer and the connector's audit line", async () => {
      cloud = await startInprocCloud();
      up = await startUpstream({ handler: (_req, res) => void res.writeHead(200, { 'content-length': '2', 'x-request-id': 'the-uem-own-id' }).end('ok') });
      const { daemon, dir } = await startInprocConnector(cloud, { targets: [{ id: 'ws1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
      try {
        const r = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/relay/acme/ws1/mdm/devices`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        expect(r.status).to.equal(200);
        await r.arrayBuffer();
        await daemon.shutdown(); // flushes the audit log
        const audit = readFileSync(join(dir, 'state', 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
        const id = r.headers.get('x-uemlink-request-id');
        expect(id).to.match(/^[0-9a-f-]{36}$/);
        expect(audit[0]).to.include({ requestId: id, path: '/mdm/devices' });
        expect(r.headers.get('x-request-id'), "the UEM's own header is left alone").to.equal('the-uem-own-id');
      } finally {
        await daemon.shutdown().catch(() => {});
      }
    });

    it('an app sync that fails is said in the cloud log (not only on the console), naming the integration', async () => {
      const { logger, lines } = capturingLogger();
      const rec = bareIntegration('int_ops');
      const patches: Array<Record<string, { indicator: string; message: string }>> = [];
      const runner = new IntegrationRunner('int_ops', {
        clock: jumpingClock(),
        logger,
        db: new InventoryDb(':memory:'),
        load: async () => rec as never,
        adapterFor: async () => {
          throw new UemError('auth', 'HTTP 401: the UEM refused the credentials');
        },
        policies: async () => [],
        saveStatus: async (_id, patch) => void patches.push(patch as never),
      });
      await runner.syncNow();
      await runner.stop();
      expect(patches.some((p) => p.appSync?.indicator === 'red'), 'App sync turned red').to.equal(true);
      const said = lines.filter((l) => (l.level === 'warn' || l.level === 'error') && l.integration === 'int_ops');
      expect(said.map((l) => l.message), 'warn/error lines naming the integration').to.not.deep.equal([]);
    });
  });
});
