/**
 * Certificate lifecycle: a connector renews its certificate over the tunnel before it expires
 * (injected clock) without dropping traffic, and the cloud's connector CA can be rotated without
 * re-pairing anyone.
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import sinon from 'sinon';
import { createLogger } from '../../src/common/log.js';
import { createCsr, generateRsaKeyPair } from '../../src/common/pki.js';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { pairConnector } from '../../src/connector/pair.js';
import { ConnectorStateStore } from '../../src/connector/state.js';
import type { Connected } from '../../src/connector/tunnel-client.js';
import { connectAs, offsetClock, pairInproc, startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { cli, connectorEntry, makeConnector, sleep, startCloud, until } from '../helpers/procs.js';
import { startUpstream } from '../helpers/upstream.js';

/** SHA-256 fingerprint of a PEM certificate, as the cloud stores it. */
const fp = (pem: string): string => new X509Certificate(pem).fingerprint256;

/** The target every in-process connector here serves: the test upstream, trusted by its CA. */
const upstreamTarget = (up: { baseUrl: string; caPem: string }) => [{ id: 't', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }];

describe('certificate lifecycle', function () {
  this.timeout(90_000);

  it('renews over the tunnel before expiry (injected clock) while requests keep flowing; the new key authenticates', async () => {
    const cloud = await startInprocCloud();
    const up = await startUpstream();
    const id = await pairInproc(cloud);
    // 340 days from now, the 365-day certificate has 25 days left: under the 30-day threshold.
    const clock = offsetClock();
    clock.advance(340 * 86_400_000);
    // Traffic before, during and after the renewal.
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      await until(() => cloud.registry.get(id.connectorId) !== undefined, 10_000, 'connected');
      while (!stop) statuses.push((await cloud.relay.fetch('acme', 't', '/x')).status);
    })();
    const { daemon, dir } = await startInprocConnector(cloud, { id, targets: upstreamTarget(up), daemon: { clock } });
    const stateDir = join(dir, 'state');
    try {
      const oldFingerprint = fp(id.certificate);
      await until(() => daemon.identity && fp(daemon.identity.certificate) !== oldFingerprint, 20_000, 'the renewed certificate');
      const renewed = new X509Certificate(daemon.identity!.certificate);
      expect(renewed.subject).to.contain(`CN=${id.connectorId}`);
      expect(Date.parse(renewed.validTo) - Date.now()).to.be.greaterThan(360 * 86_400_000);
      const rec = (await cloud.store.read()).connectors[id.connectorId]!;
      expect(rec.fingerprint256).to.equal(renewed.fingerprint256);
      expect(rec.previousFingerprint256).to.equal(oldFingerprint);
      // Back to the present: the renewed certificate is not due again, so the reconnect below must
      // not trigger a second renewal.
      clock.advance(-340 * 86_400_000);
      await sleep(300);
      stop = true;
      await load;
      expect(statuses.length).to.be.greaterThan(10);
      expect(statuses.every((s) => s === 200), `statuses: ${[...new Set(statuses)].join(',')}`).to.equal(true);
      // The renewed key authenticates: drop the session, the connector comes back with it.
      const epoch = cloud.registry.get(id.connectorId)!.epoch;
      cloud.registry.get(id.connectorId)!.session.close(4000, 'test: reconnect');
      await until(() => (cloud.registry.get(id.connectorId)?.epoch ?? 0) > epoch, 15_000, 'reconnected with the new key');
      // The cloud registers a session as it sends WELCOME; the connector has it a moment later.
      await until(() => daemon.tunnel?.session?.state === 'open', 5000, 'the connector has its new session');
      const keys = readdirSync(stateDir).filter((f) => f.startsWith(id.connectorId) && f.endsWith('.key'));
      expect(keys).to.have.length(1); // the old key was removed
      expect(readFileSync(join(stateDir, keys[0]!), 'utf8')).to.not.equal(id.privateKeyPem);
      // A connector looping on renewals is refused: the last one was minutes ago.
      const again = await daemon.renewer.renew('test: again').then(() => undefined, (e: Error) => e);
      expect(again?.message).to.match(/renewed less than 10 minutes ago/);
      expect((await cloud.store.read()).connectors[id.connectorId]!.fingerprint256).to.equal(fp(daemon.identity!.certificate));
    } finally {
      stop = true;
      await daemon.shutdown();
      await cloud.shutdown();
      await up.close();
    }
  });

  it('renews when the cloud asks in the same read as WELCOME (before the connector has filed its session)', async () => {
    // The cloud asks right after WELCOME (rotated CA, or its renewBeforeDays above the connector's);
    // in one process both frames arrive in one read, so the request reaches the connector before
    // its supervisor has recorded the session. The renewal must use the session that carried it.
    const cloud = await startInprocCloud({ renewBeforeDays: 400 });
    const up = await startUpstream();
    const id = await pairInproc(cloud);
    const { daemon } = await startInprocConnector(cloud, { id, targets: upstreamTarget(up) });
    try {
      const oldFingerprint = fp(id.certificate);
      await until(() => daemon.identity && fp(daemon.identity.certificate) !== oldFingerprint, 15_000, 'the renewal the cloud asked for');
      expect((await cloud.store.read()).connectors[id.connectorId]!.fingerprint256).to.equal(fp(daemon.identity!.certificate));
    } finally {
      await daemon.shutdown();
      await cloud.shutdown();
      await up.close();
    }
  });

  /**
   * The cloud's CA fails the first renewal (edge case: the CA unavailable, the cloud's disk full);
   * the connector must retry over the same session, not wait for a reconnect.
   */
  async function renewalRetriedInSession(o: { cloud?: Parameters<typeof startInprocCloud>[0]; clock?: ReturnType<typeof offsetClock> }, more: (logs: string, calls: () => number) => Promise<void>): Promise<void> {
    const cloud = await startInprocCloud(o.cloud);
    const up = await startUpstream();
    const id = await pairInproc(cloud);
    const issue = sinon.stub(cloud.ca, 'issue').callThrough();
    issue.onFirstCall().throws(new Error('test: the CA is unavailable'));
    const out = new PassThrough();
    let logs = '';
    out.on('data', (d: Buffer) => (logs += d.toString()));
    const logger = createLogger({ component: 'connector', stream: out, level: 'info' });
    const { daemon } = await startInprocConnector(cloud, {
      id,
      targets: upstreamTarget(up),
      daemon: { logger, renewRetry: { baseMs: 200, capMs: 400 }, ...(o.clock ? { clock: o.clock } : {}) },
    });
    try {
      const oldFingerprint = fp(id.certificate);
      const epoch = await until(() => cloud.registry.get(id.connectorId)?.epoch, 10_000, 'connected');
      await until(() => daemon.identity && fp(daemon.identity.certificate) !== oldFingerprint, 15_000, 'the renewal, retried');
      expect(issue.callCount).to.equal(2);
      expect(logs).to.contain('certificate renewal failed; retrying').and.contain('the CA is unavailable');
      expect(cloud.registry.get(id.connectorId)?.epoch, 'retried within the same session').to.equal(epoch);
      expect((await cloud.store.read()).connectors[id.connectorId]!.fingerprint256).to.equal(fp(daemon.identity!.certificate));
      await more(logs, () => issue.callCount);
    } finally {
      issue.restore();
      await daemon.shutdown();
      await cloud.shutdown();
      await up.close();
    }
  }

  it('retries a renewal the cloud asked for when it failed, while that session lasts', async () => {
    await renewalRetriedInSession({ cloud: { renewBeforeDays: 400 } }, async (_logs, calls) => {
      await sleep(1000); // no further renewals once one succeeded
      expect(calls()).to.equal(2);
    });
  });

  it('retries a renewal it started itself when it failed, while that session lasts', async () => {
    // The cloud does not ask (the certificate is far from the cloud's window by the cloud's clock);
    // the connector's clock says 25 days are left, under its 30-day threshold.
    const clock = offsetClock();
    clock.advance(340 * 86_400_000);
    await renewalRetriedInSession({ clock }, async (logs) => {
      expect(logs).to.contain('expires in 24 days');
    });
  });

  it('a renewal keeps the certificate the connector holds as the grace one, even after an answer it never stored', async () => {
    const clock = offsetClock();
    const cloud = await startInprocCloud({ clock });
    try {
      const a = await pairInproc(cloud);
      const renewOver = async (c: Connected): Promise<Record<string, unknown>> => {
        const answer = new Promise<Record<string, unknown>>((resolve) => c.session.on('control', (m: Record<string, unknown>) => m.type?.toString().startsWith('cert.renew') && resolve(m)));
        c.session.sendControl({ type: 'cert.renew', csr: createCsr(generateRsaKeyPair(2048).privateKeyPem, { CN: 'x' }) });
        return answer;
      };
      // Session 1 (key A) renews to B, but the connector never stores the answer (lost, disk full).
      const s1 = await connectAs(cloud, a);
      const b = await renewOver(s1);
      expect(b.type).to.equal('cert.renewed');
      s1.session.close(1000, 'test');
      // 11 minutes later it connects again with A (the grace) and renews to C.
      clock.advance(11 * 60_000);
      const s2 = await connectAs(cloud, a);
      const c = await renewOver(s2);
      expect(c.type).to.equal('cert.renewed');
      s2.session.close(1000, 'test');
      const rec = (await cloud.store.read()).connectors[a.connectorId]!;
      expect(rec.fingerprint256).to.equal(fp(c.certificate as string));
      // The grace certificate is A, the one it holds, not B, which it never had.
      expect(rec.previousFingerprint256).to.equal(fp(a.certificate));
      // So A still gets in (it would be AUTH_FAILED, and the connector locked out, with B as grace).
      const s3 = await connectAs(cloud, a);
      expect(s3.welcome.connectorId).to.equal(a.connectorId);
      s3.session.close(1000, 'test');
    } finally {
      await cloud.shutdown();
    }
  });

  it('the connector CA can be rotated without re-pairing: connectors renew onto the new CA over the tunnel', async () => {
    const cloud = await startCloud();
    const c = await makeConnector();
    try {
      const t = await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' });
      const paired = await c.pair(t.body.token);
      const cid = paired.stdout.trim();
      await c.start();
      await until(async () => (await connectorEntry(cloud, cid))?.connected, 10_000, 'connected');
      const rot = await cli(['cloud', 'ca', 'rotate', '--config', cloud.configFile]);
      expect(rot.code, rot.stderr).to.equal(0);
      expect(rot.stdout).to.contain('generation 2 created');
      let st = await cli(['cloud', 'ca', 'status', '--config', cloud.configFile]);
      expect(st.stdout).to.match(/generation 1 .*connectors: 1/).and.match(/generation 2 \(current, signs\).*connectors: 0/);
      // Restart to sign with generation 2; the connector reconnects (old CA still verifies) and renews.
      cloud.proc.kill('SIGTERM');
      await cloud.proc.wait();
      await cloud.restart();
      await until(async () => {
        const r = await cli(['cloud', 'ca', 'status', '--config', cloud.configFile]);
        return /generation 2 .*connectors: 1/.test(r.stdout) ? r : undefined;
      }, 45_000, 'the connector on the new CA'); // a reconnect after the restart, then a renewal: ~10 s, more on a loaded CI machine
      st = await cli(['cloud', 'ca', 'status', '--config', cloud.configFile]);
      expect(st.stdout).to.match(/generation 1 .*connectors: 0/);
      expect((await connectorEntry(cloud, cid)).connected).to.equal(true);
      await until(() => c.proc.hasLog((l) => l.message === 'connector certificate renewed'), 5000, 'the renewal in the log');
    } finally {
      await c.proc?.stop();
      await cloud.proc.stop();
    }
  });
});

describe('a re-pair while the daemon runs, then a renewal (found in review)', function () {
  this.timeout(60_000);
  it("the daemon's renewal is dropped (STATE_CHANGED): it does not bring the old connector back nor delete the new key", async () => {
    const cloud = await startInprocCloud();
    const { daemon, id, dir } = await startInprocConnector(cloud);
    try {
      // What `uemlink connector pair --force` does, as another process: its own store. Into another
      // tenant, so that the cloud does not revoke the old identity (it retires only within the
      // token's tenant) and the old session stays open, as with a cloud that cannot retire it.
      const cfg = loadConnectorConfig(join(dir, 'connector.json'));
      const token = await cloud.pairing.createToken({ tenant: 'globex', group: 'default' });
      const repaired = await pairConnector(cfg, new ConnectorStateStore(cfg.stateDir), token.token, { force: true });
      expect(repaired.connectorId).to.not.equal(id.connectorId);
      expect(repaired.replaced).to.deep.include({ connectorId: id.connectorId, revoked: false });
      const keysBefore = readdirSync(cfg.stateDir).filter((f) => f.endsWith('.key')).sort();
      // The daemon's session (old identity) is still open; a renewal completes over it.
      const err = await daemon.renewer.renew('test: cloud asked').then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
      expect(err?.code).to.equal('STATE_CHANGED');
      const stored = await new ConnectorStateStore(cfg.stateDir).store.read();
      expect(stored.identity?.connectorId).to.equal(repaired.connectorId);
      expect(existsSync(join(cfg.stateDir, `${repaired.connectorId}.key`))).to.equal(true);
      expect(readdirSync(cfg.stateDir).filter((f) => f.endsWith('.key')).sort(), 'the dropped renewal left no key behind').to.deep.equal(keysBefore);
    } finally {
      await daemon.shutdown();
      await cloud.shutdown();
    }
  });
});
