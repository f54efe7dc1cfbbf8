/**
 * The cloud's HTTP API contract as admins' scripts use it (docs/api.md, docs/errors.md): what a
 * contract review confirmed, kept as regression tests.
 */
import { expect } from 'chai';
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { CloudServer } from '../../src/cloud/server.js';
import { toApiError } from '../../src/cloud/http-errors.js';
import { ApiProblem } from '../../src/cloud/integrations/problem.js';
import { startInprocCloud, startInprocConnector, pairInproc } from '../helpers/inproc.js';
import { ADMIN_TOKEN, tempDir } from '../helpers/procs.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';

type Json = any;
interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: Json;
}

describe('cloud HTTP API: the contract as scripts use it (found in review)', function () {
  this.timeout(30_000);
  let cloud: CloudServer;

  /** Raw HTTP (the path is sent exactly as given, never normalised). */
  function raw(method: string, path: string, opts: { auth?: string | null; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Res> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      const auth = opts.auth === undefined ? ADMIN_TOKEN : opts.auth;
      if (auth !== null) headers.authorization = `Bearer ${auth}`;
      if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
      const req = httpRequest({ host: '127.0.0.1', port: cloud.port, method, path, headers, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: Json = null;
          try {
            body = text ? JSON.parse(text) : null;
          } catch {
            body = text;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${path}`)));
      req.on('error', reject);
      if (opts.body !== undefined) req.write(opts.body);
      req.end();
    });
  }
  const json = (method: string, path: string, body: unknown, auth?: string | null): Promise<Res> =>
    raw(method, path, { ...(auth === undefined ? {} : { auth }), headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  const expectJsonError = (r: Res, status: number, code?: string): void => {
    expect(r.status, r.text).to.equal(status);
    expect(r.body, r.text).to.be.an('object');
    expect(r.body.error, r.text).to.be.a('string');
    if (code) expect(r.body.error, r.text).to.equal(code);
    expect(r.body.message, r.text).to.be.a('string');
  };

  async function tenantKey(tenant: string): Promise<{ id: string; key: string }> {
    const r = await json('POST', `/api/v1/tenants/${tenant}/api-keys`, { label: 'review' });
    expect(r.status, r.text).to.equal(201);
    return r.body;
  }

  before(async () => {
    cloud = await startInprocCloud();
  });
  after(async () => {
    await cloud.shutdown();
  });

  describe('odd path encodings never give 500', () => {
    // The router decodes path parameters while matching, before any handler: a malformed
    // escape is 400 bad_path for everyone (it reveals nothing about what exists).
    for (const [m, p] of [
      ['GET', '/api/v1/connectors/%E0%A4%A'],
      ['GET', '/api/v1/tenants/acme/integrations/%ZZ'],
      ['GET', '/api/v1/tenants/%ZZ/managed-targets'],
      ['PUT', '/api/v1/tenants/acme/managed-targets/%ZZ'],
    ] as const) {
      it(`${m} ${p} answers 400 bad_path, with or without credentials`, async () => {
        expectJsonError(await raw(m, p), 400, 'bad_path');
        expectJsonError(await raw(m, p, { auth: null }), 400, 'bad_path');
      });
    }
  });

  describe('bodies that are not what body-parser expects never give 500', () => {
    it('a JSON body with an unsupported charset answers 4xx, not 500', async () => {
      const r = await raw('POST', '/api/v1/pairing-tokens', { headers: { 'content-type': 'application/json; charset=latin1' }, body: JSON.stringify({ tenant: 'acme' }) });
      expect(r.status, r.text).to.be.within(400, 499);
    });
    it('a JSON body with an unknown Content-Encoding answers 4xx, not 500', async () => {
      const r = await raw('POST', '/api/v1/pairing-tokens', { headers: { 'content-type': 'application/json', 'content-encoding': 'x-foo' }, body: JSON.stringify({ tenant: 'acme' }) });
      expect(r.status, r.text).to.be.within(400, 499);
    });
    it('a corrupt gzip body answers 4xx, not 500', async () => {
      const gz = gzipSync(Buffer.from(JSON.stringify({ tenant: 'acme' })));
      const r = await raw('POST', '/api/v1/pairing-tokens', { headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gz.subarray(0, gz.length - 6) });
      expect(r.status, r.text).to.be.within(400, 499);
    });
  });

  describe('admin API', () => {
    it('GET /api/v1/connectors?tenant=a&tenant=b is a bad tenant (400), not "all tenants"', async () => {
      const r = await raw('GET', '/api/v1/connectors?tenant=acme&tenant=other');
      expectJsonError(r, 400, 'bad_request');
    });
    it('POST pairing-tokens: wrong types name the field', async () => {
      for (const [body, field] of [
        [{ tenant: 'acme', ttlSeconds: '3600' }, 'ttlSeconds'],
        [{ tenant: 'acme', ttlSeconds: 59 }, 'ttlSeconds'],
        [{ tenant: 'acme', ttlSeconds: 60.5 }, 'ttlSeconds'],
        [{ tenant: 'acme', group: '' }, 'group'],
        [{ tenant: 'Acme' }, 'tenant'],
        [{ tenant: 'a'.repeat(64) }, 'tenant'],
      ] as const) {
        const r = await json('POST', '/api/v1/pairing-tokens', body);
        expectJsonError(r, 400, 'bad_request');
        expect(r.body.message).to.contain(field);
      }
    });
  });

  describe('tenant API', () => {
    it('POST api-keys with a label that is not a string answers 400 naming label', async () => {
      const r = await json('POST', '/api/v1/tenants/acme/api-keys', { label: 42 });
      expectJsonError(r, 400, 'bad_request');
      expect(r.body.message).to.contain('label');
    });
  });

  describe('authorization', () => {
    it('a tenant key is refused (401 invalid_token) on admin-only routes', async () => {
      const k = await tenantKey('acme');
      for (const [m, p] of [['POST', '/api/v1/tenants/acme/api-keys'], ['GET', '/api/v1/connectors'], ['POST', '/api/v1/pairing-tokens'], ['DELETE', `/api/v1/tenants/acme/api-keys/${k.id}`]] as const) {
        const r = await raw(m, p, { auth: k.key, headers: { 'content-type': 'application/json' }, body: '{"tenant":"acme"}' });
        expectJsonError(r, 401, 'unauthorized');
        expect(r.headers['www-authenticate']).to.contain('invalid_token');
      }
    });
    it('a tenant key cannot reach another tenant (403) and a revoked key stops at once (401)', async () => {
      const k = await tenantKey('beta');
      for (const [m, p] of [['GET', '/api/v1/tenants/acme/managed-targets'], ['DELETE', '/api/v1/tenants/acme/managed-targets/x'], ['GET', '/api/v1/tenants/acme/integrations'], ['GET', '/api/v1/tenants/acme/devices'], ['GET', '/api/v1/tenants/acme/app-policies']] as const) {
        expectJsonError(await raw(m, p, { auth: k.key }), 403, 'forbidden');
      }
      expect((await raw('GET', '/api/v1/tenants/beta/managed-targets', { auth: k.key })).status).to.equal(200);
      expect((await raw('DELETE', `/api/v1/tenants/beta/api-keys/${k.id}`)).status).to.equal(204);
      expect((await raw('DELETE', `/api/v1/tenants/beta/api-keys/${k.id}`)).status).to.equal(204);
      const r = await raw('GET', '/api/v1/tenants/beta/managed-targets', { auth: k.key });
      expectJsonError(r, 401, 'unauthorized');
      expect(r.headers['www-authenticate']).to.contain('invalid_token');
      expectJsonError(await raw('DELETE', `/api/v1/tenants/acme/api-keys/${k.id}`), 404, 'not_found');
    });
  });

  describe('connectors', () => {
    it('ConnectorView fields; DELETE is idempotent; unknown ids are 404 unknown_connector', async () => {
      const id = await pairInproc(cloud, 'gamma', 'site-a');
      const r = await raw('GET', `/api/v1/connectors/${id.connectorId}`);
      expect(r.status, r.text).to.equal(200);
      const v = r.body;
      expect(Object.keys(v).sort()).to.deep.equal(['certificate', 'connected', 'connectedAt', 'group', 'hostname', 'id', 'lastSeen', 'pairedAt', 'replacedBy', 'revoked', 'revokedAt', 'session', 'targets', 'tenant', 'version'].sort());
      expect(v.connected).to.equal(false);
      expect(v.session).to.equal(null);
      expect(v.revokedAt).to.equal(null);
      expect(new Date(v.pairedAt).toISOString()).to.equal(v.pairedAt);
      expect(new Date(v.certificate.notAfter).toISOString()).to.equal(v.certificate.notAfter);
      expect((await raw('DELETE', `/api/v1/connectors/${id.connectorId}`)).status).to.equal(204);
      expect((await raw('DELETE', `/api/v1/connectors/${id.connectorId}`)).status).to.equal(204);
      const after = (await raw('GET', `/api/v1/connectors?tenant=gamma`)).body.connectors[0];
      expect(after.revoked).to.equal(true);
      expect(new Date(after.revokedAt).toISOString()).to.equal(after.revokedAt);
      expectJsonError(await raw('DELETE', '/api/v1/connectors/cn_00000000000000000000'), 404, 'unknown_connector');
      expectJsonError(await raw('GET', '/api/v1/connectors/constructor'), 404, 'unknown_connector');
    });
  });

  describe('limits', () => {
    it('413 too_large at 64 KiB (admin), 256 KiB (tenant), 1 MiB (integrations); not below', async () => {
      const big = (n: number): string => JSON.stringify({ tenant: 'acme', pad: 'x'.repeat(n) });
      expectJsonError(await raw('POST', '/api/v1/pairing-tokens', { headers: { 'content-type': 'application/json' }, body: big(70 * 1024) }), 413, 'too_large');
      expectJsonError(await raw('PUT', '/api/v1/tenants/acme/managed-targets/t1', { headers: { 'content-type': 'application/json' }, body: big(270 * 1024) }), 413, 'too_large');
      expectJsonError(await raw('POST', '/api/v1/tenants/acme/integrations', { headers: { 'content-type': 'application/json' }, body: big(1100 * 1024) }), 413, 'too_large');
      const r = await raw('POST', '/api/v1/tenants/acme/integrations', { headers: { 'content-type': 'application/json' }, body: big(300 * 1024) });
      expectJsonError(r, 400, 'bad_request');
    });
  });

  describe('managed targets', () => {
    it('validation names the field; unknown fields and *File keys are refused; nothing is stored', async () => {
      const ok = { baseUrl: 'https://uem.example.com', auth: { type: 'none' } };
      let r = await json('PUT', '/api/v1/tenants/delta/managed-targets/t1', { ...ok, colour: 'red' });
      expectJsonError(r, 400, 'bad_request');
      r = await json('PUT', '/api/v1/tenants/delta/managed-targets/t1', { ...ok, auth: { type: 'basic', username: 'u', passwordFile: '/etc/shadow' } });
      expectJsonError(r, 400, 'bad_request');
      expect(r.body.message).to.contain('auth.passwordFile');
      r = await json('PUT', '/api/v1/tenants/delta/managed-targets/t1', { ...ok, group: 42 });
      expectJsonError(r, 400, 'bad_request');
      r = await json('PUT', '/api/v1/tenants/delta/managed-targets/t1', [ok]);
      expectJsonError(r, 400, 'bad_request');
      r = await json('PUT', `/api/v1/tenants/delta/managed-targets/${'a'.repeat(65)}`, ok);
      expectJsonError(r, 400, 'bad_request');
      expect((await raw('GET', '/api/v1/tenants/delta/managed-targets')).body).to.deep.equal({ managedTargets: [] });
      r = await json('PUT', '/api/v1/tenants/delta/managed-targets/t1', ok);
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.include({ id: 't1', group: 'default', baseUrl: 'https://uem.example.com' });
      expect(new Date(r.body.updatedAt).toISOString()).to.equal(r.body.updatedAt);
      expect((await raw('DELETE', '/api/v1/tenants/delta/managed-targets/t1')).status).to.equal(204);
      expectJsonError(await raw('DELETE', '/api/v1/tenants/delta/managed-targets/t1'), 404, 'not_found');
    });
    it('concurrent PUT/DELETE leave a consistent list', async () => {
      const ok = { baseUrl: 'https://uem.example.com', auth: { type: 'none' } };
      await Promise.all(Array.from({ length: 20 }, (_, i) => json('PUT', `/api/v1/tenants/eps/managed-targets/t${i % 5}`, { ...ok, group: `g${i}` })));
      const l = (await raw('GET', '/api/v1/tenants/eps/managed-targets')).body.managedTargets as Json[];
      expect(l.map((t) => t.id).sort()).to.deep.equal(['t0', 't1', 't2', 't3', 't4']);
      const d = await Promise.all(Array.from({ length: 6 }, () => raw('DELETE', '/api/v1/tenants/eps/managed-targets/t0')));
      expect(d.map((x) => x.status).sort()).to.deep.equal([204, 404, 404, 404, 404, 404]);
    });
  });

  describe('integrations', () => {
    let sim: RunningSimulator<WorkspaceOneState>;
    before(async () => {
      sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('review-api-sim-'), devices: 30, seed: 3 });
    });
    after(async () => {
      await sim.close();
    });
    const direct = () => ({
      vendor: 'workspace-one',
      serverAddress: sim.url,
      auth: { type: 'basic', username: sim.credentials.username, password: sim.credentials.password, apiKey: sim.credentials.apiKey },
      selfSignedCertPem: sim.caPem,
      route: { via: 'direct' },
    });
    const pushed = { vendor: 'workspace-one', serverAddress: 'https://uem.example.com', auth: { type: 'basic', username: 'u', password: 'p', apiKey: 'k' }, route: { via: 'connector', group: 'site-x', push: true } };

    it('a create refused with 502 uem_unreachable leaves no pushed target behind', async () => {
      const r = await json('POST', '/api/v1/tenants/zeta/integrations', { ...pushed, displayName: 'push', sync: { groups: ['571'] } });
      expectJsonError(r, 502, 'uem_unreachable');
      expect((await raw('GET', '/api/v1/tenants/zeta/integrations')).body.integrations).to.deep.equal([]);
      expect((await raw('GET', '/api/v1/tenants/zeta/managed-targets')).body.managedTargets).to.deep.equal([]);
    });
    it('an update refused with 502 does not change the pushed target', async () => {
      const c = await json('POST', '/api/v1/tenants/eta/integrations', { ...pushed, displayName: 'push' });
      expect(c.status, c.text).to.equal(201);
      const before = (await raw('GET', '/api/v1/tenants/eta/managed-targets')).body.managedTargets;
      expect(before).to.have.length(1);
      const u = await json('PUT', `/api/v1/tenants/eta/integrations/${c.body.id}`, { serverAddress: 'https://other.example.com', sync: { groups: ['571'] } });
      expectJsonError(u, 502, 'uem_unreachable');
      expect((await raw('GET', `/api/v1/tenants/eta/integrations/${c.body.id}`)).body.serverAddress).to.equal('https://uem.example.com');
      const afterList = (await raw('GET', '/api/v1/tenants/eta/managed-targets')).body.managedTargets;
      expect(afterList.map((t: Json) => t.baseUrl)).to.deep.equal(before.map((t: Json) => t.baseUrl));
    });
    it('moving an integration off a pushed target (then deleting it) withdraws the pushed target', async () => {
      const c = await json('POST', '/api/v1/tenants/theta/integrations', { ...pushed, displayName: 'push' });
      expect(c.status, c.text).to.equal(201);
      expect((await raw('GET', '/api/v1/tenants/theta/managed-targets')).body.managedTargets).to.have.length(1);
      const u = await json('PUT', `/api/v1/tenants/theta/integrations/${c.body.id}`, { route: { via: 'connector', group: 'site-x', target: 'ws1' } });
      expect(u.status, u.text).to.equal(200);
      expect((await raw('DELETE', `/api/v1/tenants/theta/integrations/${c.body.id}`)).status).to.equal(204);
      expect((await raw('GET', '/api/v1/tenants/theta/managed-targets')).body.managedTargets).to.deep.equal([]);
    });
    it('concurrent creates selecting the same group: one 201, the other 409 group_conflict', async () => {
      const g = String(sim.state.data.groups[1]!.id);
      // One after the other, the rule holds:
      const first = await json('POST', '/api/v1/tenants/iota/integrations', { ...direct(), displayName: 'seq1', sync: { groups: [g] } });
      expect(first.status, first.text).to.equal(201);
      expectJsonError(await json('POST', '/api/v1/tenants/iota/integrations', { ...direct(), displayName: 'seq2', sync: { groups: [g] } }), 409, 'group_conflict');
      expect((await raw('DELETE', `/api/v1/tenants/iota/integrations/${first.body.id}`)).status).to.equal(204);
      // At the same time, it does not:
      const rs = await Promise.all([1, 2, 3].map((i) => json('POST', '/api/v1/tenants/iota/integrations', { ...direct(), displayName: `d${i}`, sync: { groups: [g] } })));
      const list = (await raw('GET', '/api/v1/tenants/iota/integrations')).body.integrations as Json[];
      for (const x of list) await raw('DELETE', `/api/v1/tenants/iota/integrations/${x.id}`);
      expect(rs.map((r) => r.status).sort(), rs.map((r) => `${r.status} ${r.body?.error ?? ''} ${r.body?.id ?? ''}`).join('; ')).to.deep.equal([201, 409, 409]);
    });
    it('integration ids of another tenant are 404 unknown_integration; ids with odd characters too', async () => {
      const c = await json('POST', '/api/v1/tenants/kappa/integrations', { ...direct(), displayName: 'k' });
      expect(c.status, c.text).to.equal(201);
      for (const [m, p] of [['GET', ''], ['GET', '/status'], ['POST', '/verify'], ['POST', '/sync'], ['POST', '/pause'], ['DELETE', '']] as const) {
        expectJsonError(await raw(m, `/api/v1/tenants/lambda/integrations/${c.body.id}${p}`), 404, 'unknown_integration');
      }
      expectJsonError(await raw('GET', '/api/v1/tenants/kappa/integrations/..%2F..%2Fx'), 404, 'unknown_integration');
      expect((await raw('DELETE', `/api/v1/tenants/kappa/integrations/${c.body.id}`)).status).to.equal(204);
      expectJsonError(await raw('DELETE', `/api/v1/tenants/kappa/integrations/${c.body.id}`), 404, 'unknown_integration');
    });
    it('If-Match: an edit or removal naming an old revision is 412 precondition_failed and changes nothing', async () => {
      const c = await json('POST', '/api/v1/tenants/mu/integrations', { ...direct(), displayName: 'rev' });
      expect(c.status, c.text).to.equal(201);
      const url = `/api/v1/tenants/mu/integrations/${c.body.id}`;
      const r0 = c.body.revision as string;
      expect(r0).to.match(/^[A-Za-z0-9_-]{22}$/);
      // The same revision read back (the record parsed from the state file) as the create answered.
      expect((await raw('GET', url)).body.revision).to.equal(r0);
      // A pause, a sync's status: not settings, the revision stays (edits during a sync still apply).
      expect((await raw('POST', `${url}/pause`)).body.revision).to.equal(r0);
      expect((await raw('POST', `${url}/resume`)).body.revision).to.equal(r0);
      const put = (body: unknown, ifMatch?: string) => raw('PUT', url, { headers: { 'content-type': 'application/json', ...(ifMatch === undefined ? {} : { 'if-match': ifMatch }) }, body: JSON.stringify(body) });
      const a = await put({ displayName: 'rev A' }, `"${r0}"`);
      expect(a.status, a.text).to.equal(200);
      const r1 = a.body.revision as string;
      expect(r1).to.not.equal(r0);
      // Someone still holding r0: refused, and the stored record is A's.
      const b = await put({ displayName: 'rev B' }, `"${r0}"`);
      expectJsonError(b, 412, 'precondition_failed');
      expect(b.body.message).to.contain(r1).and.contain(r0);
      expect((await raw('GET', url)).body.displayName).to.equal('rev A');
      // A weak tag never matches (strong comparison); a list naming the current one does; bare works; * works.
      expectJsonError(await put({ displayName: 'rev W' }, `W/"${r1}"`), 412, 'precondition_failed');
      expect((await put({ displayName: 'rev C' }, `"old", "${r1}"`)).status).to.equal(200);
      const r2 = (await raw('GET', url)).body.revision as string;
      expect((await put({ displayName: 'rev D' }, r2)).status).to.equal(200);
      expect((await put({ displayName: 'rev E' }, '*')).status).to.equal(200);
      for (const bad of ['', 'a b', '"x', '"a"b"', ',']) expectJsonError(await put({ displayName: 'bad' }, bad), 400, 'bad_if_match');
      expect((await raw('GET', url)).body.displayName).to.equal('rev E');
      // DELETE honours it too.
      expectJsonError(await raw('DELETE', url, { headers: { 'if-match': `"${r0}"` } }), 412, 'precondition_failed');
      const cur = (await raw('GET', url)).body.revision as string;
      expect((await raw('DELETE', url, { headers: { 'if-match': `"${cur}"` } })).status).to.equal(204);
    });
    it('two edits at once without If-Match: both changes are kept (the second applies to what the first saved)', async () => {
      const g = String(sim.state.data.groups[2]!.id);
      const c = await json('POST', '/api/v1/tenants/nu/integrations', { ...direct(), displayName: 'both', sync: { groups: [g] } });
      expect(c.status, c.text).to.equal(201);
      const url = `/api/v1/tenants/nu/integrations/${c.body.id}`;
      sim.state.faults = { latencyMs: 400 }; // each edit's group check is a slow UEM round trip
      const started = Date.now();
      try {
        const [a, b] = await Promise.all([json('PUT', url, { displayName: 'renamed' }), json('PUT', url, { sync: { deviceSyncIntervalMinutes: 120 } })]);
        expect([a.status, b.status], `${a.text} ${b.text}`).to.deep.equal([200, 200]);
      } finally {
        sim.state.faults = {};
      }
      expect(Date.now() - started, 'both edits asked the UEM for its groups').to.be.greaterThan(700);
      const now = (await raw('GET', url)).body;
      // Before: each merged onto what it had read, and the later write put the other's field back.
      expect(now.displayName).to.equal('renamed');
      expect(now.sync.deviceSyncIntervalMinutes).to.equal(120);
      expect((await raw('DELETE', url)).status).to.equal(204);
    });
    it('devices and apps paging: out-of-range or non-numeric values are 400', async () => {
      for (const q of ['page=-1', 'page=1000001', 'page=1.5', 'page=abc', 'pageSize=0', 'pageSize=1001', 'pageSize=', 'page=1&page=2', 'page=', 'page=%20', 'page=0x10', 'pageSize=1e2']) {
        expectJsonError(await raw('GET', `/api/v1/tenants/acme/devices?${q}`), 400, 'bad_request');
        expectJsonError(await raw('GET', `/api/v1/tenants/acme/apps?${q}`), 400, 'bad_request');
      }
      const r = await raw('GET', '/api/v1/tenants/acme/devices');
      expect(r.body).to.deep.equal({ devices: [], total: 0, page: 0, pageSize: 100 });
      expectJsonError(await raw('GET', '/api/v1/tenants/acme/devices?integration=int_0000000000000000'), 404, 'unknown_integration');
      expectJsonError(await json('PUT', '/api/v1/tenants/acme/devices/int_0000000000000000:1/risk', { risk: 'high' }), 404, 'unknown_device');
      // The console's filters and orders, for scripts: an unknown order or risk is named.
      const badSort = await raw('GET', '/api/v1/tenants/acme/devices?sort=oldest');
      expectJsonError(badSort, 400, 'bad_request');
      expect(badSort.body.message).to.equal('sort: must be one of integration, name, lastSeen');
      expectJsonError(await raw('GET', '/api/v1/tenants/acme/devices?risk=extreme'), 400, 'bad_request');
      expectJsonError(await raw('GET', '/api/v1/tenants/acme/devices?sort=name&sort=lastSeen'), 400, 'bad_request');
      expect((await raw('GET', '/api/v1/tenants/acme/devices?sort=lastSeen&risk=high&compliance=noncompliant&platform=ios')).status).to.equal(200);
      expectJsonError(await json('PUT', '/api/v1/tenants/acme/devices/nocolon/risk', { risk: 'high' }), 404, 'unknown_device');
    });
    it('app policies: validation, 404 unknown_policy on delete', async () => {
      expectJsonError(await json('PUT', '/api/v1/tenants/acme/app-policies/p1', { active: 'yes', apps: [] }), 400, 'bad_request');
      expectJsonError(await json('PUT', '/api/v1/tenants/acme/app-policies/p1', { apps: 'x' }), 400, 'bad_request');
      expectJsonError(await json('PUT', `/api/v1/tenants/acme/app-policies/${'p'.repeat(101)}`, { apps: [] }), 400, 'bad_request');
      const r = await json('PUT', '/api/v1/tenants/acme/app-policies/p1', { apps: ['a', 'a'] });
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.deep.equal({ name: 'p1', active: true, apps: ['a'] });
      expect((await raw('DELETE', '/api/v1/tenants/acme/app-policies/p1')).status).to.equal(204);
      expectJsonError(await raw('DELETE', '/api/v1/tenants/acme/app-policies/p1'), 404, 'unknown_policy');
    });
  });

  describe('unknown routes and methods', () => {
    it('anonymous OPTIONS on an API route gets the documented JSON answer (401 or 404), not a 200 method list', async () => {
      const r = await raw('OPTIONS', '/api/v1/connectors', { auth: null });
      expect(r.status, `${r.status} ${r.text}`).to.be.oneOf([401, 404]);
      expect(r.body).to.be.an('object');
    });
    it('an unsupported method on a known path is 404 not_found in JSON', async () => {
      const r = await raw('PATCH', '/api/v1/connectors');
      expectJsonError(r, 404, 'not_found');
    });
  });

  describe('more edges', () => {
    it('pause or resume racing a DELETE never answers 500', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 15; i++) {
        const c = await json('POST', '/api/v1/tenants/mu/integrations', { vendor: 'ivanti-epmm', displayName: `r${i}`, route: { via: 'connector', group: 'g', target: 't' } });
        expect(c.status, c.text).to.equal(201);
        const [a, b, d] = await Promise.all([
          raw('POST', `/api/v1/tenants/mu/integrations/${c.body.id}/pause`),
          raw('POST', `/api/v1/tenants/mu/integrations/${c.body.id}/resume`),
          raw('DELETE', `/api/v1/tenants/mu/integrations/${c.body.id}`),
        ]);
        statuses.push(a.status, b.status, d.status);
      }
      expect(statuses).to.not.include(500);
    });
    it('anonymous callers get 401 before the body is parsed or the path checked', async () => {
      expectJsonError(await raw('PUT', '/api/v1/tenants/acme/managed-targets/t1', { auth: null, headers: { 'content-type': 'application/json' }, body: '{nope' }), 401, 'unauthorized');
      expectJsonError(await raw('POST', '/api/v1/tenants/acme/integrations', { auth: null, headers: { 'content-type': 'application/json' }, body: '{nope' }), 401, 'unauthorized');
      expectJsonError(await raw('POST', '/api/v1/pairing-tokens', { auth: null, headers: { 'content-type': 'application/json' }, body: '{nope' }), 401, 'unauthorized');
      expectJsonError(await raw('GET', '/api/v1/tenants/NOT_A_TENANT/managed-targets', { auth: null }), 401, 'unauthorized');
      expectJsonError(await raw('DELETE', '/api/v1/tenants/acme/managed-targets/bad%20id', { auth: null }), 401, 'unauthorized');
    });
    it('GET devices?integration=a&integration=b is refused, not answered with every integration', async () => {
      const r = await raw('GET', '/api/v1/tenants/acme/devices?integration=int_0000000000000000&integration=int_1111111111111111');
      expect(r.status, r.text).to.be.oneOf([400, 404]);
    });
  });
});

describe('cloud-managed targets: two group moves at once (found in review)', function () {
  this.timeout(60_000);
  it('every group that held the target is told to withdraw it; only the last one keeps it', async () => {
    const cloud = await startInprocCloud();
    const daemons: Array<{ shutdown(): Promise<void> }> = [];
    try {
      const groups = ['g-a', 'g-b', 'g-c'];
      const conn = new Map<string, string>();
      for (const g of groups) {
        const { daemon, id } = await startInprocConnector(cloud, { group: g, extra: { cloudManagedTargets: { allowedHosts: ['uem.example.com'] } } });
        daemons.push(daemon);
        conn.set(id.connectorId, g);
      }
      const sent: Array<[string, string]> = [];
      const svc = cloud.managedTargets as unknown as { send(live: { connectorId: string }, msg: Record<string, unknown>): void };
      const send = svc.send.bind(svc);
      svc.send = (live, msg) => {
        sent.push([conn.get(live.connectorId)!, String(msg.type)]);
        send(live, msg);
      };
      const def = { baseUrl: 'https://uem.example.com/API', auth: { type: 'none' } };
      await cloud.managedTargets.put('acme', 'mt1', { ...def, group: 'g-a' });
      sent.length = 0;
      // Two moves at once: each must see the group the other left it in.
      await Promise.all([cloud.managedTargets.put('acme', 'mt1', { ...def, group: 'g-b' }), cloud.managedTargets.put('acme', 'mt1', { ...def, group: 'g-c' })]);
      const final = (await cloud.managedTargets.list('acme')).find((t) => t.id === 'mt1')!.group;
      const offeredTo = new Set(sent.filter(([, t]) => t === 'target.offer').map(([g]) => g));
      const withdrawnFrom = new Set(sent.filter(([, t]) => t === 'target.withdraw').map(([g]) => g));
      // Every group it was offered to, and the original, lost it again, except the final one.
      for (const g of ['g-a', ...offeredTo]) if (g !== final) expect(withdrawnFrom.has(g), `${g} still holds mt1 (final group ${final}; sent ${JSON.stringify(sent)})`).to.equal(true);
    } finally {
      for (const d of daemons) await d.shutdown();
      await cloud.shutdown();
    }
  });
});

describe('an integrations refusal is answered with its own status and code, whichever handler meets it', () => {
  it('the API error handler answers an ApiProblem as itself (as a UemlinkError INVALID_INPUT it would have become 400 bad_request)', () => {
    for (const [status, code] of [[404, 'unknown_integration'], [409, 'group_conflict'], [412, 'precondition_failed'], [502, 'uem_unreachable']] as const) {
      const answered = toApiError(new ApiProblem(status, code, 'why'));
      expect({ status: answered?.status, code: answered?.code, message: answered?.message }).to.deep.equal({ status, code, message: 'why' });
    }
  });
});
