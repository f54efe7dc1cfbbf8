/**
 * Review of the integration engine against docs/integrations.md and the vendor guides
 * (/work/shared/seeds). Each test here failed when written: it shows a behaviour the docs or the
 * guides promise and the engine did not deliver (kept as regression tests).
 */
import { expect } from 'chai';
import { Target } from '../../src/connector/targets/target.js';
import { appSync, deviceSync, resilientFetch } from '../../src/cloud/integrations/engine.js';
import { IntegrationsService } from '../../src/cloud/integrations/service.js';
import { InventoryDb } from '../../src/cloud/inventory/db.js';
import { UemError, type UemFetch } from '../../src/uem/adapter.js';
import { createWorkspaceOneAdapter } from '../../src/uem/adapters/workspace-one.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { targetFetch } from '../../src/uem/target-fetch.js';
import { tempDir } from '../helpers/procs.js';
import { integrationsService, jumpingClock, syncTarget } from '../helpers/integrations.js';

const it0 = syncTarget;

// ---- engine against the Workspace ONE simulator ----------------------------------------------------

describe('integration engine (found in review): device sync (Workspace ONE simulator)', function () {
  this.timeout(60_000);
  let sim: RunningSimulator<WorkspaceOneState>;
  let target: Target;
  let fetch: UemFetch;
  before(async () => {
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('engrev-ws1-'), devices: 120, seed: 5 });
    const c = sim.credentials;
    target = Target.resolve(
      { id: 't', baseUrl: sim.baseUrl, auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey, apiKeyHeader: 'aw-tenant-code' }, tls: { ca: sim.caPem }, timeoutMs: 10_000, maxConcurrent: 8, allow: [] } as any,
      { where: 't', origin: 'local' },
    );
    fetch = targetFetch(target);
  });
  after(async () => {
    target?.close();
    await sim?.close();
  });

  it('a device moved between two selected groups during a sync is not deleted (its verdict and Risk tag survive)', async () => {
    // Engineering (574) and Finance (575): two leaf organization groups, both selected.
    const [a, b] = [574, 575];
    const data = sim.state.data;
    const victim = data.devices.find((d) => d.LocationGroupId.Id.Value === b)!;
    expect(victim, 'a device in Finance').to.not.equal(undefined);
    const db = new InventoryDb(':memory:');
    const it = it0({ groups: [String(a), String(b)], deviceDeletionAfterSyncs: 1 });
    await deviceSync(it, createWorkspaceOneAdapter(fetch), db, jumpingClock(), new AbortController().signal);
    const vid = String(victim.Id.Value);
    expect(db.device(it.id, vid), 'stored after the first sync').to.not.equal(undefined);
    db.setVerdict(it.id, vid, { risk: 'high', threatFactors: ['Malware'] }, new Date().toISOString());
    // The admin moves the device from Finance to Engineering in the UEM console, right after the
    // sync has listed Engineering and before it lists Finance.
    let moved = false;
    const hooked: UemFetch = async (path, init) => {
      const res = await fetch(path, init);
      if (!moved && /mdm\/devices\/search/.test(path) && path.includes(`lgid=${a}&`)) {
        moved = true;
        victim.LocationGroupId.Id.Value = a;
      }
      return res;
    };
    try {
      await deviceSync(it, createWorkspaceOneAdapter(hooked), db, jumpingClock(), new AbortController().signal).catch((e) => expect(e).to.be.instanceOf(UemError));
      expect(moved).to.equal(true);
      const row = db.device(it.id, vid);
      // The device never left the selected groups: the inventory must not delete it (with it, the
      // cloud's verdict: it comes back next sync as risk "none", and the tag pass then takes its
      // Risk_High tag off in the UEM, lifting the compliance action on a high-risk device).
      expect(row, `device ${vid} (still in a selected group) was deleted by a sync that looked complete`).to.not.equal(undefined);
      expect(row!.risk).to.equal('high');
    } finally {
      victim.LocationGroupId.Id.Value = b;
    }
  });

  it('a Workspace ONE bulk lookup (POST /mdm/devices/id, a read) is retried after a 5xx like a GET', async () => {
    const db = new InventoryDb(':memory:');
    const it = it0({ groups: ['575'] });
    await deviceSync(it, createWorkspaceOneAdapter(fetch), db, jumpingClock(), new AbortController().signal);
    const ac = new AbortController();
    const rf = resilientFetch(fetch, { baseMs: 5, attempts: 3, maxRetryAfterMs: 1000, clock: jumpingClock(), signal: ac.signal });
    const before = sim.state.requests.length;
    sim.state.faults = { serverErrors: 1 }; // the app sync's first call: the bulk lookup
    try {
      const r = await appSync(it, createWorkspaceOneAdapter(rf), db, ac.signal);
      expect(r.devices).to.be.greaterThan(0);
      const posts = sim.state.requests.slice(before).filter((q) => /\/mdm\/devices\/id$/.test(q.path));
      expect(posts.length, 'the lookup sent again').to.be.greaterThan(1);
    } finally {
      sim.state.faults = {};
    }
  });
});

// ---- service (runner + engine) against the Workspace ONE simulator, direct route ------------------

describe('integration engine (found in review): statuses and policy groups (service, direct route)', function () {
  this.timeout(60_000);
  let sim: RunningSimulator<WorkspaceOneState>;
  let svc: IntegrationsService;
  let db: InventoryDb;
  const made: string[] = [];
  before(async () => {
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('engrev-svc-sim-'), devices: 120, seed: 5 });
    db = new InventoryDb(':memory:');
    svc = integrationsService({ db });
  });
  after(async () => {
    await svc?.stop();
    await sim?.close();
  });
  afterEach(async () => {
    sim.state.faults = {};
    for (const id of made.splice(0)) await svc.remove('acme', id).catch(() => {});
    for (const p of await svc.policies('acme')) await svc.deletePolicy('acme', p.name).catch(() => {});
  });

  const create = async (extra: Record<string, unknown> = {}): Promise<string> => {
    const c = sim.credentials;
    const rec = await svc.create('acme', {
      vendor: 'workspace-one',
      displayName: `ws1 ${Math.random().toString(36).slice(2, 6)}`,
      serverAddress: sim.url,
      selfSignedCertPem: sim.caPem,
      auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey },
      route: { via: 'direct' },
      ...extra,
    });
    made.push(rec.id);
    return rec.id;
  };
  const status = async (id: string) => (await svc.get('acme', id)).status;
  const sync = (id: string) => svc.syncAndWait('acme', id);

  it('tagging turned off: once its tags are emptied the Tagging indicator is gray ("tagging off"), not green for ever', async () => {
    const id = await create({ sync: { groups: ['575'] }, tagging: { deviceStatus: true } });
    await sync(id);
    expect((await status(id)).tagging.indicator).to.equal('green');
    const tag = sim.state.data.tags.find((t) => t.name === 'uemlink_Status_Provisioned');
    expect(tag && tag.devices.size, 'the status tag holds the devices').to.be.greaterThan(0);
    await svc.update('acme', id, { tagging: { deviceStatus: false } });
    await sync(id); // empties the tag (the docs: a tag whose switch is turned off is emptied)
    expect(tag!.devices.size).to.equal(0);
    await sync(id);
    const t = (await status(id)).tagging;
    expect(t.indicator, `tagging is off, yet: ${t.indicator} "${t.message}"`).to.equal('gray');
  });

  it('the last app policy deleted: once its group is emptied the Policy groups indicator is gray ("no app policies")', async () => {
    const id = await create({ sync: { groups: ['575'] } });
    await sync(id);
    const app = db.catalogue('acme', { page: 0, pageSize: 50 }).apps[0]!;
    await svc.putPolicy('acme', 'Blacklisted by IT', { active: true, apps: [app.id] });
    await sync(id);
    expect((await status(id)).policyGroups.indicator).to.equal('green');
    await svc.deletePolicy('acme', 'Blacklisted by IT');
    await sync(id); // empties the group
    expect(sim.state.data.tags.find((t) => t.name === 'Blacklisted by IT')!.devices.size).to.equal(0);
    await sync(id);
    const p = (await status(id)).policyGroups;
    expect(p.indicator, `no app policies, yet: ${p.indicator} "${p.message}"`).to.equal('gray');
  });

  it('an active app policy no device violates yet still has its UEM group (to attach compliance policies to)', async () => {
    const id = await create({ sync: { groups: ['575'] } });
    await sync(id);
    await svc.putPolicy('acme', 'No Games', { active: true, apps: ['com.example.not-installed-anywhere'] });
    await sync(id);
    const p = (await status(id)).policyGroups;
    expect(p.indicator).to.equal('green');
    expect(p.message).to.match(/^1 policy group up to date/);
    const group = sim.state.data.tags.find((t) => t.name === 'No Games');
    expect(group, `status says "${p.message}", but the UEM has no group named after the policy`).to.not.equal(undefined);
  });

  it('a deleted app policy whose name starts with the tag prefix has its group emptied like any other', async () => {
    const id = await create({ sync: { groups: ['575'] } });
    await sync(id);
    const app = db.catalogue('acme', { page: 0, pageSize: 50 }).apps[0]!;
    await svc.putPolicy('acme', 'uemlink_blocked_apps', { active: true, apps: [app.id] });
    await sync(id);
    const group = sim.state.data.tags.find((t) => t.name === 'uemlink_blocked_apps');
    expect(group && group.devices.size, 'the policy group holds the violating devices').to.be.greaterThan(0);
    await svc.deletePolicy('acme', 'uemlink_blocked_apps');
    await sync(id);
    await sync(id);
    expect(group!.devices.size, 'the deleted policy\'s group still holds its devices').to.equal(0);
  });

  it('turning a PII switch off while a device sync runs: the names that sync read are not stored afterwards', async () => {
    const id = await create({ sync: { groups: ['574', '575'] } });
    await sync(id);
    expect(db.listDevices('acme', { integrationId: id, page: 0, pageSize: 1000 }).devices.some((d) => d.name !== null)).to.equal(true);
    sim.state.faults = { latencyMs: 300 };
    const running = svc.syncAndWait('acme', id); // loads the settings with deviceName on
    await new Promise((r) => setTimeout(r, 100));
    await svc.update('acme', id, { sync: { pii: { deviceName: false } } }); // erases at once
    const afterEdit = db.listDevices('acme', { integrationId: id, page: 0, pageSize: 1000 }).devices.filter((d) => d.name !== null).length;
    await running;
    sim.state.faults = {};
    const named = db.listDevices('acme', { integrationId: id, page: 0, pageSize: 1000 }).devices.filter((d) => d.name !== null);
    expect(afterEdit, 'erased at once').to.equal(0);
    expect((await svc.get('acme', id)).sync.pii.deviceName).to.equal(false);
    expect(named.length, `device names stored with the switch off (e.g. "${named[0]?.name}"), until the next sync an hour later`).to.equal(0);
  });

  it('Sync Now while a device sync runs joins it: the UEM is not listed twice', async () => {
    const id = await create({ sync: { groups: ['575'] } });
    await sync(id);
    const listings = (): number => sim.state.requests.filter((r) => /\/mdm\/devices\/search$/.test(r.path)).length; // one page per listing of group 575
    sim.state.faults = { latencyMs: 200 };
    const before = listings();
    const first = svc.syncAndWait('acme', id);
    await new Promise((r) => setTimeout(r, 300)); // the device sync is under way
    await svc.syncAndWait('acme', id); // the admin presses Sync Now again
    await first;
    sim.state.faults = {};
    expect(listings() - before, 'device listings of the group for two overlapping Sync Nows').to.equal(1);
  });

  it('all groups deselected: the devices of the groups no longer selected leave the inventory, as when one of two is deselected', async () => {
    const id = await create({ sync: { groups: ['575'], deviceDeletionAfterSyncs: 1 } });
    await sync(id);
    expect(db.countDevices(id)).to.be.greaterThan(0);
    await svc.update('acme', id, { sync: { groups: [] } });
    await sync(id);
    await sync(id);
    const s = (await status(id)).deviceSync;
    expect(db.countDevices(id), `devices (with their PII) kept for good; Device sync: ${s.indicator} "${s.message}"`).to.equal(0);
  });

  it('a new integration with tagging switched on shows Tagging red (not yet complete), not gray "tagging is off"', async () => {
    const id = await create({ sync: { groups: ['575'] }, tagging: { deviceRisk: true, deviceStatus: true } });
    const t = (await status(id)).tagging;
    expect(t.indicator, `tagging is on, status: ${t.indicator} "${t.message}"`).to.equal('red');
    expect(t.message).to.not.match(/tagging is off/);
  });
});

describe('integration engine (found in review): the schedule after an edit (service, direct route)', function () {
  this.timeout(60_000);
  let sim: RunningSimulator<WorkspaceOneState>;
  let svc: IntegrationsService;
  let db: InventoryDb;
  before(async () => {
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('engrev-sched-sim-'), devices: 60, seed: 9 });
    db = new InventoryDb(':memory:');
    svc = integrationsService({ db, firstRunWithinMs: 200 }); // first runs within 0.2 s of a start (30 s in production)
  });
  after(async () => {
    await svc?.stop();
    await sim?.close();
  });

  it('groups chosen after the integration was created (the wizard: verify, then choose groups) are synced soon, not an interval later', async () => {
    const c = sim.credentials;
    const rec = await svc.create('acme', {
      vendor: 'workspace-one',
      displayName: 'ws1 wizard',
      serverAddress: sim.url,
      selfSignedCertPem: sim.caPem,
      auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey },
      route: { via: 'direct' },
    });
    await new Promise((r) => setTimeout(r, 1000)); // the first run found no groups
    expect((await svc.get('acme', rec.id)).status.deviceSync.message).to.match(/no groups selected/);
    const gid = String(sim.state.data.groups.find((g) => g.parentId !== null && sim.state.data.devices.some((d) => d.LocationGroupId.Id.Value === g.id))!.id);
    await svc.update('acme', rec.id, { sync: { groups: [gid] } });
    for (let i = 0; i < 50 && db.countDevices(rec.id) === 0; i++) await new Promise((r) => setTimeout(r, 100));
    const s = (await svc.get('acme', rec.id)).status.deviceSync;
    expect(db.countDevices(rec.id), `5 s after choosing groups nothing is synced; Device sync: ${s.indicator} "${s.message}" (next run in 60 minutes)`).to.be.greaterThan(0);
  });
});
