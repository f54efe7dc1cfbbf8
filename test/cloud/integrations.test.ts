/**
 * Issue 5, each rule end to end: the cloud's integration engine talks to the simulated UEMs through
 * a real connector and tunnel (in this process: the same code, real sockets, real TLS).
 */
import { expect } from 'chai';
import type { CloudServer } from '../../src/cloud/server.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { sleep, tempDir } from '../helpers/procs.js';

type Json = any;

describe('integrations (cloud engine through a real connector and tunnel)', function () {
  this.timeout(60_000);
  let cloud: CloudServer;
  let sim: RunningSimulator<WorkspaceOneState>;
  const stops: Array<() => Promise<void>> = [];
  /** Integrations made by the current test: removed after it (groups belong to one integration). */
  const made: string[] = [];

  async function api(method: string, path: string, body?: unknown, tenant = 'acme'): Promise<{ status: number; body: Json }> {
    const r = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/tenants/${tenant}${path}`, {
      method,
      headers: { authorization: `Bearer ${cloud.config.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const t = await r.text();
    return { status: r.status, body: t ? JSON.parse(t) : null };
  }

  const ws1Route = { via: 'connector', group: 'default', target: 'ws1' };
  const groupIds = () => {
    const customer = sim.state.data.groups[0]!;
    const child = sim.state.data.groups.find((g) => g.parentId === customer.id && sim.state.data.groups.some((c) => c.parentId === g.id))!;
    const grandchild = sim.state.data.groups.find((g) => g.parentId === child.id)!;
    const other = sim.state.data.groups.find((g) => g.parentId === customer.id && g.id !== child.id)!;
    return { customer, child, grandchild, other };
  };
  const directMembers = (ogId: number) => sim.state.data.devices.filter((d) => d.LocationGroupId.Id.Value === ogId);

  async function create(extra: Record<string, unknown> = {}): Promise<string> {
    const r = await api('POST', '/integrations', { vendor: 'workspace-one', displayName: `WS1 ${Math.random().toString(36).slice(2, 6)}`, route: ws1Route, ...extra });
    expect(r.status, JSON.stringify(r.body)).to.equal(201);
    made.push(r.body.id as string);
    return r.body.id as string;
  }
  const sync = (id: string) => api('POST', `/integrations/${id}/sync?wait=1`);
  const status = async (id: string) => (await api('GET', `/integrations/${id}/status`)).body;
  const devices = async (id: string) => (await api('GET', `/devices?integration=${id}&pageSize=1000`)).body;

  before(async () => {
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-int-sim-'), devices: 400, seed: 7 });
    cloud = await startInprocCloud();
    const c = sim.credentials;
    const conn = await startInprocConnector(cloud, { targets: [{ id: 'ws1', baseUrl: sim.baseUrl, auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey }, tls: { ca: sim.caPem } }] });
    stops.push(() => conn.daemon.shutdown());
  });
  after(async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
    await cloud.shutdown();
    await sim.close();
  });
  afterEach(async () => {
    sim.state.faults = {};
    for (const id of made.splice(0)) await api('DELETE', `/integrations/${id}`);
  });

  describe('settings are validated, naming the field and the allowed range', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ sync: { deviceSyncIntervalMinutes: 5 } }, /sync\.deviceSyncIntervalMinutes: must be a whole number from 10 to 1440 in steps of 10/],
      [{ sync: { deviceSyncIntervalMinutes: 15 } }, /steps of 10 \(got 15\)/],
      [{ sync: { appSyncIntervalMinutes: 1450 } }, /sync\.appSyncIntervalMinutes: .*10 to 1440/],
      [{ sync: { deviceDeletionThresholdPercent: 101 } }, /sync\.deviceDeletionThresholdPercent: .*0 to 100/],
      [{ sync: { deviceDeletionAfterSyncs: 0 } }, /sync\.deviceDeletionAfterSyncs: .*1 to 100/],
      [{ sync: { pii: { deviceName: 'yes' } } }, /sync\.pii\.deviceName: must be true or false/],
      [{ sync: { colour: 'red' } }, /sync\.colour: unknown setting/],
      [{ tagging: { deviceRisk: 1 } }, /tagging\.deviceRisk: must be true or false/],
      [{ route: { via: 'carrier-pigeon' } }, /route\.via/],
      [{ vendor: 'mobileiron' }, /vendor: must be one of/],
      [{ colour: 'red' }, /colour: unknown field/],
      [{ route: { via: 'direct' } }, /serverAddress: is required for a direct route/],
    ];
    for (const [extra, msg] of cases) {
      it(JSON.stringify(extra), async () => {
        const r = await api('POST', '/integrations', { vendor: 'workspace-one', displayName: 'x', route: ws1Route, ...extra });
        expect(r.status).to.equal(400);
        expect(r.body.error).to.equal('bad_request');
        expect(r.body.message).to.match(msg);
      });
    }
    it('partner UEMs: basic only, and devices sync no more often than every 30 minutes', async () => {
      const base = { vendor: 'hexnode', displayName: 'hx', route: { via: 'connector', group: 'default', target: 'hx' } };
      const a = await api('POST', '/integrations', { ...base, sync: { deviceSyncIntervalMinutes: 20 } });
      expect(a.body.message).to.match(/deviceSyncIntervalMinutes: .*30 to 1440/);
      const b = await api('POST', '/integrations', { ...base, serverAddress: 'https://hx.example.com', auth: { type: 'oauth2', clientId: 'a', clientSecret: 'b', tokenUrl: 'https://t.example.com/token' }, route: { via: 'direct' } });
      expect(b.body.message).to.match(/auth\.type: hexnode supports basic authentication only/);
      const c = await api('POST', '/integrations', { vendor: 'workspace-one', displayName: 'x', route: ws1Route, sync: { groups: ['999999'] } });
      expect(c.status).to.equal(400);
      expect(c.body.message).to.match(/sync\.groups\[0\]: group "999999" does not exist/);
    });
  });

  it('a new integration: red/gray until verified and synced; verify names each step; then green', async () => {
    const id = await create();
    let s = await status(id);
    expect(s.uemServer.indicator).to.equal('red');
    expect(s.deviceSync.indicator).to.equal('red');
    expect(s.tagging.indicator).to.equal('gray');
    expect(s.policyGroups.indicator).to.equal('gray');
    const v = (await api('POST', `/integrations/${id}/verify`)).body;
    expect(v.ok).to.equal(true);
    expect(v.steps.map((x: Json) => [x.id, x.status])).to.deep.equal([['connector', 'pass'], ['reachability', 'pass'], ['tls', 'pass'], ['credentials', 'pass']]);
    s = await status(id);
    expect(s.uemServer.indicator).to.equal('green');
    const { customer } = groupIds();
    await api('PUT', `/integrations/${id}`, { sync: { groups: [String(customer.id)] } });
    await sync(id);
    s = await status(id);
    expect(s.deviceSync.indicator).to.equal('green');
    expect(s.deviceSync.counts.devices).to.equal(directMembers(customer.id).length);
    expect(s.appSync.indicator).to.equal('green');
    expect(s.deviceSync.lastSuccess).to.be.a('string');
  });

  it('groups: the UEM\'s groups with kinds and parents; devices of a parent\'s children are not included', async () => {
    const g = (await api('POST', `/integrations/${await create()}/groups`)).status;
    expect(g).to.equal(404); // GET only
    const id = await create();
    const list = (await api('GET', `/integrations/${id}/groups`)).body.groups as Json[];
    const { child, grandchild } = groupIds();
    expect(list.find((x) => x.id === String(child.id))).to.include({ kind: 'organization', name: child.name });
    expect(list.find((x) => x.id === String(grandchild.id)).parentId).to.equal(String(child.id));
    expect(list.some((x) => x.kind === 'smart')).to.equal(true);
    await api('PUT', `/integrations/${id}`, { sync: { groups: [String(child.id)] } });
    await sync(id);
    const got = await devices(id);
    const expected = directMembers(child.id).map((d) => `${id}:${d.Id.Value}`).sort();
    expect(got.devices.map((d: Json) => d.id).sort()).to.deep.equal(expected);
    expect(got.devices.every((d: Json) => d.groups.includes(String(child.id)))).to.equal(true);
  });

  it('a group integrated elsewhere — or whose parent is — is refused, with the owner named', async () => {
    const { child, grandchild, other } = groupIds();
    const owner = await create({ displayName: 'Owner of child', sync: { groups: [String(child.id)] } });
    const same = await api('POST', '/integrations', { vendor: 'workspace-one', displayName: 'again', route: ws1Route, sync: { groups: [String(child.id)] } });
    expect(same.status).to.equal(409);
    expect(same.body.error).to.equal('group_conflict');
    expect(same.body.message).to.contain('already integrated').and.contain(owner).and.contain('Owner of child');
    const below = await api('POST', '/integrations', { vendor: 'workspace-one', displayName: 'below', route: ws1Route, sync: { groups: [String(grandchild.id)] } });
    expect(below.status).to.equal(409);
    expect(below.body.message).to.contain(`inside "${child.name}"`);
    const fine = await create({ sync: { groups: [String(other.id)] } });
    expect(fine).to.match(/^int_/);
  });

  it('PII switches off: name and phone null, owner e-mail the guides\' placeholder; turning a switch off erases stored values', async () => {
    const { other } = groupIds();
    const id = await create({ sync: { groups: [String(other.id)], pii: { deviceName: true, deviceNumber: true, email: true } } });
    await sync(id);
    let d = (await devices(id)).devices[0];
    expect(d.name).to.be.a('string');
    expect(d.ownerEmail).to.contain('@').and.not.contain('.UEM');
    await api('PUT', `/integrations/${id}`, { sync: { pii: { deviceName: false, deviceNumber: false, email: false } } });
    d = (await devices(id)).devices[0]; // no sync in between: erased at once
    expect(d.name).to.equal(null);
    expect(d.phone).to.equal(null);
    expect(d.ownerName).to.equal(null);
    expect(d.ownerEmail).to.equal(`UEMDevice${d.udid}@workspace-one.UEM`);
    await sync(id);
    const all = (await devices(id)).devices as Json[];
    expect(all.every((x) => x.name === null && x.phone === null && /^UEMDevice.+@workspace-one\.UEM$/.test(x.ownerEmail))).to.equal(true);
  });

  it('a flapping device list: the threshold blocks the mass deletion and the status says so', async () => {
    const { customer } = groupIds();
    const id = await create({ sync: { groups: [String(customer.id)], deviceDeletionThresholdPercent: 10, deviceDeletionAfterSyncs: 1 } });
    await sync(id);
    const n = (await devices(id)).total as number;
    expect(n).to.be.greaterThan(10);
    sim.state.faults = { flapDevices: 0.5 };
    await sync(id);
    const s = await status(id);
    expect(s.deviceSync.indicator).to.equal('red');
    expect(s.deviceSync.message).to.match(/kept \d+ devices .* deletion threshold of 10%/);
    expect((await devices(id)).total).to.equal(n);
    sim.state.faults = {};
    await sync(id);
    expect((await status(id)).deviceSync.indicator).to.equal('green');
    expect((await devices(id)).total).to.equal(n);
  });

  it('a device the UEM no longer lists is deleted only after N confirming syncs', async () => {
    const { grandchild } = groupIds();
    const id = await create({ sync: { groups: [String(grandchild.id)], deviceDeletionAfterSyncs: 3 } });
    await sync(id);
    const before = (await devices(id)).total as number;
    expect(before).to.be.greaterThan(1);
    const victim = directMembers(grandchild.id)[0]!;
    const idx = sim.state.data.devices.indexOf(victim);
    sim.state.data.devices.splice(idx, 1);
    try {
      await sync(id);
      let s = await status(id);
      expect(s.deviceSync.counts.pendingDeletion).to.equal(1);
      expect((await devices(id)).total).to.equal(before);
      await sync(id);
      expect((await devices(id)).total).to.equal(before);
      await sync(id);
      s = await status(id);
      expect(s.deviceSync.counts.deleted).to.equal(1);
      expect((await devices(id)).total).to.equal(before - 1);
    } finally {
      sim.state.data.devices.splice(idx, 0, victim);
    }
  });

  it('a failed sync (5xx, truncated page, expired credentials) deletes nothing and says nothing was changed', async () => {
    const { grandchild } = groupIds();
    const id = await create({ sync: { groups: [String(grandchild.id)], deviceDeletionAfterSyncs: 1, deviceDeletionThresholdPercent: 100 } });
    await sync(id);
    const n = (await devices(id)).total as number;
    for (const fault of [{ serverErrors: true }, { truncatePages: true }, { authExpired: true }]) {
      sim.state.faults = fault;
      await sync(id);
      const s = await status(id);
      expect(s.deviceSync.indicator, JSON.stringify(fault)).to.equal('red');
      expect(s.deviceSync.message).to.contain('nothing was changed');
      expect((await devices(id)).total).to.equal(n);
    }
    sim.state.faults = {};
    const s = await status(id);
    expect(s.uemServer.indicator).to.equal('red'); // the last failure was the credentials
  });

  it('429 with Retry-After is honoured: the sync waits and succeeds', async () => {
    const { grandchild } = groupIds();
    const id = await create({ sync: { groups: [String(grandchild.id)] } });
    sim.state.faults = { rateLimit: { retryAfterSeconds: 1, count: 1 } };
    const limitedBefore = sim.state.counters.rateLimited;
    const t0 = Date.now();
    await sync(id);
    expect(Date.now() - t0).to.be.at.least(1000);
    expect(sim.state.counters.rateLimited).to.equal(limitedBefore + 1);
    expect((await status(id)).deviceSync.indicator).to.equal('green');
  });

  it('tags are written once and not again when nothing changed', async () => {
    const { other } = groupIds();
    const id = await create({ sync: { groups: [String(other.id)] }, tagging: { deviceRisk: true, deviceStatus: true, prefix: 'ult' } });
    await sync(id);
    const list = (await devices(id)).devices as Json[];
    await api('PUT', `/devices/${list[0].id}/risk`, { risk: 'high', status: 'active' });
    await api('PUT', `/devices/${list[1].id}/risk`, { risk: 'high' });
    await sync(id);
    let t = (await status(id)).tagging;
    expect(t.indicator).to.equal('green');
    const tag = sim.state.data.tags.find((x) => x.name === 'ult_Risk_High')!;
    expect([...tag.devices.keys()].map(String).sort()).to.deep.equal([list[0].id, list[1].id].map((x: string) => x.split(':')[1]).sort());
    expect(sim.state.data.tags.find((x) => x.name === 'ult_Status_Active')!.devices.size).to.equal(1);
    const writes = sim.state.requests.filter((r) => r.method === 'POST' && /tags/.test(r.path)).length;
    await sync(id);
    t = (await status(id)).tagging;
    expect(t.counts.calls).to.equal(0);
    expect(sim.state.requests.filter((r) => r.method === 'POST' && /tags/.test(r.path)).length).to.equal(writes);
    // A risk that drops removes the device from the tag.
    await api('PUT', `/devices/${list[1].id}/risk`, { risk: 'none' });
    await sync(id);
    expect([...tag.devices.keys()].map(String)).to.deep.equal([list[0].id.split(':')[1]]);
  });

  it('policy groups: a UEM group named exactly after each active app policy holds the violating devices', async () => {
    const { other } = groupIds();
    const id = await create({ sync: { groups: [String(other.id)] } });
    await sync(id);
    const apps = (await api('GET', '/apps?pageSize=200')).body.apps as Json[];
    const target = apps.find((a) => a.devices >= 1)!;
    expect((await api('PUT', `/app-policies/${encodeURIComponent('Blacklisted by IT')}`, { active: true, apps: [target.id] })).status).to.equal(200);
    await sync(id);
    const s = await status(id);
    expect(s.policyGroups.indicator).to.equal('green');
    const group = sim.state.data.tags.find((t) => t.name === 'Blacklisted by IT');
    expect(group, 'a UEM group named after the policy').to.not.equal(undefined);
    const withApp = ((await api('GET', `/devices?integration=${id}&pageSize=1000&apps=1`)).body.devices as Json[]).filter((d) => d.apps.some((a: Json) => a.id === target.id)).map((d) => d.id.split(':')[1]);
    expect([...group!.devices.keys()].map(String).sort()).to.deep.equal(withApp.sort());
    await api('PUT', `/app-policies/${encodeURIComponent('Blacklisted by IT')}`, { active: false, apps: [target.id] });
    await sync(id);
    expect(group!.devices.size).to.equal(0);
    await api('DELETE', `/app-policies/${encodeURIComponent('Blacklisted by IT')}`);
  });

  it('Pause stops the schedule (status says paused), Sync Now while paused runs once and stays paused, Resume restarts it', async () => {
    const { grandchild } = groupIds();
    const id = await create({ sync: { groups: [String(grandchild.id)] } });
    expect((await api('POST', `/integrations/${id}/pause`)).body.paused).to.equal(true);
    let s = await status(id);
    expect(s.deviceSync.indicator).to.equal('gray');
    expect(s.deviceSync.message).to.match(/^paused/);
    // Both timers stop: App sync says so too (it stayed as its last run said, green as if it ran).
    expect(s.appSync.indicator).to.equal('gray');
    expect(s.appSync.message).to.match(/^paused \(last: /);
    // An admin's explicit Sync Now is honoured while paused (the seeds: "force an immediate device
    // sync"); the schedule stays stopped.
    const before = (await status(id)).deviceSync.lastRun;
    expect((await api('POST', `/integrations/${id}/sync?wait=1`)).body.sync).to.equal('done');
    s = await status(id);
    expect(s.deviceSync.lastRun).to.not.equal(before);
    expect(s.deviceSync.message).to.match(/^paused \(last: /);
    expect((await api('GET', `/integrations/${id}`)).body.paused).to.equal(true);
    expect((await api('POST', `/integrations/${id}/resume`)).body.paused).to.equal(false);
    // Resume schedules a sync at once.
    for (let i = 0; i < 100 && !(await status(id)).deviceSync.lastSuccess; i++) await sleep(100);
    s = await status(id);
    expect(s.deviceSync.indicator).to.equal('green');
    const r = await api('POST', `/integrations/${id}/sync`);
    expect(r.status).to.equal(202);
  });

  it('Remove cancels a running sync cleanly and deletes the integration\'s data', async () => {
    const { customer } = groupIds();
    const id = await create({ sync: { groups: [String(customer.id)] } });
    await sync(id);
    expect((await devices(id)).total).to.be.greaterThan(0);
    sim.state.faults = { latencyMs: 400 };
    void api('POST', `/integrations/${id}/sync`);
    await sleep(200);
    const t0 = Date.now();
    expect((await api('DELETE', `/integrations/${id}`)).status).to.equal(204);
    expect(Date.now() - t0).to.be.below(5000);
    expect((await api('GET', `/integrations/${id}`)).status).to.equal(404);
    const left = (await api('GET', '/devices?pageSize=1000')).body.devices as Json[];
    expect(left.some((d) => d.integration === id)).to.equal(false);
  });

  it('devices through the API: filtered by compliance, ordered by name or least recently seen first', async () => {
    const id = await create({ sync: { groups: [String(groupIds().customer.id)] } });
    expect((await sync(id)).status).to.equal(202);
    const all = (await devices(id)).devices as Json[];
    expect(all.length).to.be.greaterThan(10);
    const compliance = all[0]!.compliance as string;
    const filtered = (await api('GET', `/devices?integration=${id}&pageSize=1000&compliance=${encodeURIComponent(compliance)}`)).body;
    expect(filtered.total).to.equal(all.filter((d) => d.compliance === compliance).length);
    expect((filtered.devices as Json[]).every((d) => d.compliance === compliance)).to.equal(true);
    const stale = ((await api('GET', `/devices?integration=${id}&pageSize=1000&sort=lastSeen`)).body.devices as Json[]).map((d) => d.lastSeen as string | null);
    const expected = [...stale].sort((a, b) => (a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1));
    expect(stale).to.deep.equal(expected);
    expect(new Set(stale).size, 'the fleet has distinct last-seen times to order').to.be.greaterThan(1);
    const names = ((await api('GET', `/devices?integration=${id}&pageSize=1000&sort=name`)).body.devices as Json[]).map((d) => String(d.name ?? '').toLowerCase());
    expect(names).to.deep.equal([...names].sort());
  });

  it('a tenant key sees only its tenant; secrets never come back', async () => {
    const created = (await fetch(`http://127.0.0.1:${cloud.port}/api/v1/tenants/globex/api-keys`, { method: 'POST', headers: { authorization: `Bearer ${cloud.config.adminToken}` } }).then((r) => r.json())) as { key: string };
    const key = created.key;
    const r = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/tenants/acme/integrations`, { headers: { authorization: `Bearer ${key}` } });
    expect(r.status).to.equal(403);
    const direct = await api('POST', '/integrations', {
      vendor: 'workspace-one',
      displayName: 'direct',
      serverAddress: sim.url,
      auth: { type: 'basic', username: sim.credentials.username, password: sim.credentials.password, apiKey: sim.credentials.apiKey },
      selfSignedCertPem: sim.caPem,
      route: { via: 'direct' },
    });
    expect(direct.status).to.equal(201);
    made.push(direct.body.id);
    const text = JSON.stringify((await api('GET', `/integrations/${direct.body.id}`)).body);
    expect(text).to.not.contain(sim.credentials.password).and.not.contain(sim.credentials.apiKey);
    expect((await api('POST', `/integrations/${direct.body.id}/verify`)).body.ok).to.equal(true);
  });

  it('verify says which step fails: wrong credentials, untrusted certificate, no connector', async () => {
    const base = { vendor: 'workspace-one', displayName: 'v', serverAddress: sim.url, route: { via: 'direct' } };
    const badCreds = await api('POST', '/integrations', { ...base, auth: { type: 'basic', username: 'nobody', password: 'wrong-password', apiKey: sim.credentials.apiKey }, selfSignedCertPem: sim.caPem });
    made.push(badCreds.body.id);
    let v = (await api('POST', `/integrations/${badCreds.body.id}/verify`)).body;
    expect(v.failedStep).to.equal('credentials');
    const noCa = await api('POST', '/integrations', { ...base, auth: { type: 'basic', username: 'u', password: 'p', apiKey: 'k' } });
    made.push(noCa.body.id);
    v = (await api('POST', `/integrations/${noCa.body.id}/verify`)).body;
    expect(v.failedStep).to.equal('tls');
    expect(v.steps.find((s: Json) => s.id === 'tls').detail).to.contain('CN=');
    const noConn = await api('POST', '/integrations', { vendor: 'workspace-one', displayName: 'nc', route: { via: 'connector', group: 'nowhere', target: 'ws1' } });
    made.push(noConn.body.id);
    v = (await api('POST', `/integrations/${noConn.body.id}/verify`)).body;
    expect(v.failedStep).to.equal('connector');
    expect((await status(noConn.body.id)).uemServer.indicator).to.equal('red');
  });
});

describe('integrations: Ivanti EPMM and Hexnode through a connector; pushed targets', function () {
  this.timeout(60_000);
  let cloud: CloudServer;
  const sims: RunningSimulator[] = [];
  const stops: Array<() => Promise<void>> = [];

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
    const r = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/tenants/acme${path}`, {
      method,
      headers: { authorization: `Bearer ${cloud.config.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const t = await r.text();
    return { status: r.status, body: t ? JSON.parse(t) : null };
  }

  before(async () => {
    cloud = await startInprocCloud();
    for (const vendor of ['ivanti-epmm', 'hexnode'] as const) sims.push(await startSimulator({ vendor, listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir(`uemlink-${vendor}-`), devices: 120, seed: 3 }));
    const [epmm, hx] = sims as [RunningSimulator, RunningSimulator];
    const conn = await startInprocConnector(cloud, {
      targets: [
        { id: 'epmm', baseUrl: epmm.baseUrl, auth: { type: 'basic', username: epmm.credentials.username, password: epmm.credentials.password }, tls: { ca: epmm.caPem } },
        { id: 'hx', baseUrl: hx.baseUrl, auth: { type: 'apiKey', header: 'Authorization', value: hx.credentials.apiKey }, tls: { ca: hx.caPem } },
      ],
      extra: { cloudManagedTargets: { allowedHosts: ['127.0.0.1'] } },
    });
    stops.push(() => conn.daemon.shutdown());
  });
  after(async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
    await cloud.shutdown();
    for (const s of sims) await s.close();
  });

  for (const [vendor, target, kind] of [
    ['ivanti-epmm', 'epmm', 'label'],
    ['hexnode', 'hx', 'device-group'],
  ] as const) {
    it(`${vendor}: groups, a complete sync, tags written back once`, async () => {
      const created = await api('POST', '/integrations', { vendor, displayName: vendor, route: { via: 'connector', group: 'default', target }, sync: { deviceSyncIntervalMinutes: 60 } });
      expect(created.status, JSON.stringify(created.body)).to.equal(201);
      const id = created.body.id as string;
      stops.push(async () => void (await api('DELETE', `/integrations/${id}`)));
      expect((await api('POST', `/integrations/${id}/verify`)).body.ok).to.equal(true);
      const groups = (await api('GET', `/integrations/${id}/groups`)).body.groups as Json[];
      expect(groups.length).to.be.greaterThan(0);
      expect(groups.every((g) => g.kind === kind)).to.equal(true);
      const withMembers = groups.slice(0, 3).map((g) => g.id);
      expect((await api('PUT', `/integrations/${id}`, { sync: { groups: withMembers }, tagging: { deviceStatus: true } })).status).to.equal(200);
      await api('POST', `/integrations/${id}/sync?wait=1`);
      const s = (await api('GET', `/integrations/${id}/status`)).body;
      expect(s.deviceSync.indicator, s.deviceSync.message).to.equal('green');
      expect(s.deviceSync.counts.devices).to.be.greaterThan(0);
      expect(s.appSync.indicator, s.appSync.message).to.equal('green');
      expect(s.tagging.indicator, s.tagging.message).to.equal('green');
      const devs = (await api('GET', `/devices?integration=${id}&pageSize=5&apps=1`)).body.devices as Json[];
      expect(devs[0].platform).to.be.oneOf(['ios', 'android', 'windows', 'macos', 'other']);
      expect(devs.some((d) => d.apps.length > 0)).to.equal(true);
      await api('POST', `/integrations/${id}/sync?wait=1`);
      const again = (await api('GET', `/integrations/${id}/status`)).body;
      expect(again.tagging.counts.calls).to.equal(0);
      expect(again.deviceSync.counts.added + again.deviceSync.counts.updated).to.equal(0);
    });
  }

  it('a pushed target: the server details go to the connector (policy permitting) and the sync runs through it', async () => {
    const epmm = sims[0]!;
    const created = await api('POST', '/integrations', {
      vendor: 'ivanti-epmm',
      displayName: 'pushed',
      serverAddress: epmm.url,
      auth: { type: 'basic', username: epmm.credentials.username, password: epmm.credentials.password },
      selfSignedCertPem: epmm.caPem,
      route: { via: 'connector', group: 'default', push: true },
    });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    const id = created.body.id as string;
    stops.push(async () => void (await api('DELETE', `/integrations/${id}`)));
    let v: Json;
    for (let i = 0; i < 50; i++) {
      v = (await api('POST', `/integrations/${id}/verify`)).body;
      if (v.ok) break;
      await sleep(100);
    }
    expect(v.ok, JSON.stringify(v)).to.equal(true);
    const groups = (await api('GET', `/integrations/${id}/groups`)).body.groups as Json[];
    await api('PUT', `/integrations/${id}`, { sync: { groups: [groups[groups.length - 1].id] } });
    await api('POST', `/integrations/${id}/sync?wait=1`);
    expect((await api('GET', `/integrations/${id}/status`)).body.deviceSync.indicator).to.equal('green');
    // The pushed definition carried the credentials; the cloud's answer never does.
    expect(JSON.stringify((await api('GET', `/integrations/${id}`)).body)).to.not.contain(epmm.credentials.password);
  });
});
