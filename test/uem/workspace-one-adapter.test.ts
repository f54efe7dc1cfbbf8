import { expect } from 'chai';
import { Target } from '../../src/connector/targets/target.js';
import { UemError, type UemDevice, type UemFetch, type UemGroup } from '../../src/uem/adapter.js';
import { createWorkspaceOneAdapter, normalizeTime, type WorkspaceOneAdapterOptions } from '../../src/uem/adapters/workspace-one.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import { NEVER, type WsDevice } from '../../src/uem/simulator/workspace-one-data.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { targetFetch } from '../../src/uem/target-fetch.js';
import { tempDir } from '../helpers/procs.js';
import { rejectionOf } from '../helpers/rejection.js';

/** The direct route to the simulator (the one the cloud uses without a connector). */
function simTarget(sim: RunningSimulator): Target {
  const c = sim.credentials;
  return Target.resolve(
    {
      id: 't',
      baseUrl: sim.baseUrl,
      auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey, apiKeyHeader: 'aw-tenant-code' },
      tls: { ca: sim.caPem },
      timeoutMs: 10_000,
      maxConcurrent: 8,
      allow: [],
    } as any,
    { where: 't', origin: 'local' },
  );
}

async function collect(it: AsyncIterable<{ devices: UemDevice[] }>): Promise<{ devices: UemDevice[]; pages: number }> {
  const devices: UemDevice[] = [];
  let pages = 0;
  for await (const p of it) {
    pages++;
    devices.push(...p.devices);
  }
  return { devices, pages };
}

const rejection = (p: Promise<unknown>): Promise<UemError> => rejectionOf(p, UemError);

const og = (id: number): UemGroup => ({ id: String(id), name: `og ${id}`, kind: 'organization', parentId: null });

describe('Workspace ONE adapter (against the simulator)', function () {
  this.timeout(30_000);
  const DEVICES = 437;
  let sim: RunningSimulator<WorkspaceOneState>;
  let target: Target;
  let fetch: UemFetch;
  const adapter = (o: WorkspaceOneAdapterOptions = {}) => createWorkspaceOneAdapter(fetch, o);
  const calls = (pathPart: string, method = 'GET') => sim.state.requests.filter((r) => r.method === method && r.path.toLowerCase().includes(pathPart.toLowerCase())).length;

  before(async () => {
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-ws1-adapter-'), devices: DEVICES, seed: 42 });
    target = simTarget(sim);
    fetch = targetFetch(target);
  });
  after(async () => {
    target?.close();
    await sim?.close();
  });
  beforeEach(() => {
    sim.state.faults = {};
    sim.state.clearRequestLog();
  });

  it('pings with an authenticated call', async () => {
    await adapter().ping();
    expect(calls('/API/system/info')).to.equal(1);
  });

  it('lists organization groups with their parents, and smart groups', async () => {
    const groups = await adapter().groups();
    const ogs = groups.filter((g) => g.kind === 'organization');
    const parentOf = Object.fromEntries(ogs.map((g) => [g.id, g.parentId]));
    expect(parentOf).to.deep.equal({ '570': null, '571': '570', '574': '571', '575': '571', '572': '570', '573': '570', '576': '573', '577': '573', '578': '570' });
    expect(ogs.find((g) => g.id === '570')!.name).to.equal('Acme Corp');
    const smart = groups.filter((g) => g.kind === 'smart');
    expect(smart.map((g) => g.name)).to.include.members(['All Devices', 'Android Devices', 'Sales Laptops', 'Retail Store Devices']);
    expect(smart).to.have.length(sim.state.data.smartGroups.length);
    expect(smart.every((g) => g.parentId === null && /^sg:\d+$/.test(g.id))).to.equal(true);
    // One children call gives the whole tree: no call per group.
    expect(calls('/children')).to.equal(1);
  });

  it("lists every device of an organization group exactly once, and none of its children's", async () => {
    const a = adapter();
    const seen = new Map<string, string>();
    for (const g of sim.state.data.groups) {
      const { devices } = await collect(a.devicesInGroup(og(g.id)));
      const direct = sim.state.data.devices.filter((d) => d.LocationGroupId.Id.Value === g.id);
      expect(devices.map((d) => d.id).sort(), `group ${g.id}`).to.deep.equal(direct.map((d) => String(d.Id.Value)).sort());
      for (const d of devices) {
        expect(seen.has(d.id), `device ${d.id} listed in ${seen.get(d.id)} and ${g.id}`).to.equal(false);
        seen.set(d.id, String(g.id));
      }
    }
    expect(seen.size).to.equal(DEVICES);
    // Corporate (571) has devices of its own and Engineering/Finance below it: only its own count.
    const corp = await collect(a.devicesInGroup(og(571)));
    expect(corp.devices.length).to.be.greaterThan(0);
    expect(corp.devices.length).to.be.lessThan(sim.state.data.devices.filter((d) => sim.state.data.isWithin(d.LocationGroupId.Id.Value, 571)).length);
  });

  it('pages with a tiny page size, stops at the end, and gets the same devices', async () => {
    const big = await collect(adapter().devicesInGroup(og(572)));
    sim.state.clearRequestLog();
    const small = await collect(adapter({ pageSize: 7 }).devicesInGroup(og(572)));
    expect(small.devices.map((d) => d.id)).to.deep.equal(big.devices.map((d) => d.id));
    const inSubtree = sim.state.data.devices.filter((d) => sim.state.data.isWithin(d.LocationGroupId.Id.Value, 572)).length;
    expect(calls('/mdm/devices/search')).to.equal(Math.ceil(inSubtree / 7));
    expect(small.pages).to.be.greaterThan(5);
    const asked = sim.state.requests.filter((r) => r.path.toLowerCase().endsWith('/mdm/devices/search'));
    expect(asked.every((r) => /(^|&)pagesize=7(&|$)/.test(r.query) && /lgid=572/.test(r.query))).to.equal(true);
  });

  it('normalizes device fields: platforms, owners, enrollment, compliance, UTC and "never" timestamps', async () => {
    const all: UemDevice[] = [];
    for (const g of sim.state.data.groups) all.push(...(await collect(adapter().devicesInGroup(og(g.id)))).devices);
    const raw = new Map(sim.state.data.devices.map((d) => [String(d.Id.Value), d] as const));
    const platforms: Record<string, string> = { Apple: 'ios', AppleOsX: 'macos', Android: 'android', WinRT: 'windows' };
    for (const d of all) {
      const r: WsDevice = raw.get(d.id)!;
      expect(d).to.deep.equal({
        id: String(r.Id.Value),
        udid: r.Udid,
        serial: r.SerialNumber,
        name: r.DeviceFriendlyName,
        phone: r.PhoneNumber === '' ? null : r.PhoneNumber,
        ownerEmail: r.UserEmailAddress,
        ownerName: r.UserName,
        platform: platforms[r.Platform],
        os: r.OperatingSystem,
        model: r.Model,
        enrollment: r.EnrollmentStatus.toLowerCase(),
        compliance: r.ComplianceStatus === 'Compliant' ? 'compliant' : r.ComplianceStatus === 'NonCompliant' ? 'noncompliant' : null,
        lastSeen: r.LastSeen === NEVER ? null : new Date(Date.parse(`${r.LastSeen}Z`)).toISOString(),
      });
    }
    expect(new Set(all.map((d) => d.platform))).to.have.all.keys('ios', 'macos', 'android', 'windows');
    expect(all.some((d) => d.lastSeen === null && d.enrollment === 'registered')).to.equal(true);
    expect(all.some((d) => d.phone === null)).to.equal(true);
    expect(normalizeTime('2021-06-28T04:35:20.150')).to.equal('2021-06-28T04:35:20.150Z');
    expect(normalizeTime('2021-06-28T06:35:20.150+02:00')).to.equal('2021-06-28T04:35:20.150Z');
    expect(normalizeTime(NEVER)).to.equal(null);
  });

  it('lists smart group devices (full records) through the member list and the bulk lookup', async () => {
    const a = adapter({ pageSize: 9 });
    const groups = await a.groups();
    for (const name of ['Sales Laptops', 'Android Devices', 'Retail Store Devices']) {
      const g = groups.find((x) => x.kind === 'smart' && x.name === name)!;
      const sg = sim.state.data.smartGroups.find((s) => s.name === name)!;
      const want = sim.state.data.devices.filter((d) => d.EnrollmentStatus === 'Enrolled' && sg.matches(d)).map((d) => String(d.Id.Value));
      sim.state.clearRequestLog();
      const { devices, pages } = await collect(a.devicesInGroup(g));
      expect(devices.map((d) => d.id).sort(), name).to.deep.equal([...want].sort());
      expect(pages).to.equal(Math.ceil(want.length / 9));
      expect(calls('/mdm/devices/id', 'POST')).to.equal(pages);
      expect(devices.every((d) => d.serial !== null && d.enrollment === 'enrolled')).to.equal(true);
    }
    const android = await collect(a.devicesInGroup(groups.find((x) => x.name === 'Android Devices')!));
    expect(android.devices.every((d) => d.platform === 'android')).to.equal(true);
    const missing = await rejection(collect(a.devicesInGroup({ id: '999', name: 'gone', kind: 'smart', parentId: null })));
    expect(missing.kind).to.equal('not_found');
  });

  it('reads app inventories, paging through them, one call per device with bounded concurrency', async () => {
    let inFlight = 0;
    let most = 0;
    const counting: UemFetch = async (path, init) => {
      inFlight++;
      most = Math.max(most, inFlight);
      try {
        return await fetch(path, init);
      } finally {
        inFlight--;
      }
    };
    const a = createWorkspaceOneAdapter(counting, { pageSize: 3 });
    const data = sim.state.data;
    const picked = data.devices.slice(0, 40);
    const devices = picked.map((d) => ({ id: String(d.Id.Value) }) as UemDevice);
    const apps = await a.apps(devices);
    expect([...apps.keys()]).to.deep.equal(devices.map((d) => d.id));
    for (const d of picked) {
      const want = data
        .appsFor(d)
        .filter((x) => x.installed_status === 'Installed')
        .map((x) => ({ id: x.bundle_id, name: x.name, version: x.installed_version }));
      expect(apps.get(String(d.Id.Value)), `device ${d.Id.Value}`).to.deep.equal(want);
    }
    const registered = picked.find((d) => d.EnrollmentStatus === 'Registered');
    if (registered) expect(apps.get(String(registered.Id.Value))).to.deep.equal([]);
    expect(most).to.be.at.most(16).and.at.least(2); // appConcurrency
    expect(calls('/apps/search')).to.be.greaterThan(picked.length); // several pages of 3 per device
    expect((await a.apps([])).size).to.equal(0);
  });

  it('ensures tags by exact name (created once at the customer group), and finds existing ones', async () => {
    const a = adapter();
    const vip = await a.ensureTagGroup('VIP');
    expect(vip).to.equal('10000');
    const high = await a.ensureTagGroup('uemlink_Risk_High');
    const tag = sim.state.data.tag(Number(high))!;
    expect(tag).to.include({ name: 'uemlink_Risk_High', locationGroupId: 570 });
    expect(await a.ensureTagGroup('uemlink_Risk_High')).to.equal(high);
    // "uemlink_Risk" is part of "uemlink_Risk_High": the partial name filter finds that one; not the same tag.
    const risk = await a.ensureTagGroup('uemlink_Risk');
    expect(risk).to.not.equal(high);
    expect(await a.ensureTagGroup('uemlink_Risk')).to.equal(risk);
    expect(calls('/mdm/tags/addtag', 'POST')).to.equal(2);
    // Concurrent ensures of one name create it once; another adapter finds it.
    const [x, y] = await Promise.all([a.ensureTagGroup('uemlink_Risk_Low'), a.ensureTagGroup('uemlink_Risk_Low')]);
    expect(x).to.equal(y);
    expect(await adapter().ensureTagGroup('uemlink_Risk_Low')).to.equal(x);
    expect(calls('/mdm/tags/addtag', 'POST')).to.equal(3);
    // The prefix goes in front of every name.
    const pre = await adapter({ tagPrefix: 'CHKP_' }).ensureTagGroup('Status_Active');
    expect(sim.state.data.tag(Number(pre))!.name).to.equal('CHKP_Status_Active');
  });

  it('adds, lists and removes tag members, idempotently', async () => {
    const a = adapter();
    const id = await a.ensureTagGroup('uemlink_Members');
    expect(await a.tagGroupMembers(id, 'uemlink_Members')).to.deep.equal([]); // 204
    const some = sim.state.data.devices.slice(10, 25).map((d) => String(d.Id.Value));
    await a.addToTagGroup(id, 'uemlink_Members', some);
    expect((await a.tagGroupMembers(id, 'uemlink_Members')).sort()).to.deep.equal([...some].sort());
    await a.addToTagGroup(id, 'uemlink_Members', some.slice(0, 5)); // already tagged: fine
    await a.removeFromTagGroup(id, 'uemlink_Members', some.slice(0, 10));
    expect((await a.tagGroupMembers(id, 'uemlink_Members')).sort()).to.deep.equal(some.slice(10).sort());
    await a.removeFromTagGroup(id, 'uemlink_Members', some.slice(0, 10)); // not tagged any more: fine
    await a.addToTagGroup(id, 'uemlink_Members', []);
    expect(sim.state.requests.filter((r) => r.path.endsWith('/adddevices')).length).to.equal(2);

    // A device deleted in the console since the last sync: left out, not a failure of the others.
    await a.addToTagGroup(id, 'uemlink_Members', ['1']);
    expect(await a.tagGroupMembers(id, 'uemlink_Members')).to.not.include('1');
    // Front Desk (10003) is defined at Store 001: a BYOD device is outside it.
    const byod = sim.state.data.devices.find((d) => d.LocationGroupId.Id.Value === 578)!;
    const outside = await rejection(a.addToTagGroup('10003', 'Front Desk', [String(byod.Id.Value)]));
    expect(outside.kind).to.equal('protocol');
    const noTag = await rejection(a.tagGroupMembers('99999', 'gone'));
    expect(noTag.kind).to.equal('not_found');
  });

  it('treats "already tagged" faults as success and other faults as errors', async () => {
    const answer = (faults: Array<{ ItemValue: string; ErrorCode: number; Message: string }>, total: number): UemFetch => async () =>
      new Response(JSON.stringify({ TotalItems: total, AcceptedItems: total - faults.length, FailedItems: faults.length, Faults: { Fault: faults } }), { status: 200, headers: { 'content-type': 'application/json' } });
    await createWorkspaceOneAdapter(answer([{ ItemValue: '5001', ErrorCode: 400, Message: 'Device is already tagged.' }], 2)).addToTagGroup('1', 't', ['5001', '5002']);
    const bad = await rejection(createWorkspaceOneAdapter(answer([{ ItemValue: '5001', ErrorCode: 403, Message: 'Access denied.' }], 2)).addToTagGroup('1', 't', ['5001', '5002']));
    expect(bad.kind).to.equal('protocol');
    const miscounted = await rejection(createWorkspaceOneAdapter(answer([], 1)).addToTagGroup('1', 't', ['5001', '5002']));
    expect(miscounted.kind).to.equal('protocol');
  });

  it('answers 204s as nothing: an empty fleet has groups but no devices', async () => {
    const empty = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-ws1-adapter-empty-'), devices: 0, seed: 1 });
    const t = simTarget(empty);
    try {
      const a = createWorkspaceOneAdapter(targetFetch(t));
      const groups = await a.groups();
      expect(groups.filter((g) => g.kind === 'organization')).to.have.length(9);
      for (const g of groups) expect((await collect(a.devicesInGroup(g))).devices, g.name).to.deep.equal([]);
      expect(empty.state.requests.some((r) => r.status === 204 && r.path.endsWith('/mdm/devices/search'))).to.equal(true);
      expect(empty.state.requests.some((r) => r.status === 204 && r.path.endsWith('/devices') && r.path.includes('smartgroups'))).to.equal(true);
    } finally {
      t.close();
      await empty.close();
    }
  });
});
