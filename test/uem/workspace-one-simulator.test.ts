import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, unlinkSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../src/common/clock.js';
import { startSimulator, type RunningSimulator, type StartSimulatorOptions } from '../../src/uem/simulator/server.js';
import { generateWorkspaceOneData, NEVER, type WsDevice } from '../../src/uem/simulator/workspace-one-data.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { tempDir, until } from '../helpers/procs.js';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function fakeClock(start = Date.now()): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    setInterval: (fn, ms) => setInterval(fn, ms),
    clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
    advance(ms) {
      now += ms;
    },
  };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
  peerFingerprint: string;
}

type Auth = 'basic' | 'none' | { user: string; password: string } | { bearer: string };

interface CallOptions {
  auth?: Auth;
  /** The aw-tenant-code header; null leaves it out. Defaults to the right one. */
  tenant?: string | null;
  body?: unknown;
  form?: Record<string, string>;
  headers?: Record<string, string>;
  /** Trust this CA instead of the simulator's (undefined = the simulator's). */
  ca?: string | null;
}

/** One HTTPS request to the simulator on 127.0.0.1, trusting only its CA. */
function call(sim: RunningSimulator, method: string, path: string, o: CallOptions = {}): Promise<Reply> {
  const c = sim.credentials;
  const headers: Record<string, string> = { accept: 'application/json;version=2', ...o.headers };
  const auth = o.auth ?? 'basic';
  if (auth === 'basic') headers.authorization = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  else if (auth !== 'none' && 'bearer' in auth) headers.authorization = `Bearer ${auth.bearer}`;
  else if (auth !== 'none') headers.authorization = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
  const tenant = o.tenant === undefined ? c.apiKey : o.tenant;
  if (tenant !== null) headers['aw-tenant-code'] = tenant;
  let payload: string | undefined;
  if (o.body !== undefined) {
    payload = JSON.stringify(o.body);
    headers['content-type'] = 'application/json';
  } else if (o.form) {
    payload = new URLSearchParams(o.form).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const opts: RequestOptions = { host: '127.0.0.1', port: sim.port, method, path, headers, agent: false };
  if (o.ca !== null) opts.ca = o.ca ?? sim.caPem;
  return new Promise((resolve, reject) => {
    const req = request(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        const peer = (res.socket as TLSSocket).getPeerCertificate?.();
        resolve({ status: res.statusCode!, headers: res.headers, text, json, peerFingerprint: peer?.fingerprint256 ?? '' });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function token(sim: RunningSimulator): Promise<string> {
  const r = await call(sim, 'POST', '/connect/token', {
    auth: 'none',
    tenant: null,
    form: { grant_type: 'client_credentials', client_id: sim.credentials.clientId, client_secret: sim.credentials.clientSecret },
  });
  expect(r.status, r.text).to.equal(200);
  return r.json.access_token as string;
}

async function allDevices(sim: RunningSimulator, query: string, pageSize: number): Promise<{ devices: WsDevice[]; pages: number }> {
  const devices: WsDevice[] = [];
  for (let page = 0; ; page++) {
    const r = await call(sim, 'GET', `/API/mdm/devices/search?${query}&page=${page}&pagesize=${pageSize}`);
    if (r.status === 204) return { devices, pages: page };
    expect(r.status, r.text).to.equal(200);
    expect(r.json).to.have.keys('Devices', 'Page', 'PageSize', 'Total');
    expect(r.json.Page).to.equal(page);
    devices.push(...(r.json.Devices as WsDevice[]));
    if ((page + 1) * r.json.PageSize >= r.json.Total) return { devices, pages: page + 1 };
  }
}

describe('Workspace ONE simulator', function () {
  this.timeout(30_000);
  const DEVICES = 437;
  let sim: RunningSimulator<WorkspaceOneState>;
  let clock: ReturnType<typeof fakeClock>;
  let dir: string;

  before(async () => {
    dir = tempDir('uemlink-ws1-');
    clock = fakeClock();
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: dir, devices: DEVICES, seed: 42, tokenTtlSeconds: 120, clock });
  });
  after(async () => {
    await sim?.close();
  });

  describe('devices', () => {
    it('pages through the whole fleet with unique ids, and clamps pagesize to 500', async () => {
      const { devices, pages } = await allDevices(sim, 'x=1', 100);
      expect(pages).to.equal(5);
      expect(devices).to.have.length(DEVICES);
      expect(new Set(devices.map((d) => d.Id.Value)).size).to.equal(DEVICES);
      const big = await call(sim, 'GET', '/API/mdm/devices/search?pagesize=1000');
      expect(big.json.PageSize).to.equal(500);
      expect(big.json.Devices).to.have.length(DEVICES);
      expect(big.json.Total).to.equal(DEVICES);
    });

    it('answers realistic device records', async () => {
      const { devices } = await allDevices(sim, 'x=1', 500);
      const d = devices[0]!;
      expect(d.Id.Value).to.be.a('number');
      expect(d.Uuid).to.match(GUID);
      expect(d.MacAddress).to.match(/^[0-9A-F]{12}$/);
      expect(d.UserEmailAddress).to.match(/^[a-z0-9.]+@acme\.example$/);
      expect(d.LocationGroupId.Id.Value).to.be.a('number');
      expect(d.PlatformId.Name).to.equal(d.Platform);
      expect(new Set(devices.map((x) => x.Platform))).to.have.all.keys('Apple', 'AppleOsX', 'Android', 'WinRT');
      expect(new Set(devices.map((x) => x.Ownership))).to.have.all.keys('C', 'E', 'S');
      for (const x of devices) expect(x.LastSeen).to.match(/^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3})$/);
      expect(devices.some((x) => x.LastSeen === NEVER)).to.equal(true);
      expect(devices.some((x) => x.ComplianceStatus === 'NonCompliant')).to.equal(true);
    });

    it('answers 204 with an empty body when nothing matches', async () => {
      const r = await call(sim, 'GET', '/API/mdm/devices/search?user=nobody-at-all');
      expect(r.status).to.equal(204);
      expect(r.text).to.equal('');
      expect(r.headers['x-ratelimit-remaining']).to.match(/^\d+$/);
    });

    it('filters by platform, ownership, user, model and organization group (with its children)', async () => {
      const all = sim.state.data.devices;
      const android = await allDevices(sim, 'platform=android', 500);
      expect(android.devices.length).to.equal(all.filter((d) => d.Platform === 'Android').length).and.be.greaterThan(0);
      expect(android.devices.every((d) => d.Platform === 'Android')).to.equal(true);

      const byod = await allDevices(sim, 'ownership=E', 500);
      expect(byod.devices.length).to.equal(all.filter((d) => d.Ownership === 'E').length);

      const someone = all.find((d) => d.Ownership === 'C')!;
      const mine = await allDevices(sim, `user=${encodeURIComponent(someone.UserName)}`, 500);
      expect(mine.devices.map((d) => d.Id.Value)).to.include(someone.Id.Value);
      expect(mine.devices.every((d) => d.UserName === someone.UserName)).to.equal(true);

      const model = await allDevices(sim, `model=${encodeURIComponent(someone.Model)}&platform=${someone.Platform}`, 500);
      expect(model.devices.every((d) => d.Model === someone.Model)).to.equal(true);

      // Corporate (571) has Engineering (574) and Finance (575) below it.
      const corp = await allDevices(sim, 'lgid=571', 500);
      const ogs = new Set(corp.devices.map((d) => d.LocationGroupId.Id.Value));
      expect([...ogs].every((id) => [571, 574, 575].includes(id))).to.equal(true);
      expect(ogs.has(574)).to.equal(true);
      expect(corp.devices.length).to.equal(all.filter((d) => [571, 574, 575].includes(d.LocationGroupId.Id.Value)).length);

      const bad = await call(sim, 'GET', '/API/mdm/devices/search?page=-1');
      expect(bad.status).to.equal(400);
      expect(bad.json).to.include.keys('errorCode', 'message', 'activityId');
    });

    it('serves per-device app inventories, 204 for a device without one, 404 for an unknown device', async () => {
      const data = sim.state.data;
      const withApps = data.devices.find((d) => data.appsFor(d).length > 0)!;
      const r = await call(sim, 'GET', `/API/mdm/devices/${withApps.Uuid}/apps/search`);
      expect(r.status).to.equal(200);
      expect(r.headers['x-api-version']).to.equal('v1');
      expect(r.json.TotalResults).to.equal(r.json.app_items.length);
      expect(r.json.app_items[0]).to.have.keys('name', 'installed_status', 'installed_version', 'assigned_version', 'bundle_id');
      const without = data.devices.find((d) => d.EnrollmentStatus === 'Registered')!;
      expect((await call(sim, 'GET', `/api/mdm/devices/${without.Uuid}/apps/search`)).status).to.equal(204);
      const unknown = await call(sim, 'GET', '/API/mdm/devices/00000000-0000-4000-8000-000000000000/apps/search');
      expect(unknown.status).to.equal(404);
      expect(unknown.json.errorCode).to.be.a('number');
    });
  });

  describe('authentication', () => {
    it('refuses a wrong password with 401 and the 1005 body', async () => {
      const r = await call(sim, 'GET', '/API/mdm/devices/search', { auth: { user: 'user.123', password: 'wrong' } });
      expect(r.status).to.equal(401);
      expect(r.json).to.have.keys('errorCode', 'message', 'activityId');
      expect(r.json.errorCode).to.equal(1005);
      expect(r.json.message).to.equal('An error occurred while validating remote service client credentials or user not found : user.123');
      expect(r.json.activityId).to.match(GUID);
      expect((await call(sim, 'GET', '/API/mdm/devices/search', { auth: 'none' })).status).to.equal(401);
    });

    it('refuses a missing or wrong tenant code with 403 and the 1013 body', async () => {
      const missing = await call(sim, 'GET', '/API/system/info', { tenant: null });
      expect(missing.status).to.equal(403);
      expect(missing.json.errorCode).to.equal(1013);
      const wrong = await call(sim, 'GET', '/API/system/info', { tenant: 'XYZ' });
      expect(wrong.status).to.equal(403);
      expect(wrong.json).to.have.keys('errorCode', 'message', 'activityId');
      expect(wrong.json.message).to.equal('Tenant code XYZ does not identify an Organization Group.');
    });

    it('accepts /API and /api, and sends the vendor headers on every answer', async () => {
      for (const prefix of ['/API', '/api']) {
        const r = await call(sim, 'GET', `${prefix}/system/info`, { headers: { 'x-correlation-id': 'corr-123' } });
        expect(r.status, prefix).to.equal(200);
        expect(r.json.ProductVersion).to.match(/^\d+\.\d+/);
        expect(r.headers['x-correlation-id']).to.equal('corr-123');
        expect(r.headers['x-api-version']).to.equal('v1');
        for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']) expect(r.headers[h], h).to.match(/^\d+$/);
        expect(Number(r.headers['x-ratelimit-reset'])).to.be.greaterThan(Date.now() / 1000 - 5);
      }
      const denied = await call(sim, 'GET', '/api/system/info', { tenant: null });
      expect(denied.headers['x-correlation-id']).to.match(GUID);
      expect(denied.headers['x-ratelimit-limit']).to.match(/^\d+$/);
      const v2 = await call(sim, 'GET', '/API/mdm/devices/search?pagesize=1');
      expect(v2.headers['x-api-version']).to.equal('v2');
    });

    it('is only reachable by clients that trust its CA', async () => {
      const err = await call(sim, 'GET', '/API/system/info', { ca: null }).then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e,
      );
      expect(err?.code).to.match(/CERT|SIGNATURE|ISSUER/);
    });

    it('issues OAuth tokens (form body or Basic) that work without a tenant code', async () => {
      const before = sim.state.counters.tokensIssued;
      const t1 = await call(sim, 'POST', '/connect/token', {
        auth: 'none',
        tenant: null,
        form: { grant_type: 'client_credentials', client_id: sim.credentials.clientId, client_secret: sim.credentials.clientSecret },
      });
      expect(t1.status).to.equal(200);
      expect(t1.json).to.include({ token_type: 'Bearer', expires_in: 120 });
      expect(t1.json.access_token).to.be.a('string').with.length.greaterThan(20);
      expect(t1.headers['cache-control']).to.equal('no-store');
      const t2 = await call(sim, 'POST', '/connect/token', {
        auth: { user: sim.credentials.clientId, password: sim.credentials.clientSecret },
        tenant: null,
        form: { grant_type: 'client_credentials' },
      });
      expect(t2.status).to.equal(200);
      expect(sim.state.counters.tokensIssued).to.equal(before + 2);

      sim.state.clearRequestLog();
      const r = await call(sim, 'GET', '/API/mdm/devices/search?pagesize=5', { auth: { bearer: t1.json.access_token }, tenant: null });
      expect(r.status).to.equal(200);
      expect(r.json.Devices).to.have.length(5);
      const wrongTenant = await call(sim, 'GET', '/API/system/info', { auth: { bearer: t1.json.access_token }, tenant: 'XYZ' });
      expect(wrongTenant.status).to.equal(403);
      const log = sim.state.requests;
      expect(log[0]).to.include({ method: 'GET', path: '/API/mdm/devices/search', status: 200, auth: 'bearer' });
      expect(log[0]!.time).to.match(/Z$/);
      expect(log[1]).to.include({ status: 403, auth: 'bearer' });
    });

    it('answers invalid_client for a wrong client (400 in the form, 401 with Basic) and checks the grant', async () => {
      const rejected = sim.state.counters.tokenRequestsRejected;
      const form = await call(sim, 'POST', '/connect/token', {
        auth: 'none',
        tenant: null,
        form: { grant_type: 'client_credentials', client_id: sim.credentials.clientId, client_secret: 'nope' },
      });
      expect(form.status).to.equal(400);
      expect(form.json.error).to.equal('invalid_client');
      const basic = await call(sim, 'POST', '/connect/token', { auth: { user: 'someone', password: 'else' }, tenant: null, form: { grant_type: 'client_credentials' } });
      expect(basic.status).to.equal(401);
      expect(basic.json.error).to.equal('invalid_client');
      expect(basic.headers['www-authenticate']).to.match(/^Basic/);
      const grant = await call(sim, 'POST', '/connect/token', {
        auth: 'none',
        tenant: null,
        form: { grant_type: 'password', client_id: sim.credentials.clientId, client_secret: sim.credentials.clientSecret },
      });
      expect(grant.status).to.equal(400);
      expect(grant.json.error).to.equal('unsupported_grant_type');
      expect(sim.state.counters.tokenRequestsRejected).to.equal(rejected + 3);
    });

    it('expires tokens after their TTL', async () => {
      const t = await token(sim);
      expect((await call(sim, 'GET', '/API/system/info', { auth: { bearer: t }, tenant: null })).status).to.equal(200);
      clock.advance(119_000);
      expect((await call(sim, 'GET', '/API/system/info', { auth: { bearer: t }, tenant: null })).status).to.equal(200);
      clock.advance(1_000);
      const r = await call(sim, 'GET', '/API/system/info', { auth: { bearer: t }, tenant: null });
      expect(r.status).to.equal(401);
      expect(r.json.errorCode).to.equal(1005);
      expect(r.headers['www-authenticate']).to.match(/^Bearer error="invalid_token"/);
    });

    it('lets a test revoke every issued token', async () => {
      const t = await token(sim);
      expect(sim.state.activeTokenCount()).to.be.greaterThan(0);
      expect(sim.state.revokeAllTokens()).to.be.greaterThan(0);
      expect((await call(sim, 'GET', '/API/system/info', { auth: { bearer: t }, tenant: null })).status).to.equal(401);
      expect((await call(sim, 'GET', '/API/system/info', { auth: { bearer: 'made-up-token' }, tenant: null })).status).to.equal(401);
      const fresh = await token(sim);
      expect((await call(sim, 'GET', '/API/system/info', { auth: { bearer: fresh }, tenant: null })).status).to.equal(200);
    });
  });

  describe('organization groups and smart groups', () => {
    it('searches groups (v2: int Id, string counts) and lists a group with everything below it', async () => {
      const s = await call(sim, 'GET', '/API/system/groups/search');
      expect(s.status).to.equal(200);
      expect(s.headers['x-api-version']).to.equal('v2');
      const customer = s.json.OrganizationGroups[0];
      expect(customer).to.include({ Id: 570, LocationGroupType: 'Customer', LgLevel: 0, GroupId: 'acme' });
      expect(customer.Devices).to.equal(String(DEVICES));
      expect(customer.Users).to.be.a('string');
      expect(s.json.TotalResults).to.equal(s.json.OrganizationGroups.length);
      const one = await call(sim, 'GET', '/API/system/groups/search?groupid=acme-retail');
      expect(one.json.OrganizationGroups.map((g: { Id: number }) => g.Id)).to.deep.equal([573]);
      expect((await call(sim, 'GET', '/API/system/groups/search?groupid=nope')).status).to.equal(204);

      const c = await call(sim, 'GET', '/API/system/groups/573/children');
      expect(c.status).to.equal(200);
      expect(c.headers['x-api-version']).to.equal('v1');
      expect(c.json.map((g: { Id: { Value: number } }) => g.Id.Value)).to.deep.equal([573, 576, 577]);
      expect(c.json[1].ParentLocationGroup.Id.Value).to.equal(573);
      const direct = (await call(sim, 'GET', '/API/system/groups/570/children')).json.filter((g: { ParentLocationGroup: { Id: { Value: number } } }) => g.ParentLocationGroup.Id.Value === 570);
      expect(direct.map((g: { Name: string }) => g.Name)).to.deep.equal(['Corporate', 'Sales', 'Retail Stores', 'BYOD']);
      expect((await call(sim, 'GET', '/API/system/groups/999/children')).status).to.equal(404);
    });

    it('searches smart groups', async () => {
      const r = await call(sim, 'GET', '/API/mdm/smartgroups/search?name=devices');
      expect(r.status).to.equal(200);
      const all = r.json.SmartGroups.find((g: { Name: string }) => g.Name === 'All Devices');
      expect(all).to.include.keys('SmartGroupID', 'SmartGroupUuid', 'ManagedByOrganizationGroupId', 'Devices');
      expect(all.ManagedByOrganizationGroupId).to.equal('570');
      expect(all.Devices).to.equal(sim.state.data.devices.filter((d) => d.EnrollmentStatus === 'Enrolled').length);
      expect(r.json.Total).to.equal(r.json.SmartGroups.length);
      expect((await call(sim, 'GET', '/API/mdm/smartgroups/search?name=no-such-group')).status).to.equal(204);
    });
  });

  describe('tags', () => {
    it('creates a tag, adds and removes devices, and lists them', async () => {
      const created = await call(sim, 'POST', '/API/mdm/tags/addtag', { body: { TagName: 'CHKP_Risk_High', TagType: 'Device', LocationGroupId: 570 } });
      expect(created.status, created.text).to.equal(200);
      const tagId = created.json.Value as number;
      expect(tagId).to.be.a('number');
      const dup = await call(sim, 'POST', '/API/mdm/tags/addtag', { body: { TagName: 'CHKP_Risk_High', TagType: 'Device', LocationGroupId: 570 } });
      expect(dup.status).to.equal(400);

      const search = await call(sim, 'GET', '/API/mdm/tags/search?organizationgroupid=570&name=CHKP_Risk');
      expect(search.status).to.equal(200);
      expect(search.json.Tags).to.have.length(1);
      expect(search.json.Tags[0]).to.include({ TagName: 'CHKP_Risk_High' });
      expect(search.json.Tags[0].Id.Value).to.equal(tagId);
      expect(search.json).to.include.keys('Page', 'PageSize', 'Total');

      expect((await call(sim, 'GET', `/API/mdm/tags/${tagId}/devices`)).status).to.equal(204);
      const [a, b] = sim.state.data.devices;
      const add = await call(sim, 'POST', `/API/mdm/tags/${tagId}/adddevices`, { body: { BulkValues: { Value: [String(a!.Id.Value), String(b!.Id.Value), '999999999'] } } });
      expect(add.status).to.equal(200);
      expect(add.json).to.include({ TotalItems: 3, AcceptedItems: 2, FailedItems: 1 });
      expect(add.json.Faults.Fault[0].ItemValue).to.equal('999999999');

      const listed = await call(sim, 'GET', `/api/mdm/tags/${tagId}/devices`);
      expect(listed.status).to.equal(200);
      expect(listed.json.Device.map((d: { DeviceId: number }) => d.DeviceId)).to.deep.equal([a!.Id.Value, b!.Id.Value]);
      expect(listed.json.Device[0]).to.have.keys('DeviceId', 'FriendlyName', 'DateTagged', 'DeviceUuid');
      expect(listed.json.Device[0].DateTagged).to.match(/^\d{4}-\d{2}-\d{2}T[\d:.]+$/);

      const rm = await call(sim, 'POST', `/API/mdm/tags/${tagId}/removedevices`, { body: { BulkValues: { Value: [String(a!.Id.Value)] } } });
      expect(rm.json).to.include({ TotalItems: 1, AcceptedItems: 1, FailedItems: 0 });
      const after = await call(sim, 'GET', `/API/mdm/tags/${tagId}/devices`);
      expect(after.json.Device.map((d: { DeviceId: number }) => d.DeviceId)).to.deep.equal([b!.Id.Value]);

      expect((await call(sim, 'POST', `/API/mdm/tags/${tagId}/adddevices`, { body: { Nope: 1 } })).status).to.equal(400);
      expect((await call(sim, 'GET', '/API/mdm/tags/123/devices')).status).to.equal(404);
    });

    it('comes with seeded tags, some devices already tagged', async () => {
      const r = await call(sim, 'GET', '/API/mdm/tags/search?organizationgroupid=570');
      expect(r.json.Tags.map((t: { TagName: string }) => t.TagName)).to.include.members(['VIP', 'Loaner', 'Kiosk']);
      expect(sim.state.data.tags.some((t) => t.devices.size > 0)).to.equal(true);
    });
  });

  describe('files and restarts', () => {
    it('keeps credentials.json and keys private, and the directory 0700', () => {
      expect(statSync(dir).mode & 0o777).to.equal(0o700);
      for (const f of ['credentials.json', 'server.key', 'ca.key']) expect(statSync(join(dir, f)).mode & 0o777, f).to.equal(0o600);
      const file = JSON.parse(readFileSync(sim.credentialsFile, 'utf8'));
      expect(file).to.have.keys('username', 'password', 'apiKey', 'clientId', 'clientSecret', 'controlToken', 'tokenUrl', 'baseUrl');
      expect(file.baseUrl).to.equal(`https://127.0.0.1:${sim.port}/API`);
      expect(file.tokenUrl).to.equal(`https://127.0.0.1:${sim.port}/connect/token`);
      expect(readFileSync(sim.caFile, 'utf8')).to.equal(sim.caPem);
      const cert = new X509Certificate(readFileSync(join(dir, 'server.pem')));
      expect(cert.checkHost('localhost')).to.equal('localhost');
      expect(cert.checkIP('127.0.0.1')).to.equal('127.0.0.1');
      expect(cert.checkIP('::1')).to.equal('::1');
    });

    it('reuses its certificates and credentials across restarts', async () => {
      const d = tempDir('uemlink-ws1-restart-');
      const opts: StartSimulatorOptions = { vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: d, devices: 10 };
      const first = await startSimulator(opts);
      const r1 = await call(first, 'GET', '/API/system/info');
      await first.close();
      const second = await startSimulator(opts);
      try {
        expect(second.caPem).to.equal(first.caPem);
        expect(second.credentials.password).to.equal(first.credentials.password);
        expect(second.credentials.apiKey).to.equal(first.credentials.apiKey);
        expect(second.credentials.clientSecret).to.equal(first.credentials.clientSecret);
        const r2 = await call(second, 'GET', '/API/system/info');
        expect(r2.status).to.equal(200);
        expect(r2.peerFingerprint).to.equal(r1.peerFingerprint);
      } finally {
        await second.close();
      }
      // A lost server certificate is re-issued by the same CA: clients that trust ca.pem keep working.
      unlinkSync(join(d, 'server.pem'));
      const third = await startSimulator(opts);
      try {
        expect(third.caPem).to.equal(first.caPem);
        const r3 = await call(third, 'GET', '/API/system/info');
        expect(r3.status).to.equal(200);
        expect(r3.peerFingerprint).to.not.equal(r1.peerFingerprint);
      } finally {
        await third.close();
      }
    });

    it('takes fixed credentials when given', async () => {
      const d = tempDir('uemlink-ws1-creds-');
      const s = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: d, devices: 3, credentials: { username: 'admin', password: 'pa55word!' } });
      try {
        expect((await call(s, 'GET', '/API/system/info', { auth: { user: 'admin', password: 'pa55word!' } })).status).to.equal(200);
        expect(JSON.parse(readFileSync(s.credentialsFile, 'utf8')).username).to.equal('admin');
      } finally {
        await s.close();
      }
    });
  });

  it('answers 429 beyond an optional per-minute quota, until the minute is over', async () => {
    const qclock = fakeClock();
    const s = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-ws1-quota-'), devices: 3, quotaPerMinute: 3, clock: qclock });
    try {
      const seen: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await call(s, 'GET', '/API/system/info');
        expect(r.status).to.equal(200);
        expect(r.headers['x-ratelimit-limit']).to.equal('3');
        seen.push(String(r.headers['x-ratelimit-remaining']));
      }
      expect(seen).to.deep.equal(['2', '1', '0']);
      const over = await call(s, 'GET', '/API/system/info');
      expect(over.status).to.equal(429);
      expect(Number(over.headers['retry-after'])).to.be.within(1, 60);
      expect(over.json).to.include.keys('errorCode', 'message', 'activityId');
      expect(s.state.counters.rateLimited).to.equal(1);
      qclock.advance(60_000);
      expect((await call(s, 'GET', '/API/system/info')).status).to.equal(200);
    } finally {
      await s.close();
    }
  });

  it('records requests, and has a hook where faults plug in', async () => {
    const counted = sim.state.counters.requests;
    sim.state.fault = (req, res, next) => {
      if (req.path.toLowerCase().endsWith('/system/info')) res.socket?.destroy();
      else next();
    };
    try {
      const err = await call(sim, 'GET', '/API/system/info').then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).to.be.instanceOf(Error);
      await until(() => sim.state.requests.some((r) => r.path === '/API/system/info' && r.status === 0), 2000, 'the aborted request in the log');
    } finally {
      sim.state.fault = undefined;
    }
    expect((await call(sim, 'GET', '/API/system/info')).status).to.equal(200);
    expect(sim.state.counters.requests).to.equal(counted + 2);
  });

  it('generates the same fleet from the same seed, and another from another seed', () => {
    const asOf = Date.UTC(2025, 0, 15, 12);
    const a = generateWorkspaceOneData({ devices: 50, seed: 7, asOf });
    const b = generateWorkspaceOneData({ devices: 50, seed: 7, asOf });
    const c = generateWorkspaceOneData({ devices: 50, seed: 8, asOf });
    expect(JSON.stringify(a.devices)).to.equal(JSON.stringify(b.devices));
    expect(a.appsFor(a.devices[3]!)).to.deep.equal(b.appsFor(b.devices[3]!));
    expect(JSON.stringify(a.devices)).to.not.equal(JSON.stringify(c.devices));
    expect(a.devices.every((d) => d.LastSeen === NEVER || Date.parse(`${d.LastSeen}Z`) <= asOf)).to.equal(true);
  });

  it('runs as `uemlink simulate-uem`, prints where CA and credentials are (not the secrets), and stops on SIGTERM', async () => {
    const d = tempDir('uemlink-ws1-cli-');
    const cliModule = fileURLToPath(new URL('../../src/uem/simulator/cli.js', import.meta.url));
    const script = `import { Command } from 'commander';
      const { simulateUemCommand } = await import(${JSON.stringify(cliModule)});
      const p = new Command('uemlink'); simulateUemCommand(p);
      await p.parseAsync(process.argv.slice(1), { from: 'user' });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, 'simulate-uem', '--vendor', 'workspace-one', '--listen', '127.0.0.1:0', '--state', d, '--devices', '12', '--seed', '3', '--token-ttl', '60'], {
      cwd: fileURLToPath(new URL('../../../', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const port = await until(() => /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)?.[1], 15_000, `the simulator to listen (stderr: ${stderr})`);
      expect(stderr).to.contain(join(d, 'ca.pem')).and.contain(join(d, 'credentials.json'));
      const creds = JSON.parse(readFileSync(join(d, 'credentials.json'), 'utf8'));
      for (const secret of [creds.password, creds.apiKey, creds.clientSecret]) {
        expect(stderr).to.not.contain(secret);
        expect(stdout).to.not.contain(secret);
      }
      const client = { port: Number(port), caPem: readFileSync(join(d, 'ca.pem'), 'utf8'), credentials: creds } as unknown as RunningSimulator;
      const r = await call(client, 'GET', '/API/mdm/devices/search');
      expect(r.json.Total).to.equal(12);
      const line = stdout.split('\n').find((l) => l.includes('uem simulator listening'));
      expect(JSON.parse(line!)).to.include({ component: 'uem-simulator', level: 'info' });
      child.kill('SIGTERM');
      expect(await exited).to.equal(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
