/**
 * The cloud's access log of relay API calls (relay.accessLog): one JSON line per call with who called
 * and from where, which connector relayed it and the request id the client was given; query values
 * and secrets left out; refused calls too; reopened on SIGHUP; absent unless configured.
 */
import { expect } from 'chai';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createApiKey } from '../../src/cloud/api-keys.js';
import { loadCloudConfig } from '../../src/cloud/config.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { systemClock } from '../../src/common/clock.js';
import type { Connected } from '../../src/connector/tunnel-client.js';
import { connectAs, pairInproc, startInprocCloud, type TestIdentity } from '../helpers/inproc.js';
import { jsonLinesOf } from '../helpers/logs.js';
import { ADMIN_TOKEN, tempDir, until } from '../helpers/procs.js';

describe('cloud: the relay access log (relay.accessLog)', function () {
  this.timeout(20_000);
  let cloud: CloudServer;
  let id: TestIdentity;
  let c: Connected;
  let file: string;

  before(async () => {
    file = join(tempDir('uemlink-access-'), 'logs', 'relay-access.log');
    cloud = await startInprocCloud({ accessLog: { file } });
    id = await pairInproc(cloud);
    c = await connectAs(cloud, id); // offers target t1
    c.session.on('stream', (s) => {
      s.on('error', () => {});
      s.resume();
      s.respond({ status: 200, headers: [['content-type', 'application/json']] });
      s.end(Buffer.from('{"ok":true}'));
    });
    await until(() => cloud.registry.get(id.connectorId) !== undefined, 3000, 'connected');
  });
  after(async () => {
    c.session.close();
    await cloud.shutdown();
  });

  const relay = (path: string, auth?: string): Promise<Response> => fetch(`http://127.0.0.1:${cloud.port}/api/v1/relay/${path}`, auth ? { headers: { authorization: `Bearer ${auth}` } } : {});

  it('writes one line per call: who, from where, what, the answer, the connector and the request id; query values, keys and refused callers included as they should be', async () => {
    const { key, id: keyId } = await createApiKey(cloud.store, 'acme', 'access-log', systemClock);
    const ok = await relay('acme/t1/mdm/devices?serial=S3CR3T-SERIAL&page=2', ADMIN_TOKEN);
    expect(ok.status).to.equal(200);
    await ok.text();
    const byKey = await relay('acme/t1/mdm/apps', key);
    expect(byKey.status).to.equal(200);
    await byKey.text();
    const anonymous = await relay('acme/t1/mdm/devices');
    expect(anonymous.status).to.equal(401);
    const otherTenant = await relay('globex/t1/mdm/devices', key);
    expect(otherTenant.status).to.equal(403);
    await until(() => jsonLinesOf(file).length >= 4, 3000, 'four lines written');
    const [a, b, anon, other] = jsonLinesOf(file);
    expect(a).to.include({ level: 'info', message: 'relay', tenant: 'acme', target: 't1', method: 'GET', path: '/mdm/devices?serial=…&page=…', status: 200, connectorId: id.connectorId, principal: 'admin', client: '127.0.0.1' });
    expect(a!.requestId).to.equal(ok.headers.get('x-uemlink-request-id'));
    expect(a!.bytesOut as number).to.be.greaterThan(11);
    expect(typeof a!.durationMs).to.equal('number');
    expect(Date.parse(a!.time as string)).to.be.closeTo(Date.now(), 10_000);
    expect(b).to.include({ path: '/mdm/apps', status: 200, principal: `key:${keyId}` });
    expect(anon).to.include({ tenant: 'acme', status: 401, error: anonymous.headers.get('x-uemlink-error') });
    expect(anon).to.not.have.property('principal');
    expect(anon).to.not.have.property('connectorId');
    expect(other).to.include({ tenant: 'globex', status: 403, principal: `key:${keyId}` });
    const text = readFileSync(file, 'utf8');
    expect(text).to.not.contain('S3CR3T-SERIAL').and.not.contain(key).and.not.contain(ADMIN_TOKEN);
    expect(statSync(file).mode & 0o777, 'the file mode').to.equal(0o600);
  });

  it('is reopened under its name on SIGHUP (reopenFiles), after logrotate moved it away', async () => {
    await until(() => jsonLinesOf(file).length >= 1, 3000, 'lines written before');
    renameSync(file, `${file}.1`);
    cloud.reopenFiles();
    const r = await relay('acme/t1/after-rotation', ADMIN_TOKEN);
    await r.text();
    await until(() => jsonLinesOf(file).length === 1, 3000, 'the line in a new file under the old name');
    expect(jsonLinesOf(file)[0]).to.include({ path: '/after-rotation', status: 200 });
    expect(jsonLinesOf(`${file}.1`).some((l) => l.path === '/after-rotation'), 'nothing written to the moved file').to.equal(false);
  });

  it('is off unless configured; relay.accessLog {} writes relay-access.log in the data directory', async () => {
    const plain = await startInprocCloud();
    try {
      const r = await fetch(`http://127.0.0.1:${plain.port}/api/v1/relay/acme/t1/x`);
      expect(r.status).to.equal(401);
      await new Promise((res) => setTimeout(res, 200));
      expect(existsSync(join(plain.config.dataDir, 'relay-access.log'))).to.equal(false);
    } finally {
      await plain.shutdown();
    }
    const dir = tempDir('uemlink-access-cfg-');
    const cfgFile = join(dir, 'cloud.json');
    const base = { listen: '127.0.0.1:9443', publicUrl: 'https://relay.example.com', dataDir: './d', adminToken: 'a-long-enough-admin-token' };
    writeFileSync(cfgFile, JSON.stringify({ ...base, relay: { accessLog: {} } }));
    expect(loadCloudConfig(cfgFile).relay.accessLog).to.deep.equal({ file: join(dir, 'd', 'relay-access.log'), maxBytes: 100 * 1024 * 1024, maxFiles: 5 });
    writeFileSync(cfgFile, JSON.stringify({ ...base, relay: { accessLog: { fiel: 'x' } } }));
    expect(() => loadCloudConfig(cfgFile)).to.throw(/relay\.accessLog: unknown key "fiel" \(did you mean "file"\?\)/);
  });
});
