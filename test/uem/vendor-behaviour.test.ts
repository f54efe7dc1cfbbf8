/**
 * The vendor adapters against what the real APIs do (uem-api-reference.md), and the sync/tagging
 * engine that uses them: what a review confirmed, kept as regression tests.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { systemClock } from '../../src/common/clock.js';
import { Target } from '../../src/connector/targets/target.js';
import { deviceSync, tagging, type SyncTarget } from '../../src/cloud/integrations/engine.js';
import { DEFAULT_SYNC, DEFAULT_TAGGING } from '../../src/cloud/integrations/model.js';
import { InventoryDb } from '../../src/cloud/inventory/db.js';
import { UemError, type UemDevice, type UemFetch } from '../../src/uem/adapter.js';
import { createHexnodeAdapter } from '../../src/uem/adapters/hexnode.js';
import { createIvantiEpmmAdapter } from '../../src/uem/adapters/ivanti-epmm.js';
import { createWorkspaceOneAdapter } from '../../src/uem/adapters/workspace-one.js';
import type { HexnodeState } from '../../src/uem/simulator/hexnode.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { targetFetch } from '../../src/uem/target-fetch.js';
import { tempDir } from '../helpers/procs.js';

const json = (body: unknown, status = 200, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

async function settle(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e;
  }
}

async function drain(it: AsyncIterable<{ devices: UemDevice[] }>): Promise<UemDevice[]> {
  const out: UemDevice[] = [];
  for await (const p of it) out.push(...p.devices);
  return out;
}

function wsTarget(sim: RunningSimulator): Target {
  const c = sim.credentials;
  return Target.resolve(
    { id: 't', baseUrl: sim.baseUrl, auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey, apiKeyHeader: 'aw-tenant-code' }, tls: { ca: sim.caPem }, timeoutMs: 10_000, maxConcurrent: 8, allow: [] } as any,
    { where: 't', origin: 'local' },
  );
}

function hxTarget(sim: RunningSimulator): Target {
  const c = sim.credentials;
  return Target.resolve(
    { id: 'h', baseUrl: sim.baseUrl, auth: { type: 'apiKey', header: 'Authorization', value: c.apiKey, prefix: '' }, tls: { ca: sim.caPem }, timeoutMs: 10_000, maxConcurrent: 8, allow: [] } as any,
    { where: 'h', origin: 'local' },
  );
}

function syncTarget(id: string, vendor: SyncTarget['vendor'], groups: string[], extra: Partial<SyncTarget['sync']> = {}): SyncTarget {
  return {
    id,
    tenant: 'acme',
    vendor,
    sync: { ...DEFAULT_SYNC, pii: { ...DEFAULT_SYNC.pii }, groups, ...extra },
    tagging: { ...DEFAULT_TAGGING, deviceStatus: true },
  };
}

const dev = (id: string): UemDevice => ({ id, udid: null, serial: null, name: null, phone: null, ownerEmail: null, ownerName: null, platform: 'android', os: null, model: null, enrollment: 'enrolled', compliance: null, lastSeen: null });

describe('UEM adapters against what the vendor APIs do (found in review)', function () {
  this.timeout(30_000);

  // ---- Ivanti EPMM: pagination termination ------------------------------------------------------

  describe('Ivanti EPMM paging', () => {
    /** An EPMM that ignores `offset` and always says hasMore (a misbehaving server): bounded here. */
    function endlessEpmm(): { fetch: UemFetch; calls: () => number } {
      let n = 0;
      const fetch: UemFetch = async (path) => {
        n++;
        if (n > 60) return json({ totalCount: 2, resultCount: 0, hasMore: false, results: [] }); // the test's own safety stop
        if (path.startsWith('/labels/label_summary')) {
          return json({ totalCount: 2, resultCount: 2, hasMore: true, results: [{ id: 1, name: 'A', isStatic: true }, { id: 2, name: 'B', isStatic: true }] });
        }
        return json({ totalCount: 2, resultCount: 2, hasMore: true, results: [{ 'common.uuid': 'u1' }, { 'common.uuid': 'u2' }] });
      };
      return { fetch, calls: () => n };
    }

    it('stops a device listing whose hasMore never ends (offset past totalCount) with a protocol error', async () => {
      const f = endlessEpmm();
      const a = createIvantiEpmmAdapter(f.fetch);
      const e = await settle(drain(a.devicesInGroup({ id: '110', name: 'x', kind: 'label', parentId: null })));
      expect(f.calls(), 'calls made before giving up').to.be.at.most(5);
      expect(e).to.be.instanceOf(UemError);
      expect((e as UemError).kind).to.equal('protocol');
    });

    it('stops a label listing whose hasMore never ends with a protocol error', async () => {
      const f = endlessEpmm();
      const a = createIvantiEpmmAdapter(f.fetch);
      const e = await settle(a.groups());
      expect(f.calls(), 'calls made before giving up').to.be.at.most(5);
      expect(e).to.be.instanceOf(UemError);
    });
  });

  // ---- Workspace ONE: group ids of two kinds share one namespace --------------------------------

  describe('Workspace ONE organization group vs smart group with the same numeric id', () => {
    // Real tenants number organization groups and smart groups in separate tables: OG 570 and smart
    // group 570 can both exist (the simulator's smart groups start at 31 and never collide).
    const fetch: UemFetch = async (path, init) => {
      const p = path.toLowerCase();
      if (p.startsWith('/system/groups/search')) {
        return json({ OrganizationGroups: [{ Id: 570, Name: 'Acme Corp', GroupId: 'acme', LocationGroupType: 'Customer', LgLevel: 0 }], TotalResults: 1 });
      }
      if (p.startsWith('/system/groups/570/children')) return json([{ Id: { Value: 570 }, Name: 'Acme Corp', ParentLocationGroup: { Id: { Value: 7 } } }]);
      if (p.startsWith('/mdm/smartgroups/search')) return json({ SmartGroups: [{ SmartGroupID: 570, Name: 'All Executives' }], Page: 0, PageSize: 500, Total: 1 });
      if (p.startsWith('/mdm/devices/search')) {
        return json({ Devices: [{ Id: { Value: 1001 }, Uuid: 'og-dev', LocationGroupId: { Id: { Value: 570 } }, Platform: 'Android' }], Page: 0, PageSize: 500, Total: 1 });
      }
      if (p.startsWith('/mdm/smartgroups/570/devices')) return json({ Devices: [{ Id: '2002' }] });
      if (p.startsWith('/mdm/devices/id') && init?.method === 'POST') {
        return json({ Devices: [{ Id: { Value: 2002 }, Uuid: 'sg-dev', LocationGroupId: { Id: { Value: 570 } }, Platform: 'Android' }] });
      }
      return new Response('<html>404</html>', { status: 404, headers: { 'content-type': 'text/html' } });
    };

    it('a device sync of the selected organization group 570 syncs that group, not smart group 570', async () => {
      const adapter = createWorkspaceOneAdapter(fetch);
      const groups = await adapter.groups();
      const og = groups.find((g) => g.kind === 'organization')!;
      const db = new InventoryDb(join(tempDir('uemlink-review-uem-'), 'inv.sqlite'));
      try {
        // What the admin picked from GET …/groups: the organization group's id.
        await deviceSync(syncTarget('int_0000000000000001', 'workspace-one', [og.id]), adapter, db, systemClock, new AbortController().signal);
        const ids = [...db.devicePages('int_0000000000000001')].flat().map((d) => d.id);
        expect(ids).to.deep.equal(['1001']);
      } finally {
        db.close();
      }
    });
  });

  // ---- Workspace ONE: HTML 404 on the app inventory reads as "device deleted" -------------------

  describe('Workspace ONE app inventory', () => {
    it('an HTML 404 (not an API route) on apps/search fails the app read instead of reporting no devices', async () => {
      const fetch: UemFetch = async (path, init) => {
        if (path.startsWith('/mdm/devices/id') && init?.method === 'POST') {
          return json({ Devices: [{ Id: { Value: 1 }, Uuid: 'aaaa-1', LocationGroupId: { Id: { Value: 570 } } }, { Id: { Value: 2 }, Uuid: 'aaaa-2', LocationGroupId: { Id: { Value: 570 } } }] });
        }
        // IIS's page for a route this server does not have (uem-api-reference: "some 404s are HTML").
        return new Response('<!DOCTYPE html><html><head><title>404 - File or directory not found.</title></head></html>', { status: 404, headers: { 'content-type': 'text/html' } });
      };
      const a = createWorkspaceOneAdapter(fetch);
      const e = await settle(a.apps([dev('1'), dev('2')]));
      expect(e, 'apps() resolved as if both devices were deleted').to.be.instanceOf(UemError);
      expect((e as UemError).kind).to.equal('protocol');
    });
  });

  // ---- Workspace ONE: 429 quota headers ------------------------------------------------------------

  describe('Workspace ONE rate limit', () => {
    it('a 429 without Retry-After takes its wait from x-ratelimit-reset (epoch seconds)', async () => {
      const reset = Math.floor(Date.now() / 1000) + 900;
      const fetch: UemFetch = async () =>
        json({ errorCode: 429, message: 'quota exceeded', activityId: '0' }, 429, { 'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) });
      const e = (await settle(createWorkspaceOneAdapter(fetch).ping())) as UemError;
      expect(e).to.be.instanceOf(UemError);
      expect(e.kind).to.equal('rate_limited');
      expect(e.retryAfterMs, 'retryAfterMs').to.be.a('number').and.to.be.greaterThan(800_000);
    });
  });

  // ---- tag groups: devices the UEM no longer has, tags deleted in the console ------------------

  describe('Workspace ONE tags (simulator)', () => {
    let sim: RunningSimulator<WorkspaceOneState>;
    let target: Target;
    let fetch: UemFetch;
    before(async () => {
      sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-review-ws1-'), devices: 40, seed: 5 });
      target = wsTarget(sim);
      fetch = targetFetch(target);
    });
    after(async () => {
      target?.close();
      await sim?.close();
    });

    it('removing a device the UEM has deleted from a tag is not an error (the end state holds)', async () => {
      const a = createWorkspaceOneAdapter(fetch);
      const tagId = await a.ensureTagGroup('review_remove_gone');
      const real = String(sim.state.data.devices[0]!.Id.Value);
      await a.addToTagGroup(tagId, 'review_remove_gone', [real]);
      // 99999999: a device that was deleted in the console since it was tagged.
      const e = await settle(a.removeFromTagGroup(tagId, 'review_remove_gone', [real, '99999999']));
      expect(e, String(e)).to.equal(undefined);
    });

    it('a tag deleted in the console is re-created on the next tagging pass instead of failing every pass', async () => {
      const a = createWorkspaceOneAdapter(fetch);
      const db = new InventoryDb(join(tempDir('uemlink-review-uem-'), 'inv.sqlite'));
      const it0 = syncTarget('int_0000000000000002', 'workspace-one', []);
      try {
        const ids = sim.state.data.devices.slice(0, 3).map((d) => String(d.Id.Value));
        db.applyDeviceSync(it0.id, it0.tenant, { seen: ids.map((id) => ({ device: dev(id), groups: ['570'] })), deleteAfter: 1, allowDeletion: true, now: new Date().toISOString() });
        const first = await tagging(it0, a, db, new AbortController().signal);
        expect(first.added).to.equal(3);
        // An admin deletes the tag in the console.
        const name = 'uemlink_Status_Provisioned';
        const old = sim.state.data.tags.find((t) => t.name === name)!;
        expect(sim.state.data.deleteTag(old.id)).to.equal(true);
        // A device's verdict changes: the next pass must write again.
        db.setVerdict(it0.id, ids[0]!, { status: 'active' }, new Date().toISOString());
        const e = await settle(tagging(it0, a, db, new AbortController().signal));
        expect(e, String(e)).to.equal(undefined);
        // Created again, holding what it should.
        const again = sim.state.data.tags.find((t) => t.name === name)!;
        expect([...again.devices.keys()].map(String).sort()).to.deep.equal(ids.slice(1).sort());
        expect(db.tagId(it0.id, name)).to.equal(String(again.id));
      } finally {
        db.close();
      }
    });
  });

  describe('Ivanti EPMM labels (simulator)', () => {
    let sim: RunningSimulator;
    let target: Target;
    before(async () => {
      sim = await startSimulator({ vendor: 'ivanti-epmm', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-review-epmm-'), devices: 30, seed: 5 });
      const c = sim.credentials;
      target = Target.resolve(
        { id: 'e', baseUrl: sim.baseUrl, auth: { type: 'basic', username: c.username, password: c.password, apiKeyHeader: 'aw-tenant-code' }, tls: { ca: sim.caPem }, timeoutMs: 10_000, maxConcurrent: 8, allow: [] } as any,
        { where: 'e', origin: 'local' },
      );
    });
    after(async () => {
      target?.close();
      await sim?.close();
    });

    it('a policy group named with "%" (accepted by PUT app-policies) can be created as a label', async () => {
      const a = createIvantiEpmmAdapter(targetFetch(target));
      const e = await settle(a.ensureTagGroup('Games 100% blocked'));
      expect(e, String(e)).to.equal(undefined);
    });
  });

  describe('Hexnode device groups (simulator)', () => {
    let sim: RunningSimulator<HexnodeState>;
    // (startSimulator's type is not generic over the vendor)
    let target: Target;
    let fetch: UemFetch;
    before(async () => {
      sim = (await startSimulator({ vendor: 'hexnode', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-review-hx-'), devices: 30, seed: 5 })) as RunningSimulator<HexnodeState>;
      target = hxTarget(sim);
      fetch = targetFetch(target);
    });
    after(async () => {
      target?.close();
      await sim?.close();
    });

    it('one device the portal has since deleted does not keep every other device out of its tag', async () => {
      const a = createHexnodeAdapter(fetch);
      const db = new InventoryDb(join(tempDir('uemlink-review-uem-'), 'inv.sqlite'));
      const it0 = syncTarget('int_0000000000000003', 'hexnode', []);
      try {
        const live = sim.state.data.devices.slice(0, 3).map((d) => String(d.id));
        const gone = '987654'; // synced earlier; deleted in the portal since (retag before the next device sync)
        db.applyDeviceSync(it0.id, it0.tenant, { seen: [...live, gone].map((id) => ({ device: dev(id), groups: ['10'] })), deleteAfter: 1, allowDeletion: true, now: new Date().toISOString() });
        await settle(tagging(it0, a, db, new AbortController().signal));
        const g = sim.state.data.groups.find((x) => x.groupname === 'uemlink_Status_Provisioned');
        expect(g, 'the tag group was created').to.not.equal(undefined);
        expect([...g!.members].map(String).sort()).to.deep.equal([...live].sort());
      } finally {
        db.close();
      }
    });

    it('a tag group deleted in the portal is re-created on the next tagging pass instead of failing every pass', async () => {
      const a = createHexnodeAdapter(fetch);
      const db = new InventoryDb(join(tempDir('uemlink-review-uem-'), 'inv.sqlite'));
      const it0 = syncTarget('int_0000000000000004', 'hexnode', []);
      it0.tagging.prefix = 'rv2';
      try {
        const live = sim.state.data.devices.slice(3, 6).map((d) => String(d.id));
        db.applyDeviceSync(it0.id, it0.tenant, { seen: live.map((id) => ({ device: dev(id), groups: ['10'] })), deleteAfter: 1, allowDeletion: true, now: new Date().toISOString() });
        const first = await tagging(it0, a, db, new AbortController().signal);
        expect(first.added).to.equal(3);
        const g = sim.state.data.groups.find((x) => x.groupname === 'rv2_Status_Provisioned')!;
        sim.state.data.deleteGroup(g);
        db.setVerdict(it0.id, live[0]!, { status: 'active' }, new Date().toISOString());
        const e = await settle(tagging(it0, a, db, new AbortController().signal));
        expect(e, String(e)).to.equal(undefined);
        const again = sim.state.data.groups.find((x) => x.groupname === 'rv2_Status_Provisioned')!;
        expect([...again.members].map(String).sort()).to.deep.equal(live.slice(1).sort());
      } finally {
        db.close();
      }
    });
  });
});
