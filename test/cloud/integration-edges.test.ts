/**
 * The integration engine and adapters at their edges (found in review): lists that change while
 * they are paged, devices the UEM removed, vendor throttling, tag baselines, PII switches.
 */
import { expect } from 'chai';
import type { Clock } from '../../src/common/clock.js';
import { Target } from '../../src/connector/targets/target.js';
import { appSync, describeError, deviceSync, resilientFetch, tagging } from '../../src/cloud/integrations/engine.js';
import { DEFAULT_SYNC, DEFAULT_TAGGING } from '../../src/cloud/integrations/model.js';
import { InventoryDb } from '../../src/cloud/inventory/db.js';
import { InventoryStorageError, storageError } from '../../src/cloud/inventory/errors.js';
import { join } from 'node:path';
import { capturingLogger } from '../helpers/logs.js';
import { IntegrationRunner } from '../../src/cloud/integrations/runner.js';
import { silentLogger } from '../../src/common/log.js';
import { UemError, type UemAdapter, type UemDevice, type UemFetch, type UemGroup } from '../../src/uem/adapter.js';
import { createHexnodeAdapter, throttleWaitMs } from '../../src/uem/adapters/hexnode.js';
import { createWorkspaceOneAdapter } from '../../src/uem/adapters/workspace-one.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { targetFetch } from '../../src/uem/target-fetch.js';
import { tempDir } from '../helpers/procs.js';
import { bareIntegration, jumpingClock, syncTarget } from '../helpers/integrations.js';

function simTarget(sim: RunningSimulator, auth: unknown): Target {
  return Target.resolve({ id: 't', baseUrl: sim.baseUrl, auth, tls: { ca: sim.caPem }, timeoutMs: 10_000, maxConcurrent: 8, allow: [] } as any, { where: 't', origin: 'local' });
}

const it0 = syncTarget;

describe('integration edges: Workspace ONE (simulator)', function () {
  this.timeout(60_000);
  let sim: RunningSimulator<WorkspaceOneState>;
  let target: Target;
  let fetch: UemFetch;
  before(async () => {
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('review-ws1-'), devices: 437, seed: 42 });
    const c = sim.credentials;
    target = simTarget(sim, { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey, apiKeyHeader: 'aw-tenant-code' });
    fetch = targetFetch(target);
  });
  after(async () => {
    target?.close();
    await sim?.close();
  });

  const removeDevice = (id: number): void => {
    const data = sim.state.data as any;
    const i = data.devices.findIndex((d: any) => d.Id.Value === id);
    const d = data.devices[i];
    data.devices.splice(i, 1);
    data.deviceIndex.delete(id);
    data.deviceUuidIndex.delete(d.Uuid.toLowerCase());
  };

  it('app sync still reads the other devices when one stored device was deleted in the UEM (pending deletion)', async () => {
    const db = new InventoryDb(':memory:');
    const it = it0({ groups: ['570'], deviceDeletionAfterSyncs: 3 });
    const adapter = createWorkspaceOneAdapter(fetch);
    const ac = new AbortController();
    await deviceSync(it, adapter, db, jumpingClock(), ac.signal);
    const ids = db.deviceIds(it.id);
    expect(ids.length).to.be.greaterThan(5);
    // The admin deletes one device in the UEM; the next device sync keeps it (missing 1 of 3).
    removeDevice(Number(ids[0]));
    const r = await deviceSync(it, adapter, db, jumpingClock(), ac.signal);
    expect(r.counts.pendingDeletion).to.equal(1);
    // Expected: the app sync reads every other device's apps (EPMM and Hexnode leave the gone one out).
    let err: unknown;
    const got = await appSync(it, adapter, db, ac.signal).catch((e) => {
      err = e;
      return undefined;
    });
    expect(err, `app sync failed: ${String((err as Error)?.message)}`).to.equal(undefined);
    expect(got!.devices).to.equal(ids.length);
  });

  it('a device moved out of the group between two pages does not make another, unchanged device vanish', async () => {
    const db = new InventoryDb(':memory:');
    const gid = 572; // Sales: a leaf group, so every listed device is a direct member
    const it = it0({ groups: [String(gid)] });
    // Small pages so the group spans several.
    const members = () => sim.state.data.devices.filter((d) => d.LocationGroupId.Id.Value === gid);
    const before = members().map((d) => String(d.Id.Value));
    expect(before.length).to.be.greaterThan(10);
    let moved: any;
    const hooked: UemFetch = async (path, init) => {
      const res = await fetch(path, init);
      if (!moved && /mdm\/devices\/search/.test(path) && /page=0&/.test(path)) {
        // Right after page 0 was served, the first device of the subtree moves to another customer
        // subtree... (here: out of 570's subtree is impossible, so delete it instead, as an admin would).
        moved = sim.state.data.devices.filter((d) => sim.state.data.isWithin(d.LocationGroupId.Id.Value, gid))[0];
        removeDevice(moved.Id.Value);
      }
      return res;
    };
    // A first, quiet sync stores the whole group.
    await deviceSync(it, createWorkspaceOneAdapter(fetch, { pageSize: 5 }), db, jumpingClock(), new AbortController().signal);
    expect(db.deviceIds(it.id).length).to.equal(before.length);
    const adapter = createWorkspaceOneAdapter(hooked, { pageSize: 5 });
    await deviceSync(it, adapter, db, jumpingClock(), new AbortController().signal).catch((e) => {
      // Failing the sync (as Hexnode's adapter does on a changed count) would be fine too.
      expect(e).to.be.instanceOf(UemError);
    });
    const stored = new Set(db.deviceIds(it.id));
    const stillThere = members().map((d) => String(d.Id.Value));
    const lost = stillThere.filter((id) => !stored.has(id));
    expect(lost, `devices still in the UEM group but deleted from the inventory: ${lost.join(',')}`).to.deep.equal([]);
  });
});

describe('integration edges: Hexnode 429 without Retry-After (the wait is in the body)', function () {
  this.timeout(60_000);
  it('waits as long as the vendor says (<= 120 s) instead of failing after ~7 s of backoff', async () => {
    const clock = jumpingClock();
    const sim = await startSimulator({ vendor: 'hexnode', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('review-hx-'), devices: 10, seed: 1, quotaPerMinute: 3, clock });
    const target = simTarget(sim, { type: 'apiKey', header: 'Authorization', value: sim.credentials.apiKey, prefix: '' });
    try {
      const f = resilientFetch(targetFetch(target), { signal: new AbortController().signal, clock, baseMs: 1000, attempts: 4, maxRetryAfterMs: 120_000, throttleWait: throttleWaitMs });
      const adapter = createHexnodeAdapter(f);
      let err: unknown;
      try {
        for (let i = 0; i < 6; i++) await adapter.groups();
      } catch (e) {
        err = e;
      }
      expect(err, `failed: ${String((err as Error)?.message)}; waits were ${clock.slept.join(', ')} ms`).to.equal(undefined);
      expect(Math.max(...clock.slept), 'waited what the body said (about a minute)').to.be.above(30_000);
    } finally {
      target.close();
      await sim.close();
    }
  });
});

// ---- tag write-back with a fake adapter ------------------------------------------------------------

function fakeAdapter(members: Map<string, Set<string>>, opts: { failMembersOnce?: boolean } = {}): UemAdapter & { log: string[] } {
  const log: string[] = [];
  let fail = opts.failMembersOnce ?? false;
  return {
    vendor: 'workspace-one',
    log,
    async ping() {},
    async groups() {
      return [];
    },
    devicesInGroup(): AsyncIterable<{ devices: UemDevice[] }> {
      return (async function* () {})();
    },
    async apps() {
      return new Map();
    },
    async ensureTagGroup(name) {
      if (!members.has(name)) members.set(name, new Set());
      return `id-${name}`;
    },
    async tagGroupMembers(_id, name) {
      if (fail) {
        fail = false;
        throw new UemError('unavailable', 'members: HTTP 503');
      }
      return [...(members.get(name) ?? [])];
    },
    async addToTagGroup(_id, name, ids) {
      log.push(`add ${name} ${ids.join(',')}`);
      for (const d of ids) members.get(name)!.add(d);
    },
    async removeFromTagGroup(_id, name, ids) {
      log.push(`remove ${name} ${ids.join(',')}`);
      for (const d of ids) members.get(name)!.delete(d);
    },
  };
}

const dev = (id: string): UemDevice => ({ id, udid: null, serial: null, name: null, phone: null, ownerEmail: null, ownerName: null, platform: 'ios', os: null, model: null, enrollment: 'enrolled', compliance: 'compliant', lastSeen: null });

function listAdapter(base: UemAdapter, lists: () => UemDevice[]): UemAdapter {
  const g: UemGroup = { id: 'g1', name: 'g1', kind: 'organization', parentId: null };
  return {
    ...base,
    async groups() {
      return [g];
    },
    devicesInGroup() {
      const l = lists();
      return (async function* () {
        yield { devices: l };
      })();
    },
  };
}

describe('integration edges: tag write-back', () => {
  it('the first use of a tag reads what the UEM holds even if that read failed the first time', async () => {
    const db = new InventoryDb(':memory:');
    const it = it0({ groups: ['g1'] }, { deviceRisk: true });
    // The UEM already has d2 in uemlink_Risk_High (an earlier install, or a restored database).
    const uem = new Map([['uemlink_Risk_High', new Set(['d2'])]]);
    const base = fakeAdapter(uem, { failMembersOnce: true });
    const a = listAdapter(base, () => [dev('d1'), dev('d2')]);
    const signal = new AbortController().signal;
    await deviceSync(it, a, db, jumpingClock(), signal);
    db.setVerdict(it.id, 'd1', { risk: 'high' }, new Date().toISOString());
    await tagging(it, a, db, signal).catch(() => undefined); // members read fails: pass fails
    await tagging(it, a, db, signal); // next pass
    expect([...uem.get('uemlink_Risk_High')!].sort()).to.deep.equal(['d1']);
  });

  it('a device that leaves the inventory and comes back does not keep a tag its verdict no longer has', async () => {
    const db = new InventoryDb(':memory:');
    const it = it0({ groups: ['g1'] }, { deviceRisk: true });
    const uem = new Map<string, Set<string>>();
    let list = [dev('d1'), dev('d2')];
    const a = listAdapter(fakeAdapter(uem), () => list);
    const signal = new AbortController().signal;
    const clock = jumpingClock();
    await deviceSync(it, a, db, clock, signal);
    db.setVerdict(it.id, 'd1', { risk: 'high' }, new Date().toISOString());
    await tagging(it, a, db, signal);
    expect([...uem.get('uemlink_Risk_High')!]).to.deep.equal(['d1']);
    // d1 is missing from one complete sync (moved to another OG, a flapping list): deleted here...
    list = [dev('d2')];
    await deviceSync(it, a, db, clock, signal);
    await tagging(it, a, db, signal);
    // ...and comes back: a new row, risk "none".
    list = [dev('d1'), dev('d2')];
    await deviceSync(it, a, db, clock, signal);
    await tagging(it, a, db, signal);
    expect(db.device(it.id, 'd1')!.risk).to.equal('none');
    expect([...(uem.get('uemlink_Risk_High') ?? [])], 'UEM still tags d1 Risk_High').to.deep.equal([]);
  });
});


describe('integration edges: Ivanti EPMM paging while a label changes', function () {
  this.timeout(60_000);
  it('a device removed from the label between two pages does not make another member vanish', async () => {
    const sim = await startSimulator({ vendor: 'ivanti-epmm', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('review-epmm-'), devices: 300, seed: 7 });
    const c = sim.credentials;
    const target = simTarget(sim, { type: 'basic', username: c.username, password: c.password });
    try {
      const data = (sim.state as any).data;
      const label = data.labels.find((l: any) => !l.predicate && l.members.size > 12);
      expect(label, 'a static label with members').to.not.equal(undefined);
      // Also make it the integration's only group; a static label: members in common.id order.
      const members = (): string[] => data.members(label).map((d: any) => d['common.uuid']);
      const db = new InventoryDb(':memory:');
      const it = it0({ groups: [String(label.id)] }, {}, 'ivanti-epmm');
      const base = targetFetch(target);
      const { createIvantiEpmmAdapter } = await import('../../src/uem/adapters/ivanti-epmm.js');
      await deviceSync(it, createIvantiEpmmAdapter(base, { pageSize: 5 }), db, jumpingClock(), new AbortController().signal);
      expect(db.deviceIds(it.id).length).to.equal(members().length);
      let done = false;
      const hooked: UemFetch = async (path, init) => {
        const res = await base(path, init);
        if (!done && /^\/devices\?/.test(path) && /offset=0(&|$)/.test(path) && path.includes(`labelId=${label.id}`)) {
          done = true;
          data.applyLabel(label.name, [members()[0]], 'remove');
        }
        return res;
      };
      await deviceSync(it, createIvantiEpmmAdapter(hooked, { pageSize: 5 }), db, jumpingClock(), new AbortController().signal).catch((e) => expect(e).to.be.instanceOf(UemError));
      const stored = new Set(db.deviceIds(it.id));
      const lost = members().filter((u) => !stored.has(u));
      expect(lost, 'members still in the label but deleted from the inventory').to.deep.equal([]);
    } finally {
      target.close();
      await sim.close();
    }
  });
});

describe('integration edges: a PII switch turned off, then on again before a sync', () => {
  it('the next sync restores the device names it erased', async () => {
    const db = new InventoryDb(':memory:');
    const it = it0({ groups: ['g1'] });
    const named = { ...dev('d1'), name: 'jsmith iPhone' };
    const a = listAdapter(fakeAdapter(new Map()), () => [named]);
    const signal = new AbortController().signal;
    await deviceSync(it, a, db, jumpingClock(), signal);
    // Admin turns deviceName off (service.update erases at once) and on again.
    db.erasePii(it.id, { name: true, phone: false, email: false }, () => 'x');
    await deviceSync(it, a, db, jumpingClock(), signal);
    expect(db.device(it.id, 'd1')!.name).to.equal('jsmith iPhone');
  });
});

describe('integration edges: status text from UEM errors', () => {
  it('is redacted where it is made: a UEM echoing a credential does not show it in statuses or Verify', () => {
    const e = new UemError('auth', 'HTTP 401: invalid header "Authorization: Basic c3ZjOmh1bnRlcjI=" for https://svc:hunter2@uem.corp/API');
    const text = describeError(e);
    expect(text).to.not.contain('c3ZjOmh1bnRlcjI=').and.not.contain('hunter2');
    expect(text).to.contain('HTTP 401').and.contain('check the credentials');
  });
});

describe('integration edges: the runner reports a failure on the job that failed', () => {
  it("an app job's unexpected failure turns App sync red, not Device sync (found in review)", async () => {
    const patches: Array<Record<string, { indicator: string; message: string }>> = [];
    const rec = bareIntegration('int_runner');
    const runner = new IntegrationRunner('int_runner', {
      clock: jumpingClock(),
      logger: silentLogger(),
      db: new InventoryDb(':memory:'),
      load: async () => rec as never,
      adapterFor: async () => listAdapter(fakeAdapter(new Map()), () => []),
      policies: async () => {
        throw new Error('the policy store is unavailable');
      },
      saveStatus: async (_id, patch) => void patches.push(patch as never),
    });
    await runner.syncNow();
    await runner.stop();
    const app = patches.filter((p) => p.appSync).map((p) => p.appSync!.indicator);
    expect(app.at(-1)).to.equal('red');
    expect(patches.filter((p) => p.deviceSync).every((p) => p.deviceSync!.indicator !== 'red'), 'Device sync is not blamed').to.equal(true);
  });
});

describe('integration edges: the inventory cannot be written', () => {
  it('a full disk fails the device sync naming the file in the log, not in the tenant\'s status; nothing of the sync is stored', async () => {
    const dir = tempDir('inv-full-');
    const db = InventoryDb.open(dir);
    const { logger, lines } = capturingLogger();
    const patches: Array<Record<string, { indicator: string; message: string }>> = [];
    const rec = { ...bareIntegration('int_full'), sync: { ...DEFAULT_SYNC, pii: { ...DEFAULT_SYNC.pii }, groups: ['g1'] } };
    let devices = [dev('d1')];
    const runner = new IntegrationRunner('int_full', {
      clock: jumpingClock(),
      logger,
      db,
      load: async () => rec as never,
      adapterFor: async () => listAdapter(fakeAdapter(new Map()), () => devices),
      policies: async () => [],
      saveStatus: async (_id, patch) => void patches.push(patch as never),
    });
    try {
      await runner.syncNow();
      expect(db.countDevices('int_full')).to.equal(1);
      // The disk fills: SQLite may not grow the file by a page.
      const pages = db.db.pragma('page_count', { simple: true }) as number;
      db.db.pragma(`max_page_count = ${pages}`);
      devices = Array.from({ length: 3000 }, (_, i) => ({ ...dev(`d${i}`), name: `a long device name ${'x'.repeat(200)} ${i}` }));
      await runner.syncNow();
      const shown = patches.filter((p) => p.deviceSync).at(-1)!.deviceSync!;
      expect(shown.indicator).to.equal('red');
      expect(shown.message).to.contain('could not use its inventory database (disk full').and.not.contain(dir);
      const logged = lines.find((l) => l.message === 'device sync failed');
      expect(String(logged?.reason)).to.contain(join(dir, 'inventory.sqlite')).and.contain('disk full (SQLITE_FULL)');
      expect(db.countDevices('int_full'), 'the failed sync stored none of its devices').to.equal(1);
    } finally {
      await runner.stop();
      db.close();
    }
  });

  it('every method names the file in its storage errors (a write on a full disk: nothing of it stored; a lock held elsewhere: busy); a bug\'s error is left as it is', () => {
    const dir = tempDir('inv-errors-');
    const db = InventoryDb.open(dir);
    try {
      db.db.pragma(`max_page_count = ${db.db.pragma('page_count', { simple: true }) as number}`);
      let err: unknown;
      try {
        db.setTagMembers('int_x', 'tag', Array.from({ length: 5000 }, (_, i) => `device-${'y'.repeat(100)}-${i}`), []);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(InventoryStorageError);
      expect((err as InventoryStorageError).code).to.equal('STATE_WRITE_FAILED');
      expect((err as Error).message).to.equal(`inventory database ${join(dir, 'inventory.sqlite')}: disk full (SQLITE_FULL)`);
      expect(db.tagMembers('int_x', 'tag').size).to.equal(0);
      expect(storageError('f', Object.assign(new Error('no such column: x'), { code: 'SQLITE_ERROR' }))).to.have.property('message', 'no such column: x');
      expect(storageError('f', Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY_SNAPSHOT' }))).to.include({ code: 'STATE_LOCKED' });
    } finally {
      db.close();
    }
  });
});

describe('integration edges: the runner after Sync Now and interval edits (found in review)', () => {
  const empty = { indicator: 'gray', message: 'not yet', lastRun: null, lastSuccess: null, counts: {} };
  const record = (over: Record<string, unknown> = {}) => ({
    id: 'int_runner2',
    tenant: 'acme',
    vendor: 'workspace-one',
    displayName: 'r',
    route: { via: 'direct' },
    sync: { ...DEFAULT_SYNC, pii: { ...DEFAULT_SYNC.pii }, groups: ['g1'] },
    tagging: { ...DEFAULT_TAGGING, deviceStatus: true },
    paused: false,
    groupsCache: [],
    status: { uemServer: empty, deviceSync: empty, appSync: empty, tagging: empty, policyGroups: empty },
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    ...over,
  });

  it('Sync Now while an app sync waits ahead: the app sync runs again after the device sync (apps not older than devices)', async () => {
    const order: string[] = [];
    const rec = record();
    const runner = new IntegrationRunner('int_runner2', {
      clock: jumpingClock(),
      logger: silentLogger(),
      db: new InventoryDb(':memory:'),
      load: async () => rec as never,
      adapterFor: async () => {
        await new Promise((r) => setTimeout(r, 100)); // every job takes a while
        return listAdapter(fakeAdapter(new Map()), () => [dev('d1')]);
      },
      policies: async () => [],
      saveStatus: async (_id, patch) => {
        for (const k of ['deviceSync', 'appSync'] as const) if (patch[k]) order.push(k);
      },
    });
    runner.retag(); // a tagging pass runs
    void (runner as any).enqueue('app'); // the app timer fired meanwhile: an app sync waits
    await runner.syncNow();
    await runner.stop();
    expect(order.at(-1), order.join(' → ')).to.equal('appSync');
    expect(order.lastIndexOf('appSync')).to.be.greaterThan(order.lastIndexOf('deviceSync'));
  });

  it('an interval shortened in an edit brings a timer armed with the old one forward', () => {
    const delays: number[] = [];
    const clock: Clock = {
      now: () => 1_000_000,
      setTimeout: (_fn, ms) => {
        delays.push(ms);
        return 0 as never;
      },
      clearTimeout: () => {},
      setInterval: () => 0 as never,
      clearInterval: () => {},
    };
    const runner = new IntegrationRunner('int_runner3', { clock, logger: silentLogger(), db: new InventoryDb(':memory:'), load: async () => undefined, adapterFor: async () => fakeAdapter(new Map()), policies: async () => [], saveStatus: async () => {} });
    const daily = record({ sync: { ...DEFAULT_SYNC, pii: { ...DEFAULT_SYNC.pii }, groups: ['g1'], deviceSyncIntervalMinutes: 1440, appSyncIntervalMinutes: 1440 } });
    (runner as any).scheduleDevice(1440 * 60_000);
    (runner as any).scheduleApp(1440 * 60_000);
    delays.length = 0;
    runner.intervalsChanged({ ...daily, sync: { ...daily.sync, deviceSyncIntervalMinutes: 10, appSyncIntervalMinutes: 30 } } as never);
    expect(delays).to.have.length(2);
    expect(delays[0]).to.be.within(9.5 * 60_000, 10.5 * 60_000);
    expect(delays[1]).to.be.within(28.5 * 60_000, 31.5 * 60_000);
    // Longer intervals apply from the next run: nothing re-armed.
    delays.length = 0;
    runner.intervalsChanged({ ...daily, sync: { ...daily.sync, deviceSyncIntervalMinutes: 1440 } } as never);
    expect(delays).to.deep.equal([]);
  });
});
