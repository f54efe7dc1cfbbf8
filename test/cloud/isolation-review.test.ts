/**
 * Tenant-isolation review: what one tenant (its API key, its connector) can do to another tenant.
 * Each test here failed when written (kept as regression tests); it states the behaviour that isolation requires.
 */
import { expect } from 'chai';
import type { CloudServer } from '../../src/cloud/server.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { connectAs, pairInproc, startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { ADMIN_TOKEN, tempDir } from '../helpers/procs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

describe('tenant isolation (found in review)', function () {
  this.timeout(60_000);
  let cloud: CloudServer;
  const stops: Array<() => Promise<unknown>> = [];

  async function call(method: string, path: string, body?: unknown, token = ADMIN_TOKEN): Promise<{ status: number; body: Json; text: string }> {
    const r = await fetch(`http://127.0.0.1:${cloud.port}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    let parsed: Json = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    return { status: r.status, body: parsed, text };
  }
  async function tenantKey(tenant: string): Promise<string> {
    const r = await call('POST', `/api/v1/tenants/${tenant}/api-keys`, { label: 'review' });
    expect(r.status, r.text).to.equal(201);
    return r.body.key as string;
  }

  before(async () => {
    cloud = await startInprocCloud();
  });
  after(async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
    await cloud.shutdown();
  });

  describe('UEM group ownership across tenants', () => {
    // Tenant B's UEM (reached directly by the cloud), and the UEM tenant A runs itself (behind its own
    // connector): a fake that lists the same group ids (here: the same simulated data).
    let simB: RunningSimulator<WorkspaceOneState>;
    let simA: RunningSimulator<WorkspaceOneState>;
    let keyA: string;
    let keyB: string;
    const directB = () => ({
      vendor: 'workspace-one',
      serverAddress: simB.url,
      auth: { type: 'basic', username: simB.credentials.username, password: simB.credentials.password, apiKey: simB.credentials.apiKey },
      selfSignedCertPem: simB.caPem,
      route: { via: 'direct' },
    });

    before(async () => {
      simB = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('review-iso-simb-'), devices: 20, seed: 5 });
      simA = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('review-iso-sima-'), devices: 20, seed: 5 });
      stops.push(() => simB.close(), () => simA.close());
      const c = simA.credentials;
      const conn = await startInprocConnector(cloud, {
        tenant: 'attacker',
        group: 'default',
        targets: [{ id: 'fake', baseUrl: simA.baseUrl, auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey }, tls: { ca: simA.caPem } }],
      });
      stops.push(() => conn.daemon.shutdown());
      keyA = await tenantKey('attacker');
      keyB = await tenantKey('victim');
    });

    it("tenant A cannot claim tenant B's UEM groups by naming B's server in serverAddress of a route that never uses it", async () => {
      const g = String(simB.state.data.groups[1]!.id);
      // A: its own connector's target (its own UEM), plus B's server address, which this route ignores.
      const squat = await call(
        'POST',
        '/api/v1/tenants/attacker/integrations',
        { vendor: 'workspace-one', displayName: 'squat', serverAddress: simB.url, route: { via: 'connector', group: 'default', target: 'fake' }, sync: { groups: [g] } },
        keyA,
      );
      expect(squat.status, squat.text).to.equal(201);
      try {
        // B then integrates its own UEM's group, with its own credentials, through the cloud itself.
        const mine = await call('POST', '/api/v1/tenants/victim/integrations', { ...directB(), displayName: 'mine', sync: { groups: [g] } }, keyB);
        expect(mine.status, `tenant B refused because of tenant A's claim: ${mine.text}`).to.equal(201);
        await call('DELETE', `/api/v1/tenants/victim/integrations/${mine.body.id}`, undefined, keyB);
      } finally {
        await call('DELETE', `/api/v1/tenants/attacker/integrations/${squat.body.id}`, undefined, keyA);
      }
    });

    it("tenant A claiming the parent of B's group does not lock B out of editing its existing integration", async () => {
      const groups = simB.state.data.groups;
      const child = groups.find((x) => x.parentId !== undefined && x.parentId !== null && groups.some((p) => p.id === x.parentId))!;
      const parent = String(child.parentId);
      const mine = await call('POST', '/api/v1/tenants/victim/integrations', { ...directB(), displayName: 'b-existing', sync: { groups: [String(child.id)] } }, keyB);
      expect(mine.status, mine.text).to.equal(201);
      // A claims the parent afterwards: its check looks only upwards from its own groups.
      const squat = await call(
        'POST',
        '/api/v1/tenants/attacker/integrations',
        { vendor: 'workspace-one', displayName: 'squat-parent', serverAddress: simB.url, route: { via: 'connector', group: 'default', target: 'fake' }, sync: { groups: [parent] } },
        keyA,
      );
      try {
        // B now only renames its integration (or turns PII collection off).
        const edit = await call('PUT', `/api/v1/tenants/victim/integrations/${mine.body.id}`, { displayName: 'renamed', sync: { pii: { email: false } } }, keyB);
        expect(edit.status, `squat ${squat.status}; B's edit: ${edit.text}`).to.equal(200);
      } finally {
        if (squat.status === 201) await call('DELETE', `/api/v1/tenants/attacker/integrations/${squat.body.id}`, undefined, keyA);
        await call('DELETE', `/api/v1/tenants/victim/integrations/${mine.body.id}`, undefined, keyB);
      }
    });

    it("tenant A cannot learn which groups of which UEM tenant B integrates (409 from its own create)", async () => {
      const g = String(simB.state.data.groups[2]!.id);
      const mine = await call('POST', '/api/v1/tenants/victim/integrations', { ...directB(), displayName: 'b', sync: { groups: [g] } }, keyB);
      expect(mine.status, mine.text).to.equal(201);
      try {
        const probe = await call(
          'POST',
          '/api/v1/tenants/attacker/integrations',
          { vendor: 'workspace-one', displayName: 'probe', serverAddress: simB.url, route: { via: 'connector', group: 'default', target: 'fake' }, sync: { groups: [g] } },
          keyA,
        );
        if (probe.status === 201) await call('DELETE', `/api/v1/tenants/attacker/integrations/${probe.body.id}`, undefined, keyA);
        expect(probe.status, `oracle: ${probe.text}`).to.equal(201);
      } finally {
        await call('DELETE', `/api/v1/tenants/victim/integrations/${mine.body.id}`, undefined, keyB);
      }
    });
  });

  describe("a connector's reports", () => {
    it('target.status for ids never offered to the connector is not recorded (no unbounded growth of the shared state)', async () => {
      const id = await pairInproc(cloud, 'noisy', 'default');
      const c = await connectAs(cloud, id, { targets: [] });
      stops.push(async () => c.session.close());
      for (let i = 0; i < 30; i++) c.session.sendControl({ type: 'target.status', id: `${'x'.repeat(20_000)}-${i}`, state: 'refused', reason: 'r'.repeat(400) });
      // Give the cloud time to take them in and write presence (100 ms "soon", 5 s batches).
      await new Promise((r) => setTimeout(r, 6000));
      const rec = (await cloud.store.read()).connectors[id.connectorId]!;
      const bytes = JSON.stringify(rec.managedTargets).length;
      expect(rec.managedTargets.length, `${rec.managedTargets.length} entries, ${bytes} bytes in the state file for targets that do not exist`).to.equal(0);
    });
  });
});
