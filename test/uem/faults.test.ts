import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Target } from '../../src/connector/targets/target.js';
import { UemError, type UemAdapter, type UemDevice, type UemGroup } from '../../src/uem/adapter.js';
import { createWorkspaceOneAdapter } from '../../src/uem/adapters/workspace-one.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import type { WorkspaceOneState } from '../../src/uem/simulator/workspace-one.js';
import { targetFetch } from '../../src/uem/target-fetch.js';
import { tempDir, until } from '../helpers/procs.js';
import { rejectionOf } from '../helpers/rejection.js';

interface Reply {
  status: number;
  json: any;
  headers: Record<string, string | string[] | undefined>;
}

/** A raw HTTPS call (control endpoint, vendor bodies), trusting only the simulator's CA. */
function raw(port: number, ca: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, ca, agent: false, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, json, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const rejection = (p: Promise<unknown>): Promise<UemError> => rejectionOf(p, UemError);

async function ids(adapter: UemAdapter, group: UemGroup): Promise<string[]> {
  const out: string[] = [];
  for await (const page of adapter.devicesInGroup(group)) out.push(...page.devices.map((d: UemDevice) => d.id));
  return out;
}

const og = (id: number): UemGroup => ({ id: String(id), name: `og ${id}`, kind: 'organization', parentId: null });

describe('UEM simulator fault modes (Workspace ONE) and what the adapter makes of them', function () {
  this.timeout(30_000);
  let sim: RunningSimulator<WorkspaceOneState>;
  let target: Target;
  let adapter: UemAdapter;
  const control = (method: string, body?: unknown, token: string | null = sim.credentials.controlToken) =>
    raw(sim.port, sim.caPem, method, '/_simulator/faults', token === null ? {} : { 'x-simulator-control': token }, body === undefined ? undefined : JSON.stringify(body));

  before(async () => {
    sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-faults-'), devices: 300, seed: 5 });
    const c = sim.credentials;
    target = Target.resolve(
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
    adapter = createWorkspaceOneAdapter(targetFetch(target), { pageSize: 10 });
  });
  after(async () => {
    target?.close();
    await sim?.close();
  });
  beforeEach(() => {
    sim.state.faults = {};
  });

  it('truncatePages: a short page is a protocol error, for organization and smart groups alike', async () => {
    const healthy = await ids(adapter, og(572));
    expect(healthy.length).to.be.greaterThan(10);
    sim.state.faults = { truncatePages: true };
    const e = await rejection(ids(adapter, og(572)));
    expect(e.kind).to.equal('protocol');
    expect(e.message).to.match(/truncated/);
    const smart = (await adapter.groups()).find((g) => g.name === 'All Devices')!;
    expect((await rejection(ids(adapter, smart))).kind).to.equal('protocol');
    // The envelope still describes the full result while the page is cut.
    const r = await raw(sim.port, sim.caPem, 'GET', '/API/mdm/devices/search?pagesize=20', { authorization: `Basic ${Buffer.from(`${sim.credentials.username}:${sim.credentials.password}`).toString('base64')}`, 'aw-tenant-code': sim.credentials.apiKey });
    expect(r.json).to.include({ Total: 300, PageSize: 20, Page: 0 });
    expect(r.json.Devices).to.have.length(10);
    sim.state.faults = {};
    expect(await ids(adapter, og(572))).to.deep.equal(healthy);
  });

  it('rateLimit: rate_limited with retryAfterMs, for `count` requests', async () => {
    sim.state.faults = { rateLimit: { retryAfterSeconds: 7, count: 2 } };
    for (let i = 0; i < 2; i++) {
      const e = await rejection(adapter.ping());
      expect(e.kind).to.equal('rate_limited');
      expect(e.status).to.equal(429);
      expect(e.retryAfterMs).to.equal(7000);
    }
    await adapter.ping();
    expect(sim.state.faults).to.deep.equal({});
  });

  it('serverErrors (a count): unavailable, then healthy', async () => {
    sim.state.faults = { serverErrors: 2 };
    expect((await rejection(adapter.ping())).kind).to.equal('unavailable');
    expect((await rejection(adapter.groups())).kind).to.equal('unavailable');
    await adapter.ping();
    expect(sim.state.faults).to.deep.equal({});
  });

  it("authExpired: auth, with the vendor's 401/1005 body, until cleared", async () => {
    sim.state.faults = { authExpired: true };
    const e = await rejection(adapter.ping());
    expect(e.kind).to.equal('auth');
    expect(e.status).to.equal(401);
    const r = await raw(sim.port, sim.caPem, 'GET', '/API/system/info', { authorization: `Basic ${Buffer.from(`${sim.credentials.username}:${sim.credentials.password}`).toString('base64')}`, 'aw-tenant-code': sim.credentials.apiKey });
    expect(r.status).to.equal(401);
    expect(r.json).to.include({ errorCode: 1005 });
    expect(r.json.message).to.contain(sim.credentials.username);
    expect(r.headers['www-authenticate']).to.equal('Basic realm="AirWatch"');
    sim.state.faults = {};
    await adapter.ping();
  });

  it('latencyMs: every answer is late', async () => {
    sim.state.faults = { latencyMs: 300 };
    let t = Date.now();
    await adapter.ping();
    expect(Date.now() - t).to.be.at.least(290);
    sim.state.faults = {};
    t = Date.now();
    await adapter.ping();
    expect(Date.now() - t).to.be.below(250);
  });

  it('flapDevices: one-page listings differ, each consistent with its Total; a list that changes between pages fails the listing', async () => {
    const full = await ids(adapter, og(572));
    sim.state.faults = { flapDevices: 0.4 };
    // Pages of one listing come from different draws: with 10 a page, the Total changes between
    // them, and a device may have been skipped, so the listing fails instead of looking complete.
    const paged = await rejection(ids(adapter, og(572)));
    expect(paged.kind).to.equal('protocol');
    expect(paged.message).to.match(/the list changed while paging \(Total \d+, now \d+\)/);
    const onePage = createWorkspaceOneAdapter(targetFetch(target), { pageSize: 500 });
    const a = await ids(onePage, og(572));
    const b = await ids(onePage, og(572));
    expect(a.length).to.be.lessThan(full.length);
    expect(b.length).to.be.lessThan(full.length);
    expect(a).to.not.deep.equal(b);
    for (const id of [...a, ...b]) expect(full).to.include(id);
    expect(new Set(a).size).to.equal(a.length);
    const smart = (await adapter.groups()).find((g) => g.name === 'All Devices')!;
    const s1 = await ids(onePage, smart);
    const s2 = await ids(onePage, smart);
    expect(s1).to.not.deep.equal(s2);
  });

  it('control endpoint: 401 without the token, PUT validates and applies, GET reads back, PUT {} heals', async () => {
    expect((await control('GET', undefined, null)).status).to.equal(401);
    expect((await control('GET', undefined, 'wrong')).status).to.equal(401);
    expect((await control('PUT', { serverErrors: true }, null)).status).to.equal(401);
    expect(sim.state.faults).to.deep.equal({});

    const invalid = await control('PUT', { flapDevices: 2 });
    expect(invalid.status).to.equal(400);
    expect(invalid.json.message).to.contain('flapDevices');
    expect((await control('PUT', [1])).status).to.equal(400);
    expect(sim.state.faults).to.deep.equal({});

    const set = { latencyMs: 5, serverErrors: true, rateLimit: { retryAfterSeconds: 3 }, truncatePages: true, flapDevices: 0.1, authExpired: true };
    const put = await control('PUT', set);
    expect(put.status).to.equal(200);
    expect(put.json).to.deep.equal(set);
    expect(sim.state.faults).to.deep.equal(set);
    // The control endpoint itself is never faulted.
    const got = await control('GET');
    expect(got.status).to.equal(200);
    expect(got.json).to.deep.equal(set);
    expect((await rejection(adapter.ping())).kind).to.equal('unavailable');

    const healed = await control('PUT', {});
    expect(healed.status).to.equal(200);
    expect(healed.json).to.deep.equal({});
    await adapter.ping();
  });

  it('`simulate-uem --faults` starts with faults set and says where the control token is', async () => {
    const d = tempDir('uemlink-faults-cli-');
    const cliModule = fileURLToPath(new URL('../../src/uem/simulator/cli.js', import.meta.url));
    const script = `import { Command } from 'commander';
      const { simulateUemCommand } = await import(${JSON.stringify(cliModule)});
      const p = new Command('uemlink'); simulateUemCommand(p);
      await p.parseAsync(process.argv.slice(1), { from: 'user' });`;
    const args = ['--input-type=module', '-e', script, 'simulate-uem', '--vendor', 'workspace-one', '--listen', '127.0.0.1:0', '--state', d, '--devices', '5'];
    const cwd = fileURLToPath(new URL('../../../', import.meta.url));
    const child = spawn(process.execPath, [...args, '--faults', '{"serverErrors":1}'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.resume();
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const port = Number(await until(() => /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)?.[1], 15_000, `the simulator to listen (stderr: ${stderr})`));
      await until(() => stderr.includes('faults:'), 5000, 'the faults line');
      const creds = JSON.parse(readFileSync(join(d, 'credentials.json'), 'utf8'));
      expect(stderr).to.contain('x-simulator-control').and.contain(join(d, 'credentials.json')).and.contain('"serverErrors":1');
      expect(stderr).to.not.contain(creds.controlToken);
      const ca = readFileSync(join(d, 'ca.pem'), 'utf8');
      const got = await raw(port, ca, 'GET', '/_simulator/faults', { 'x-simulator-control': creds.controlToken });
      expect(got.json).to.deep.equal({ serverErrors: 1 });
      child.kill('SIGTERM');
      expect(await exited).to.equal(0);
    } finally {
      child.kill('SIGKILL');
    }
    // Invalid faults are a usage error, with the endpoint's own message.
    const bad = spawn(process.execPath, [...args, '--faults', '{"flapDevices":7}'], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let badErr = '';
    bad.stderr.on('data', (b: Buffer) => (badErr += b.toString()));
    const code = await new Promise<number | null>((resolve) => bad.on('exit', (c) => resolve(c)));
    expect(code).to.not.equal(0);
    expect(badErr).to.contain('--faults').and.contain('flapDevices');
  });
});
