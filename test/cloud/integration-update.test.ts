/**
 * IntegrationsService.update() against what changes while it checks the groups (found in review):
 * a Pause and a running sync's status are not the edit's to overwrite, nor is a running sync's client.
 */
import { expect } from 'chai';
import { IntegrationsService } from '../../src/cloud/integrations/service.js';
import { openCloudStore } from '../../src/cloud/state.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { tempDir } from '../helpers/procs.js';
import { integrationsService } from '../helpers/integrations.js';

describe('integration edits while other things happen', function () {
  this.timeout(60_000);
  let sim: RunningSimulator<WorkspaceOneState>;
  let svc: IntegrationsService;
  let store: ReturnType<typeof openCloudStore>;
  before(async () => {
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('review-svc-sim-'), devices: 60, seed: 3 });
    store = openCloudStore(tempDir('review-svc-'));
    svc = integrationsService({ store });
  });
  after(async () => {
    await svc?.stop();
    await sim?.close();
  });

  /** A direct integration of the simulator, as an admin would enter it. */
  const direct = (displayName: string, groups?: string[]) => {
    const c = sim.credentials;
    return {
      vendor: 'workspace-one',
      displayName,
      serverAddress: sim.url,
      selfSignedCertPem: sim.caPem,
      auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey },
      route: { via: 'direct' },
      ...(groups ? { sync: { groups } } : {}),
    };
  };

  it('a Pause while an edit checks the groups stays paused', async () => {
    const rec = await svc.create('acme', direct('ws1'));
    sim.state.faults = { latencyMs: 800 }; // the edit's group check takes a while
    const edit = svc.update('acme', rec.id, { sync: { groups: ['572'] } });
    await new Promise((r) => setTimeout(r, 200));
    sim.state.faults = {};
    const paused = await svc.setPaused('acme', rec.id, true);
    expect(paused.paused).to.equal(true);
    await edit;
    const now = await svc.get('acme', rec.id);
    expect(now.sync.groups).to.deep.equal(['572']);
    expect(now.paused, 'the admin paused it; the edit must not resume it').to.equal(true);
  });

  it('renaming a direct integration while its device sync runs does not fail that sync', async () => {
    const rec = await svc.create('acme', direct('ws1 b', ['578']));
    sim.state.faults = { latencyMs: 300 };
    const running = svc.syncAndWait('acme', rec.id);
    await new Promise((r) => setTimeout(r, 500));
    sim.state.faults = {};
    await svc.update('acme', rec.id, { displayName: 'ws1 renamed' });
    await running;
    const all = (await svc.get("acme", rec.id)).status;
    const s = all.deviceSync;
    expect(s.indicator, s.message).to.equal('green');
  });

  it("another tenant's integration of the same server never conflicts: a 409 would tell one tenant what another syncs (found in review)", async () => {
    const mine = await svc.create('acme', direct('Acme secret project', ['575']));
    // Another tenant naming the same server (or claiming its parent group) is not refused, and
    // learns nothing; the first tenant can still edit its own integration.
    const theirs = await svc.create('globex', direct('globex', ['575']));
    await svc.remove('globex', theirs.id);
    const parent = await svc.create('globex', direct('globex parent', ['570']));
    expect((await svc.update('acme', mine.id, { displayName: 'renamed' })).displayName).to.equal('renamed');
    for (const r of [mine, parent]) await svc.remove(r.tenant, r.id);
  });

  it('within a tenant, selecting the parent of a group another integration of the same UEM has is refused too (the other could no longer be edited)', async () => {
    const child = await svc.create('acme', direct('child', ['575']));
    const err = await svc.create('acme', direct('parent', ['570'])).then(
      () => undefined,
      (e: unknown) => e as { status?: number; apiCode?: string; message: string },
    );
    expect(err?.apiCode, err?.message).to.equal('group_conflict');
    expect(err?.message).to.match(/^sync\.groups: group "Acme Corp" \(570\) contains ".*" \(\d+\), which is already integrated by integration "/);
    expect((await svc.update('acme', child.id, { displayName: 'child renamed' })).displayName).to.equal('child renamed');
    await svc.remove('acme', child.id);
  });

  it('a removal while an edit of a pushed integration checks the groups: the pushed target stays withdrawn', async () => {
    // The group check of a pushed integration goes through a connector; here none answers, slowly,
    // so the edit is refused (502) and undoes its push after the removal has withdrawn the target.
    const managedOps: string[] = [];
    const slow = integrationsService({
      relay: {
        fetch: async () => {
          await new Promise((r) => setTimeout(r, 300));
          throw new Error('no connector of group site-x answered');
        },
      } as any,
      managed: {
        put: async (_t: string, id: string) => void managedOps.push(`put ${id}`),
        remove: async (_t: string, id: string) => void managedOps.push(`remove ${id}`),
      } as any,
    });
    try {
      const rec = await slow.create('acme', { vendor: 'workspace-one', displayName: 'pushed', serverAddress: 'https://uem.example.com', auth: { type: 'basic', username: 'u', password: 'p', apiKey: 'k' }, route: { via: 'connector', group: 'site-x', push: true } });
      const edit = slow.update('acme', rec.id, { sync: { groups: ['571'] } }).then(
        () => 'saved',
        (e: { apiCode?: string }) => e.apiCode,
      );
      await new Promise((r) => setTimeout(r, 50));
      await slow.remove('acme', rec.id);
      expect(await edit).to.equal('uem_unreachable');
      // Before: put (create), put (edit), remove (removal), put (the edit's undo, credentials and all).
      expect(managedOps.at(-1), managedOps.join(', ')).to.match(/^remove /);
      expect(await slow.list('acme')).to.deep.equal([]);
    } finally {
      await slow.stop();
    }
  });
});

