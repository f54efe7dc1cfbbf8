import { expect } from 'chai';
import type { CloudServer } from '../../src/cloud/server.js';
import { portOf } from '../../src/cloud/metrics.js';
import { startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { ADMIN_TOKEN, until } from '../helpers/procs.js';
import WebSocket from 'ws';
import { connectTunnel } from '../../src/connector/tunnel-client.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

function line(text: string, prefix: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(prefix));
}

describe('cloud metrics (metrics.listen)', function () {
  this.timeout(30_000);
  let cloud: CloudServer;
  let up: Upstream;
  before(async () => {
    cloud = await startInprocCloud({ metrics: true });
    up = await startUpstream({
      handler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      },
    });
  });
  after(async () => {
    await cloud.shutdown();
    await up.close();
  });

  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${portOf(cloud.metricsServer!)}/metrics`)).text();
  const relay = (tenant: string, target: string, auth = ADMIN_TOKEN): Promise<Response> =>
    fetch(`http://127.0.0.1:${cloud.port}/api/v1/relay/${tenant}/${target}/API/system/info`, { headers: auth ? { authorization: `Bearer ${auth}` } : {} });

  it('counts connectors, handshakes and relayed calls by tenant and status; anonymous callers name no tenant', async () => {
    const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'ws1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
    try {
      for (let i = 0; i < 3; i++) expect((await relay('acme', 'ws1')).status).to.equal(200);
      expect((await relay('acme', 'nope')).status).to.equal(404);
      expect((await relay('made-up-by-anyone', 'ws1', '')).status).to.equal(401);
      const text = await scrape();
      expect(line(text, 'uemlink_cloud_connectors_connected ')).to.equal('uemlink_cloud_connectors_connected 1');
      expect(line(text, 'uemlink_cloud_tunnel_handshakes_total{outcome="connected"}')).to.equal('uemlink_cloud_tunnel_handshakes_total{outcome="connected"} 1');
      expect(line(text, 'uemlink_cloud_relay_requests_total{tenant="acme",status="200"}')).to.equal('uemlink_cloud_relay_requests_total{tenant="acme",status="200"} 3');
      expect(line(text, 'uemlink_cloud_relay_requests_total{tenant="acme",status="404"}')).to.equal('uemlink_cloud_relay_requests_total{tenant="acme",status="404"} 1');
      expect(line(text, 'uemlink_cloud_relay_errors_total{code="unknown_target"}')).to.equal('uemlink_cloud_relay_errors_total{code="unknown_target"} 1');
      expect(line(text, 'uemlink_cloud_relay_duration_seconds_count{tenant="acme"}')).to.equal('uemlink_cloud_relay_duration_seconds_count{tenant="acme"} 4');
      expect(line(text, 'uemlink_cloud_relay_requests_total{tenant="",status="401"}')).to.equal('uemlink_cloud_relay_requests_total{tenant="",status="401"} 1');
      expect(text).to.not.contain('made-up-by-anyone');
      const out = Number(line(text, 'uemlink_cloud_relay_bytes_total{tenant="acme",direction="out"}')!.split(' ')[1]);
      expect(out).to.be.greaterThan(3 * '{"ok":true}'.length);
      expect(text).to.not.contain(ADMIN_TOKEN);
    } finally {
      await daemon.shutdown();
    }
    // The tunnel gone: the gauge follows.
    await until(async () => line(await scrape(), 'uemlink_cloud_connectors_connected ') === 'uemlink_cloud_connectors_connected 0', 5_000, 'the gauge back to 0');
  });

  it('every tunnel upgrade has one outcome: a diagnose probe is "probe", a connector that leaves mid-handshake "abandoned" (found in review)', async () => {
    const count = async (outcome: string): Promise<number> => Number(line(await scrape(), `uemlink_cloud_tunnel_handshakes_total{outcome="${outcome}"}`)?.split(' ')[1] ?? 0);
    const { daemon } = await startInprocConnector(cloud, { targets: [] });
    try {
      const [connected, probes, abandoned] = [await count('connected'), await count('probe'), await count('abandoned')];
      // What `connector diagnose` does: authenticate, get WELCOME, close; the live session stays.
      const c = await connectTunnel(await daemon.tunnelOptions((daemon as any)._identity, { probe: true, heartbeatMs: 0 }));
      c.session.close(1000, 'probe done');
      await until(async () => (await count('probe')) === probes + 1, 5_000, 'the probe counted');
      // Upgraded, then gone before sending HELLO and AUTH.
      const ws = new WebSocket(`ws://127.0.0.1:${cloud.port}/api/v1/tunnel`);
      await new Promise<void>((resolve, reject) => {
        ws.once('message', () => resolve());
        ws.once('error', reject);
      });
      ws.terminate();
      await until(async () => (await count('abandoned')) === abandoned + 1, 5_000, 'the abandoned handshake counted');
      // Neither was counted as anything else.
      expect(await count('connected')).to.equal(connected);
      expect(await count('probe')).to.equal(probes + 1);
    } finally {
      await daemon.shutdown();
    }
  });

  it('serves GET /metrics only, and nothing on the public listener', async () => {
    const other = await fetch(`http://127.0.0.1:${portOf(cloud.metricsServer!)}/api/v1/connectors`);
    expect(other.status).to.equal(404);
    expect(await other.json()).to.deep.include({ error: 'not_found' });
    expect((await fetch(`http://127.0.0.1:${cloud.port}/metrics`)).status).to.equal(404);
  });
});
