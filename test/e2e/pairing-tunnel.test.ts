/**
 * Issue 2 end to end, with real processes on loopback: cloud run, tokens over the API and the CLI,
 * connector pair/run, single use, expiry, revocation within 1 s, recovery after kill -9 of the cloud,
 * drain on SIGTERM, and no secret in any log.
 */
import { expect } from 'chai';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mintPairingToken } from '../../src/common/pairing-token.js';
import { openCloudStore } from '../../src/cloud/state.js';
import { ADMIN_TOKEN, cli, connectorEntry, makeConnector, sleep, startCloud, until, type Cloud, type Connector } from '../helpers/procs.js';

describe('e2e: pairing and the tunnel (real processes)', function () {
  this.timeout(60_000);
  let cloud: Cloud;
  const connectors: Connector[] = [];

  before(async () => {
    cloud = await startCloud({ extra: { pairing: { maxFailuresPerMinute: 50 }, tunnel: { heartbeatSeconds: 2 } } });
  });
  after(async () => {
    for (const c of connectors) await c.proc?.stop();
    await cloud.proc.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    const last = connectors[connectors.length - 1];
    process.stderr.write(`--- cloud log ---\n${cloud.proc.raw.slice(-4000)}\n--- last connector log ---\n${last?.proc?.raw.slice(-4000) ?? ''}${last?.proc?.stderr ?? ''}\n`);
  });

  async function pairedConnector(token: string): Promise<{ c: Connector; id: string }> {
    const c = await makeConnector();
    connectors.push(c);
    const r = await c.pair(token);
    expect(r.code, r.stderr).to.equal(0);
    const id = r.stdout.trim();
    expect(id).to.match(/^cn_[0-9a-f]{20}$/);
    return { c, id };
  }

  it('pairs with a token from the CLI, keeps the key private, and connects', async () => {
    const t = await cli(['cloud', 'token', 'create', '--config', cloud.configFile, '--tenant', 'acme', '--group', 'site-a', '--ttl', '600']);
    expect(t.code, t.stderr).to.equal(0);
    const token = t.stdout.trim();
    expect(token.split('\n')).to.have.length(1);
    expect(token).to.match(/^ulpt1\./);

    const { c, id } = await pairedConnector(token);
    const stateDir = join(c.dir, 'state');
    expect(statSync(stateDir).mode & 0o777).to.equal(0o700);
    expect(statSync(join(stateDir, `${id}.key`)).mode & 0o777).to.equal(0o600);
    expect(statSync(join(stateDir, 'state.json')).mode & 0o777).to.equal(0o600);
    const state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8'));
    expect(state.identity).to.include({ connectorId: id, tenant: 'acme', group: 'site-a', cloudUrl: cloud.url });
    expect(JSON.stringify(state)).to.not.contain('PRIVATE KEY');

    await c.start();
    const entry = await until(async () => {
      const e = await connectorEntry(cloud, id);
      return e?.connected ? e : undefined;
    }, 10_000, 'connected: true');
    expect(entry).to.include({ tenant: 'acme', group: 'site-a', connected: true });
    expect(entry.connectedAt).to.be.a('string');
    expect(entry.lastSeen).to.be.a('string');
    expect(entry.version).to.match(/^\d+\.\d+\.\d+/); // the same form as at pairing, not the HELLO software string

    // The cloud's store holds the token's hash only.
    const cloudState = readFileSync(join(cloud.dir, 'data', 'cloud-state.json'), 'utf8');
    expect(cloudState).to.not.contain(token.split('.')[3]);
  });

  it('pairs with a token from the API; a second use of the token fails with token_used', async () => {
    const r = await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' });
    expect(r.status).to.equal(201);
    expect(r.body.token).to.match(/^ulpt1\./);
    expect(Date.parse(r.body.expiresAt) - Date.now()).to.be.within(3500_000, 3700_000);
    await pairedConnector(r.body.token);

    const again = await makeConnector();
    const second = await again.pair(r.body.token);
    expect(second.code).to.equal(1);
    expect(second.stderr).to.match(/token_used/).and.match(/already used/);
  });

  it('refuses an expired, an unknown and a malformed token, each with its own error', async () => {
    const minted = mintPairingToken(cloud.url);
    const store = openCloudStore(join(cloud.dir, 'data'));
    await store.update((s) => {
      s.pairingTokens.push({
        id: minted.id,
        hash: minted.hash,
        tenant: 'acme',
        group: 'default',
        createdAt: new Date(Date.now() - 7200_000).toISOString(),
        expiresAt: new Date(Date.now() - 3600_000).toISOString(),
      });
    });
    const c = await makeConnector();
    const expired = await c.pair(minted.token);
    expect(expired.code).to.equal(1);
    expect(expired.stderr).to.match(/token_expired/);

    const unknown = await c.pair(mintPairingToken(cloud.url).token);
    expect(unknown.stderr).to.match(/token_unknown/);

    const malformed = await c.pair('ulpt1.garbage');
    expect(malformed.code).to.equal(1);
    expect(malformed.stderr).to.match(/malformed pairing token/);

    // A refused pairing stored nothing.
    expect(() => statSync(join(c.dir, 'state', 'state.json'))).to.throw();
  });

  it('refuses to pair an already-paired connector unless --force', async () => {
    const t1 = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const { c, id } = await pairedConnector(t1);
    const t2 = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const refused = await c.pair(t2);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.contain(`already paired as ${id}`).and.contain('--force');
    const forced = await c.pair(t2, ['--force']);
    expect(forced.code, forced.stderr).to.equal(0);
    expect(forced.stdout.trim()).to.not.equal(id);
    // The identity it replaced is retired at once, not left "offline" with a valid certificate.
    expect(forced.stderr).to.contain(`the previous identity ${id} is revoked in the cloud`);
    expect(await connectorEntry(cloud, id)).to.include({ revoked: true, replacedBy: forced.stdout.trim() });
  });

  it('a running connector paired again with --force: its old session ends, the daemon takes up the new identity, the old one is revoked', async () => {
    const t1 = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const { c, id } = await pairedConnector(t1);
    await c.start();
    await until(async () => (await connectorEntry(cloud, id))?.connected, 10_000, 'connected');
    const t2 = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme', group: 'branch' })).body.token as string;
    const forced = await c.pair(t2, ['--force']);
    expect(forced.code, forced.stderr).to.equal(0);
    const newId = forced.stdout.trim();
    await until(async () => (await connectorEntry(cloud, newId))?.connected, 20_000, 'the running daemon connected with its new identity');
    expect(await connectorEntry(cloud, id)).to.include({ connected: false, revoked: true, replacedBy: newId });
    expect(cloud.proc.hasLog((l) => l.message === 'connector revoked' && l.connectorId === id && l.via === 'pairing again')).to.equal(true);
    await c.proc.stop();
  });

  it('revocation closes the session within 1 s and refuses the connector from then on', async () => {
    const t = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const { c, id } = await pairedConnector(t);
    await c.start();
    await until(async () => (await connectorEntry(cloud, id))?.connected, 10_000, 'connected');

    const t0 = Date.now();
    const del = await cloud.api('DELETE', `/api/v1/connectors/${id}`);
    expect(del.status).to.equal(204);
    await c.proc.waitLog((l) => l.code === 'TUNNEL_REVOKED', 1000, 'the connector seeing the revocation');
    expect(Date.now() - t0).to.be.below(1000);
    const e = await connectorEntry(cloud, id);
    expect(e).to.include({ connected: false, revoked: true });

    // Restarted, it is refused at once and does not hammer the cloud.
    await c.proc.stop();
    await c.start();
    await c.proc.waitLog((l) => l.code === 'TUNNEL_REVOKED', 10_000, 'refusal on reconnect');
    await sleep(1500);
    expect((await connectorEntry(cloud, id)).connected).to.equal(false);
    expect(c.proc.logs.filter((l) => l.message === 'tunnel connection failed')).to.have.length(0);
    expect(cloud.proc.hasLog((l) => l.message === 'tunnel refused' && l.code === 'REVOKED')).to.equal(true);
  });

  it('a revoked connector paired again from the CLI (--force) while it runs takes up the new identity without a restart', async () => {
    const t1 = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const { c, id } = await pairedConnector(t1);
    await c.start();
    await until(async () => (await connectorEntry(cloud, id))?.connected, 10_000, 'connected');
    expect((await cloud.api('DELETE', `/api/v1/connectors/${id}`)).status).to.equal(204);
    await c.proc.waitLog((l) => l.code === 'TUNNEL_REVOKED', 5000, 'the revocation');
    // The runbook's answer to TUNNEL_REVOKED: a new token, pair again.
    const t2 = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const forced = await c.pair(t2, ['--force']);
    expect(forced.code, forced.stderr).to.equal(0);
    const newId = forced.stdout.trim().split(/\s+/).find((w) => w.startsWith('cn_'));
    expect(newId, forced.stdout).to.be.a('string').and.not.equal(id);
    // Before: the daemon went on with the revoked identity until it was restarted.
    await until(async () => (await connectorEntry(cloud, newId!))?.connected, 20_000, 'the running daemon connected with its new identity');
    await c.proc.stop();
  });

  it('comes back within 10 s after the cloud is killed -9 and restarted after a short outage', async () => {
    const t = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const { c, id } = await pairedConnector(t);
    await c.start();
    await until(async () => (await connectorEntry(cloud, id))?.connected, 10_000, 'connected');

    cloud.proc.kill('SIGKILL');
    await cloud.proc.wait();
    await sleep(4000); // the outage: the connector keeps failing and backing off
    await cloud.restart();
    const back = Date.now();
    await until(async () => (await connectorEntry(cloud, id))?.connected, 10_000, 'reconnected after the outage');
    const took = Date.now() - back;
    expect(took).to.be.below(10_000);
    await until(() => c.proc.logs.filter((l) => l.message === 'tunnel connected').length >= 2, 2000, 'the connector logging its second session');
  });

  it('SIGTERM on the cloud drains with going-away; the connector reconnects to the next instance', async () => {
    const t = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const { c, id } = await pairedConnector(t);
    await c.start();
    await until(async () => (await connectorEntry(cloud, id))?.connected, 10_000, 'connected');
    const before = c.proc.logs.length;
    cloud.proc.kill('SIGTERM');
    expect(await cloud.proc.wait(10_000)).to.equal(0);
    await c.proc.waitLog((l) => l.message === 'tunnel lost' && l.code === 'TUNNEL_GOING_AWAY', 5000, 'going-away seen by the connector');
    await cloud.restart();
    await until(async () => (await connectorEntry(cloud, id))?.connected, 10_000, 'reconnected to the new instance');
    await until(() => c.proc.logs.slice(before).some((l) => l.message === 'tunnel connected'), 2000, 'the connector logging the new session');
  });

  it('SIGTERM on the connector exits 0 after draining, and the cloud sees it leave', async () => {
    const t = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const { c, id } = await pairedConnector(t);
    await c.start();
    await until(async () => (await connectorEntry(cloud, id))?.connected, 10_000, 'connected');
    c.proc.kill('SIGTERM');
    expect(await c.proc.wait(10_000)).to.equal(0);
    await until(async () => (await connectorEntry(cloud, id))?.connected === false, 3000, 'disconnected');
  });

  it('rate-limits repeated pairing failures from one address', async () => {
    const limited = await startCloud({ extra: { pairing: { maxFailuresPerMinute: 3 } } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${limited.url}/api/v1/pair`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: mintPairingToken(limited.url).token, csr: 'x' }),
        });
        statuses.push(res.status);
        if (res.status === 429) expect(Number(res.headers.get('retry-after'))).to.be.within(1, 60);
      }
      expect(statuses).to.deep.equal([401, 401, 401, 429, 429]);
    } finally {
      await limited.proc.stop();
    }
  });

  it('answers the admin API only with the admin token, with JSON errors', async () => {
    const none = await fetch(`${cloud.url}/api/v1/connectors`);
    expect(none.status).to.equal(401);
    expect(await none.json()).to.include({ error: 'unauthorized' });
    const wrong = await cloud.api('GET', '/api/v1/connectors', undefined, 'not-the-admin-token');
    expect(wrong.status).to.equal(401);
    const bad = await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'Not A Tenant!' });
    expect(bad.status).to.equal(400);
    expect(bad.body.error).to.equal('bad_request');
    expect(bad.body.message).to.match(/^tenant:/);
    const ttl = await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme', ttlSeconds: 8 * 24 * 3600 });
    expect(ttl.status).to.equal(400);
    expect(ttl.body.message).to.match(/ttlSeconds/);
    const unknown = await cloud.api('DELETE', '/api/v1/connectors/cn_00000000000000000000');
    expect(unknown.status).to.equal(404);
    expect(unknown.body.error).to.equal('unknown_connector');
    // Not an id: no record, whatever the store's map inherits ("constructor" used to answer 200).
    for (const path of ['/api/v1/connectors/constructor', '/api/v1/connectors/__proto__', '/api/v1/connectors/cn_00000000000000000000']) {
      const r = await cloud.api('GET', path);
      expect(r.status, path).to.equal(404);
      expect(r.body.error, path).to.equal('unknown_connector');
    }
  });

  it('never writes a secret to the logs of either side', () => {
    const everything = cloud.proc.raw + cloud.proc.stderr + connectors.map((c) => (c.proc?.raw ?? '') + (c.proc?.stderr ?? '')).join('');
    expect(everything.length).to.be.greaterThan(1000);
    expect(everything).to.not.contain(ADMIN_TOKEN);
    expect(everything).to.not.match(/ulpt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{12}\.[A-Za-z0-9_-]{43}/);
    expect(everything).to.not.contain('PRIVATE KEY');
  });
});

describe('e2e: CLI basics and bad input', function () {
  this.timeout(30_000);

  it('--help and --version work', async () => {
    const h = await cli(['--help']);
    expect(h.code).to.equal(0);
    expect(h.stdout).to.contain('connector').and.contain('cloud');
    const v = await cli(['--version']);
    expect(v.code).to.equal(0);
    expect(v.stdout.trim()).to.match(/^\d+\.\d+\.\d+/);
  });

  it('demo: a port or device count that is not a whole number is refused naming the flag, exit 2', async () => {
    const p = await cli(['demo', '--page-port', 'abc']);
    expect(p.code).to.equal(2);
    expect(p.stderr).to.contain('--page-port: must be a whole number from 0 to 65535, not "abc"');
    const d = await cli(['demo', '--devices', '-3']);
    expect(d.code).to.equal(2);
    expect(d.stderr).to.contain('--devices: must be a whole number');
  });

  it('a config error names the file and the key, and exits 78', async () => {
    const c = await makeConnector({ config: { targets: [{ id: 'ws1', baseUrl: 'http://uem.corp.local' }] } });
    const r = await cli(['connector', 'run', '--config', c.configFile]);
    expect(r.code).to.equal(78);
    expect(r.stderr).to.contain('connector.json: targets[0].baseUrl: must be an https URL');
    const typo = await makeConnector({ config: { stateDri: './x' } });
    const r2 = await cli(['connector', 'run', '--config', typo.configFile]);
    expect(r2.stderr).to.contain('unknown key "stateDri"');
  });

  it('a corrupt state file stops the connector with its path and is left untouched', async () => {
    const c = await makeConnector();
    const stateFile = join(c.dir, 'state', 'state.json');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(c.dir, 'state'), { mode: 0o700 });
    writeFileSync(stateFile, '{"version": 1, "identity": {"connectorId": "cn_', { mode: 0o600 });
    const r = await cli(['connector', 'run', '--config', c.configFile]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(stateFile).and.contain('corrupt');
    expect(readFileSync(stateFile, 'utf8')).to.equal('{"version": 1, "identity": {"connectorId": "cn_');
  });

  it('the admin token may come from UEMLINK_ADMIN_TOKEN', async () => {
    const cloud = await startCloud({ extra: { adminToken: undefined }, env: { UEMLINK_ADMIN_TOKEN: ADMIN_TOKEN } });
    try {
      const r = await cloud.api('GET', '/api/v1/connectors');
      expect(r.status).to.equal(200);
    } finally {
      await cloud.proc.stop();
    }
  });
});
