/**
 * An integration routed {via: "connector", group: G, target: T} is carried only by connectors of group
 * G (docs/integrations.md): another site's connector may offer a target of the same name, in front
 * of another UEM. (Found in review: the relay once chose by tenant and target alone.)
 */
import { expect } from 'chai';
import type { CloudServer } from '../../src/cloud/server.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { tempDir } from '../helpers/procs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

describe('integration routes: the group is kept', function () {
  this.timeout(60_000);
  let cloud: CloudServer;
  let sim: RunningSimulator<WorkspaceOneState>;
  let stop: () => Promise<void>;

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
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-rev-sim-'), devices: 50, seed: 7 });
    cloud = await startInprocCloud();
    const c = sim.credentials;
    // The only connector of tenant acme is in group "site-b" (another site, another UEM in real life).
    const conn = await startInprocConnector(cloud, {
      group: 'site-b',
      targets: [{ id: 'ws1', baseUrl: sim.baseUrl, auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey }, tls: { ca: sim.caPem } }],
    });
    stop = () => conn.daemon.shutdown();
  });
  after(async () => {
    await stop?.().catch(() => {});
    await cloud.shutdown();
    await sim.close();
  });

  it('an integration of group "site-a" must not reach the UEM behind a "site-b" connector', async () => {
    const created = await api('POST', '/integrations', { vendor: 'workspace-one', displayName: 'site A', route: { via: 'connector', group: 'site-a', target: 'ws1' } });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    const id = created.body.id as string;
    const v = (await api('POST', `/integrations/${id}/verify`)).body;
    const groups = await api('GET', `/integrations/${id}/groups`);
    expect(v.failedStep, 'verify says no connector of site-a').to.equal('connector');
    expect(groups.status, 'the UEM calls must not go through the site-b connector').to.not.equal(200);
    expect(JSON.stringify(groups.body)).to.include('group \\"site-a\\"');
  });
});
