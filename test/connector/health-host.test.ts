import { expect } from 'chai';
import { request } from 'node:http';
import { hostname } from 'node:os';
import { silentLogger } from '../../src/common/log.js';
import type { ConnectorStatus } from '../../src/connector/status.js';
import { HealthServer, type HealthBackend } from '../../src/health/server.js';

const status: ConnectorStatus = {
  connectorId: 'cn_00000000000000000000', tenant: 'acme', group: 'default', version: '0.1.0', paired: true, pairedAt: new Date().toISOString(), cloudUrl: 'https://relay.example.com',
  ready: true, tunnel: { state: 'connected', since: null, rttMs: null, protocol: 2, reconnects: 0, activeStreams: 0, retryAt: null, lastError: null }, certificate: null,
  targets: [{ id: 'ws1', baseUrl: 'https://uem.corp.local/API', origin: 'local', reachable: true, latencyMs: 1, lastStatus: 200, checkStatus: 200, checkedAt: null, error: null, tls: null, inFlight: 0, requests: 0 }],
  pendingTargets: [], managedTargets: [], system: { hostname: 'h', os: 'o', cpuLoadPercent: null, memory: null, stateDirFreeBytes: null, uptimeSeconds: 1, processUptimeSeconds: 1, node: 'v20' }, recentProblems: [],
};
let diagnosed = 0;
const backend: HealthBackend = {
  status: async () => status, metrics: async () => '', pair: async () => { throw new Error('no'); }, decide: async () => {},
  diagnose: async () => { diagnosed++; return { ok: true, startedAt: new Date().toISOString(), checks: [] }; }, supportBundle: async () => Buffer.from(''),
};

function req(port: number, o: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path, headers: o.headers }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString())).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: b }));
    });
    r.on('error', reject);
    r.end(o.body);
  });
}

describe('local page: Host names (DNS rebinding, found in review)', () => {
  let page: HealthServer;
  before(async () => {
    page = await HealthServer.start({ listen: { host: '127.0.0.1', port: 0 }, allowedHostnames: ['connector01.corp.example'], adminPassword: 'correct-horse-battery', backend, logger: silentLogger() });
  });
  after(() => page.close());

  it('answers a foreign host name 421 bad_host: a rebinding site cannot read the status', async () => {
    const r = await req(page.port, { path: '/api/status', headers: { host: `attacker.example:${page.port}` } });
    expect(r.status).to.equal(421);
    expect(JSON.parse(r.body)).to.include({ error: 'bad_host' });
    expect(r.body).to.not.include('acme');
  });

  it('refuses a POST whose Origin matches its rebound Host (the CSRF check alone passed it)', async () => {
    const host = `attacker.example:${page.port}`;
    const before = diagnosed;
    const r = await req(page.port, {
      method: 'POST',
      path: '/actions/diagnose',
      headers: { host, origin: `http://${host}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: 'x'.repeat(43) }).toString(),
    });
    expect({ status: r.status, diagnosed: diagnosed - before }).to.deep.equal({ status: 421, diagnosed: 0 });
  });

  it('answers IP addresses, localhost, this machine\'s name and health.allowedHostnames; probes answer any Host', async () => {
    for (const host of [`127.0.0.1:${page.port}`, `[::1]:${page.port}`, `localhost:${page.port}`, `LOCALHOST`, `${hostname()}:${page.port}`, `connector01.corp.example:${page.port}`, '10.1.2.3']) {
      expect((await req(page.port, { path: '/api/status', headers: { host } })).status, host).to.equal(200);
    }
    expect((await req(page.port, { path: '/healthz', headers: { host: 'attacker.example' } })).status).to.equal(200);
    expect((await req(page.port, { path: '/metrics', headers: { host: 'connector01.corp.example.attacker.example' } })).status).to.equal(421);
  });
});
