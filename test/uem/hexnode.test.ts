import { expect } from 'chai';
import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { Clock } from '../../src/common/clock.js';
import { Target } from '../../src/connector/targets/target.js';
import { UemError, type UemAdapter, type UemDevice, type UemFetch, type UemGroup } from '../../src/uem/adapter.js';
import { createHexnodeAdapter, normalizePlatform, normalizeTime, throttleWaitMs, type HexnodeAdapterOptions } from '../../src/uem/adapters/hexnode.js';
import type { HxDevice } from '../../src/uem/simulator/hexnode-data.js';
import type { HexnodeState } from '../../src/uem/simulator/hexnode.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import { targetFetch } from '../../src/uem/target-fetch.js';
import { tempDir } from '../helpers/procs.js';
import { rejectionOf } from '../helpers/rejection.js';

function fakeClock(start = Date.now()): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    setInterval: (fn, ms) => setInterval(fn, ms),
    clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
    advance(ms) {
      now += ms;
    },
  };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

interface CallOptions {
  /** The Authorization header; undefined = the right API key, null = none. */
  key?: string | null;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One HTTPS request to a simulator on 127.0.0.1, trusting only its CA. */
function call(sim: RunningSimulator, method: string, path: string, o: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
  const key = o.key === undefined ? sim.credentials.apiKey : o.key;
  if (key !== null) headers.authorization = key;
  let payload: string | undefined;
  if (o.body !== undefined) {
    payload = JSON.stringify(o.body);
    headers['content-type'] = 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: sim.port, method, path, headers, ca: sim.caPem, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The direct route to the simulator (the one the cloud uses without a connector). */
function simTarget(sim: RunningSimulator, key = sim.credentials.apiKey): Target {
  return Target.resolve(
    {
      id: 't',
      baseUrl: sim.baseUrl,
      auth: { type: 'apiKey', header: 'Authorization', value: key, prefix: '' },
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

/** Follows `next` from `path` to the end; returns every item and the pages seen. */
async function walk(sim: RunningSimulator, path: string): Promise<{ items: any[]; pages: Reply[] }> {
  const items: any[] = [];
  const pages: Reply[] = [];
  let next: string | null = path;
  while (next !== null) {
    const r = await call(sim, 'GET', next);
    expect(r.status, r.text).to.equal(200);
    expect(r.json).to.have.keys('count', 'next', 'previous', 'results');
    pages.push(r);
    items.push(...r.json.results);
    if (r.json.next === null) break;
    const u: URL = new URL(r.json.next);
    expect(u.origin).to.equal(sim.url);
    next = `${u.pathname}${u.search}`;
  }
  return { items, pages };
}

const group = (id: number, name = `group ${id}`): UemGroup => ({ id: String(id), name, kind: 'device-group', parentId: null });

/** A UemFetch that notes every call it passes on (method and path), as the adapter made them. */
function recording(fetch: UemFetch): { fetch: UemFetch; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    fetch: (path, init) => {
      calls.push(`${init?.method ?? 'GET'} ${path}`);
      return fetch(path, init);
    },
  };
}

/** A UemFetch that edits JSON answers on their way to the adapter. */
function rewriting(fetch: UemFetch, edit: (body: any, path: string, n: number) => any): UemFetch {
  let n = 0;
  return async (path, init) => {
    const res = await fetch(path, init);
    if (!res.ok) return res;
    const body = edit(await res.json(), path, ++n);
    return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } });
  };
}

describe('Hexnode', function () {
  this.timeout(30_000);
  const DEVICES = 230;
  let dir: string;
  let sim: RunningSimulator;
  let state: HexnodeState;
  let target: Target;
  let fetch: UemFetch;
  const adapter = (o: HexnodeAdapterOptions = {}): UemAdapter => createHexnodeAdapter(fetch, o);
  const control = (method: string, body?: unknown, token: string | null = sim.credentials.controlToken) =>
    call(sim, method, '/_simulator/faults', { key: null, ...(body === undefined ? {} : { body }), headers: token === null ? {} : { 'x-simulator-control': token } });
  /** The custom group with the most members (several pages at a small page size). */
  const bigCustom = () => [...state.data.groups].filter((g) => g.grouptype === 'custom').sort((a, b) => b.members.size - a.members.size)[0]!;
  const bigCustomMembers = () => bigCustom().members;
  const smallCustom = () => [...state.data.groups].filter((g) => g.grouptype === 'custom' && g.members.size >= 20 && g.members.size <= 100).sort((a, b) => a.members.size - b.members.size)[0]!;

  before(async () => {
    dir = tempDir('uemlink-hexnode-');
    sim = await startSimulator({ vendor: 'hexnode', listen: { host: '127.0.0.1', port: 0 }, stateDir: dir, devices: DEVICES, seed: 7 });
    state = sim.state as HexnodeState;
    target = simTarget(sim);
    fetch = targetFetch(target);
  });
  after(async () => {
    target?.close();
    await sim?.close();
  });
  afterEach(() => {
    state.faults = {};
  });

  describe('simulator', () => {
    it('pages through /devices/ to the end with absolute next/previous links, DRF-style', async () => {
      const { items, pages } = await walk(sim, '/api/v1/devices/?per_page=50');
      expect(pages).to.have.length(Math.ceil(DEVICES / 50));
      expect(items).to.have.length(DEVICES);
      expect(new Set(items.map((d) => d.id)).size).to.equal(DEVICES);
      expect(items.map((d) => d.id)).to.deep.equal([...items.map((d) => d.id)].sort((a, b) => a - b));
      for (const p of pages) expect(p.json.count).to.equal(DEVICES);
      // Parameters sorted by name, page replaced; the link back to page 1 drops `page`.
      expect(pages[0]!.json.next).to.equal(`${sim.url}/api/v1/devices/?page=2&per_page=50`);
      expect(pages[0]!.json.previous).to.equal(null);
      expect(pages[1]!.json.previous).to.equal(`${sim.url}/api/v1/devices/?per_page=50`);
      expect(pages[2]!.json.previous).to.equal(`${sim.url}/api/v1/devices/?page=2&per_page=50`);
      expect(pages.at(-1)!.json.next).to.equal(null);
      expect(pages.at(-1)!.json.results).to.have.length(DEVICES % 50);
    });

    it('defaults per_page to 25, clamps it to 100, answers 404 "Invalid page." past the end', async () => {
      expect((await call(sim, 'GET', '/api/v1/devices/')).json.results).to.have.length(25);
      expect((await call(sim, 'GET', '/api/v1/devices/?per_page=abc')).json.results).to.have.length(25);
      expect((await call(sim, 'GET', '/api/v1/devices/?per_page=1000')).json.results).to.have.length(100);
      const last = await call(sim, 'GET', '/api/v1/devices/?page=last&per_page=100');
      expect(last.json.results).to.have.length(DEVICES - 200);
      for (const page of ['4', '0', 'x']) {
        const r = await call(sim, 'GET', `/api/v1/devices/?page=${page}&per_page=100`);
        expect(r.status).to.equal(404);
        expect(r.json).to.deep.equal({ detail: 'Invalid page.' });
      }
    });

    it('redirects a known path without its trailing slash (301) and answers unknown paths with HTML 404s', async () => {
      const r = await call(sim, 'GET', '/api/v1/devices?per_page=5', { key: null });
      expect(r.status).to.equal(301);
      expect(r.headers.location).to.equal('/api/v1/devices/?per_page=5');
      const unknown = await call(sim, 'GET', '/api/v1/nothing/');
      expect(unknown.status).to.equal(404);
      expect(unknown.headers['content-type']).to.match(/text\/html/);
      const notANumber = await call(sim, 'GET', '/api/v1/devicegroups/abc/');
      expect(notANumber.status).to.equal(404);
      expect(notANumber.json).to.equal(undefined);
      const caseSensitive = await call(sim, 'GET', '/api/v1/Devices/');
      expect(caseSensitive.status).to.equal(404);
    });

    it('serves realistic device records', async () => {
      const { items } = await walk(sim, '/api/v1/devices/?per_page=100');
      const devices = items as HxDevice[];
      const recorded = ['id', 'device_name', 'model_name', 'os_name', 'os_version', 'enrolled_time', 'last_reported', 'compliant', 'serial_number', 'udid', 'enrollment_status', 'user', 'imei'];
      expect(Object.keys(devices[0]!).slice(0, recorded.length)).to.deep.equal(recorded);
      expect(new Set(devices.map((d) => d.os_name))).to.include.keys('Android', 'iOS', 'Windows', 'macOS');
      expect(new Set(devices.map((d) => d.enrollment_status))).to.have.all.keys('enrolled', 'disenrolled');
      expect(devices.some((d) => d.compliant) && devices.some((d) => !d.compliant)).to.equal(true);
      for (const d of devices) {
        expect(d.enrolled_time).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
        if (d.last_reported !== null) expect(d.last_reported).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
        expect(d.user.id).to.be.a('number');
        if (d.imei !== '') expect(d.imei).to.match(/^\d{15}$/);
        if (d.os_name === 'Android') expect(d.udid).to.match(/^[0-9a-f]{16}$/);
        if (d.os_name === 'iOS') expect(d.udid).to.match(/^0000[0-9A-F]{4}-00[0-9A-F]{14}$/);
      }
      expect(devices.some((d) => d.user.name === 'Default User')).to.equal(true);
      expect(devices.filter((d) => d.user.id !== 1).every((d) => /^[a-z.0-9]+@northwind\.example$/.test(d.user.email))).to.equal(true);
      expect(devices.some((d) => d.phone_number.startsWith('+'))).to.equal(true);
      const member = [...bigCustomMembers()][0]!;
      const detail = await call(sim, 'GET', `/api/v1/devices/${member}/`);
      expect(detail.json.id).to.equal(member);
      expect(detail.json.device_groups.map((g: any) => g.id)).to.include(bigCustom().id);
      expect((await call(sim, 'GET', '/api/v1/devices/999999/')).json).to.deep.equal({ detail: 'Not found.' });
      const users = await walk(sim, '/api/v1/users/?per_page=100');
      expect(users.items[0]).to.include({ id: 1, name: 'Default User', domain: 'local' });
      expect(users.items[0]).to.have.keys('id', 'name', 'email', 'phoneno', 'total_devices', 'domain');
    });

    it('lists device groups: the built-in ones as recorded, custom ones, counts that match the members', async () => {
      const { items } = await walk(sim, '/api/v1/devicegroups/?per_page=100');
      expect(items.slice(0, 8).map((g) => [g.id, g.groupname, g.grouptype])).to.deep.equal([
        [1, 'Demo - Custom Device Group', 'custom'],
        [2, 'All Android Devices', 'dynamic'],
        [3, 'All Inactive Devices', 'dynamic'],
        [4, 'All iOS Devices', 'dynamic'],
        [5, 'All macOS Devices', 'dynamic'],
        [6, 'All Non-Compliant Devices', 'dynamic'],
        [7, 'All TvOS Devices', 'dynamic'],
        [8, 'All Windows Devices', 'dynamic'],
      ]);
      expect(items[0]).to.have.keys('id', 'groupname', 'description', 'grouptype', 'device_count', 'modified_date');
      expect(items.filter((g) => g.grouptype === 'custom').length).to.be.greaterThan(4);
      for (const g of items) {
        const detail = await call(sim, 'GET', `/api/v1/devicegroups/${g.id}/`);
        expect(detail.json).to.have.keys('id', 'groupname', 'description', 'devices', 'policy', 'location_history');
        expect(detail.json.devices).to.have.length(g.device_count);
        const filtered = await walk(sim, `/api/v1/devices/?devicegroup=${g.id}&per_page=100`);
        expect(filtered.items.map((d) => d.id)).to.deep.equal(detail.json.devices.map((d: any) => d.id));
      }
      const android = await call(sim, 'GET', '/api/v1/devicegroups/2/');
      expect(android.json.devices.length).to.be.greaterThan(0);
      for (const m of android.json.devices) {
        expect(m).to.have.keys('id', 'name', 'user_id', 'user_name', 'model_name', 'platform');
        expect(m.platform).to.equal('android');
        expect(state.data.device(m.id)!.enrollment_status).to.equal('enrolled');
      }
      const gone = await call(sim, 'GET', '/api/v1/devices/?devicegroup=9999');
      expect(gone.status).to.equal(400);
      expect(gone.json.devicegroup).to.be.an('array');
    });

    it('creates custom groups, adds and removes devices, refuses dynamic groups and unknown devices', async () => {
      const [a, b, c] = state.data.devices.map((d) => d.id);
      const created = await call(sim, 'POST', '/api/v1/devicegroups/', { body: { groupname: 'Simulator test group', description: '', devices: [a] } });
      expect(created.status, created.text).to.equal(201);
      const id = created.json.id as number;
      expect(created.json.devices.map((d: any) => d.id)).to.deep.equal([a]);
      const dup = await call(sim, 'POST', '/api/v1/devicegroups/', { body: { groupname: 'Simulator test group', description: '' } });
      expect(dup.status).to.equal(400);
      expect(dup.json.groupname[0]).to.match(/already exists/);
      expect((await call(sim, 'POST', '/api/v1/devicegroups/', { body: { groupname: 'x' } })).json).to.deep.equal({ description: ['This field is required.'] });

      const changed = await call(sim, 'POST', `/api/v1/devicegroups/${id}/`, { body: { add_devices: [b, String(c)], remove_devices: [a] } });
      expect(changed.status, changed.text).to.equal(200);
      expect(changed.json.devices.map((d: any) => d.id)).to.deep.equal([b, c]);
      // An id in both lists ends up added (as documented).
      const both = await call(sim, 'POST', `/api/v1/devicegroups/${id}/`, { body: { add_devices: [a], remove_devices: [a] } });
      expect(both.json.devices.map((d: any) => d.id)).to.deep.equal([a, b, c]);

      const unknown = await call(sim, 'POST', `/api/v1/devicegroups/${id}/`, { body: { add_devices: [999_999], remove_devices: [a] } });
      expect(unknown.status).to.equal(400);
      expect(unknown.json.add_devices[0]).to.match(/does not exist/);
      expect([...state.data.group(id)!.members]).to.have.members([a, b, c]); // nothing half-done
      expect((await call(sim, 'POST', `/api/v1/devicegroups/${id}/`, { body: { add_devices: [] } })).json).to.deep.equal({ remove_devices: ['This field is required.'] });

      const dynamic = await call(sim, 'POST', '/api/v1/devicegroups/2/', { body: { add_devices: [a], remove_devices: [] } });
      expect(dynamic.status).to.equal(400);
      expect(dynamic.json.detail).to.match(/dynamic/);
      expect((await call(sim, 'PUT', `/api/v1/devicegroups/${id}/`, { body: {} })).status).to.equal(405);

      expect((await call(sim, 'DELETE', `/api/v1/devicegroups/${id}/`)).status).to.equal(204);
      const after = await call(sim, 'GET', `/api/v1/devicegroups/${id}/`);
      expect(after.status).to.equal(404);
      expect(after.json).to.deep.equal({ detail: 'Not found.' });
    });

    it('serves per-device applications (paged), 404 for an unknown device', async () => {
      const d = state.data.devices.find((x) => state.data.appsFor(x).length > 2)!;
      const r = await walk(sim, `/api/v1/devices/${d.id}/applications/?per_page=2`);
      expect(r.items).to.deep.equal(state.data.appsFor(d));
      expect(r.items[0]).to.have.keys('id', 'name', 'identifier', 'version', 'managed');
      expect(r.items.some((a) => a.name === 'Hexnode UEM' && a.managed === true)).to.equal(true);
      const missing = await call(sim, 'GET', '/api/v1/devices/999999/applications/');
      expect(missing.status).to.equal(404);
      expect(missing.json).to.deep.equal({ detail: 'Not found.' });
    });

    it('answers 401 with a DRF body for a missing or wrong API key', async () => {
      const before = state.counters.authFailures;
      const none = await call(sim, 'GET', '/api/v1/devices/', { key: null });
      expect(none.status).to.equal(401);
      expect(none.json).to.deep.equal({ detail: 'Authentication credentials were not provided.' });
      const wrong = await call(sim, 'GET', '/api/v1/devices/', { key: 'not-the-key' });
      expect(wrong.status).to.equal(401);
      expect(wrong.json).to.deep.equal({ detail: 'Invalid token.' });
      const scheme = await call(sim, 'GET', '/api/v1/devices/', { key: `Token ${sim.credentials.apiKey}` });
      expect(scheme.status).to.equal(401); // the raw key, no scheme
      expect(state.counters.authFailures).to.equal(before + 3);
    });

    it('throttles beyond the quota with the vendor message (no Retry-After), per window', async () => {
      const clock = fakeClock();
      const q = await startSimulator({ vendor: 'hexnode', listen: { host: '127.0.0.1', port: 0 }, stateDir: dir, devices: 10, seed: 1, quotaPerMinute: 3, clock });
      try {
        expect((await call(q, 'GET', '/api/v1/devices/', { key: 'wrong' })).status).to.equal(401); // not counted
        for (let i = 0; i < 3; i++) expect((await call(q, 'GET', '/api/v1/devicegroups/')).status).to.equal(200);
        clock.advance(3_000);
        const r = await call(q, 'GET', '/api/v1/devicegroups/');
        expect(r.status).to.equal(429);
        expect(r.json).to.deep.equal({ detail: 'Request was throttled. Expected available in 57.0 seconds.' });
        expect(r.headers['retry-after']).to.equal(undefined);
        expect(q.state.counters.rateLimited).to.equal(1);
        clock.advance(57_000);
        expect((await call(q, 'GET', '/api/v1/devicegroups/')).status).to.equal(200);

        // What the adapter makes of it: rate_limited with the wait read from the message.
        for (let i = 0; i < 2; i++) await call(q, 'GET', '/api/v1/devicegroups/');
        const t = simTarget(q);
        try {
          const e = await rejection(createHexnodeAdapter(targetFetch(t)).groups());
          expect(e.kind).to.equal('rate_limited');
          expect(e.status).to.equal(429);
          expect(e.retryAfterMs).to.equal(60_000);
        } finally {
          t.close();
        }
      } finally {
        await q.close();
      }
    });
  });

  describe('adapter (through targetFetch)', () => {
    it('pings, and reports a wrong API key as auth', async () => {
      await adapter().ping();
      const t = simTarget(sim, 'wrong-key');
      try {
        const e = await rejection(createHexnodeAdapter(targetFetch(t)).ping());
        expect(e.kind).to.equal('auth');
        expect(e.status).to.equal(401);
        expect(e.message).to.include('Invalid token.');
      } finally {
        t.close();
      }
    });

    it('lists every device group as a device-group without parent', async () => {
      const groups = await adapter({ pageSize: 5 }).groups();
      expect(groups).to.deep.equal(state.data.groups.map((g) => ({ id: String(g.id), name: g.groupname, kind: 'device-group', parentId: null })));
    });

    it('lists each device of a group exactly once, across pages, with normalized fields', async () => {
      const g = bigCustom();
      expect(g.members.size).to.be.greaterThan(20);
      const { devices, pages } = await collect(adapter({ pageSize: 7 }).devicesInGroup(group(g.id, g.groupname)));
      expect(pages).to.equal(Math.ceil(g.members.size / 7));
      expect(devices.map((d) => d.id)).to.deep.equal([...g.members].sort((a, b) => a - b).map(String));

      for (const d of devices) {
        const raw = state.data.device(Number(d.id))!;
        expect(d).to.deep.equal({
          id: String(raw.id),
          udid: raw.udid,
          serial: raw.serial_number,
          name: raw.device_name,
          phone: raw.phone_number === '' ? null : raw.phone_number,
          ownerEmail: raw.user.email === '' ? null : raw.user.email,
          ownerName: raw.user.name,
          platform: { Android: 'android', iOS: 'ios', iPadOS: 'ios', Windows: 'windows', macOS: 'macos', tvOS: 'other' }[raw.os_name],
          os: raw.os_version,
          model: raw.model_name,
          enrollment: raw.enrollment_status,
          compliance: raw.compliant ? 'compliant' : 'noncompliant',
          lastSeen: raw.last_reported === null ? null : new Date(raw.last_reported).toISOString(),
        });
      }
      // Dynamic groups are listed the same way.
      const android = await collect(adapter().devicesInGroup(group(2)));
      expect(android.devices.length).to.be.greaterThan(0);
      expect(android.devices.every((d) => d.platform === 'android' && d.enrollment === 'enrolled')).to.equal(true);
    });

    it('reports a group that no longer exists as not_found', async () => {
      const e = await rejection(collect(adapter().devicesInGroup(group(424242))));
      expect(e.kind).to.equal('not_found');
      const bad = await rejection(collect(adapter().devicesInGroup(group(Number.NaN, 'x'))));
      expect(bad.kind).to.equal('not_found');
    });

    it('normalizes platforms and timestamps', () => {
      expect(['Android', 'iOS', 'iPadOS', 'Windows', 'macOS', 'tvOS', 'Mac OS X', ''].map((p) => normalizePlatform(p))).to.deep.equal(['android', 'ios', 'ios', 'windows', 'macos', 'other', 'macos', 'other']);
      expect(normalizeTime('2022-04-04T07:09:25.362338Z')).to.equal('2022-04-04T07:09:25.362Z');
      expect(normalizeTime('2022-04-04T07:09:25')).to.equal('2022-04-04T07:09:25.000Z');
      expect(normalizeTime(null)).to.equal(null);
      expect(normalizeTime('')).to.equal(null);
      expect(throttleWaitMs('Request was throttled. Expected available in 57.0 seconds.')).to.equal(57_000);
      expect(throttleWaitMs('Request was throttled. Expected available in 2 seconds.')).to.equal(2_000);
      expect(throttleWaitMs('Too many requests')).to.equal(undefined);
    });

    it('classifies answers the API would not give for a right address: redirects, HTML 404s, non-JSON', async () => {
      const answering =
        (res: () => Response): UemFetch =>
        async () =>
          res();
      const html404 = answering(() => new Response('<h1>Not Found</h1>', { status: 404, headers: { 'content-type': 'text/html' } }));
      const json404 = answering(() => Response.json({ detail: 'Not found.' }, { status: 404 }));
      const moved = answering(() => new Response(null, { status: 301, headers: { location: '/api/v1/devicegroups/?page=1' } }));
      const notJson = answering(() => new Response('<html>login</html>', { status: 200, headers: { 'content-type': 'text/html' } }));
      const relay = answering(() => Response.json({ error: 'no_connector', message: 'no connector' }, { status: 503, headers: { 'x-uemlink-error': 'no_connector' } }));
      const thrown: UemFetch = async () => {
        throw new TypeError('fetch failed');
      };
      expect((await rejection(createHexnodeAdapter(html404).ping())).kind).to.equal('protocol');
      expect((await rejection(createHexnodeAdapter(json404).tagGroupMembers('5', 'x'))).kind).to.equal('not_found');
      const m = await rejection(createHexnodeAdapter(moved).ping());
      expect(m.kind).to.equal('protocol');
      expect(m.message).to.include('redirected to /api/v1/devicegroups/?page=1');
      expect((await rejection(createHexnodeAdapter(notJson).ping())).kind).to.equal('protocol');
      expect((await rejection(createHexnodeAdapter(relay).ping())).kind).to.equal('unavailable');
      expect((await rejection(createHexnodeAdapter(thrown).ping())).kind).to.equal('unavailable');
    });

    it('reads apps one device at a time, at most 4 at once, and leaves out devices deleted meanwhile', async () => {
      const disenrolled = state.data.devices.find((d) => d.enrollment_status === 'disenrolled')!;
      const devices = [...state.data.devices.slice(0, 11).filter((d) => d !== disenrolled), disenrolled];
      let inFlight = 0;
      let most = 0;
      const paths: string[] = [];
      const counting: UemFetch = async (path, init) => {
        paths.push(path);
        inFlight++;
        most = Math.max(most, inFlight);
        try {
          return await fetch(path, init);
        } finally {
          inFlight--;
        }
      };
      const asUem = (d: HxDevice): UemDevice => ({ id: String(d.id) }) as UemDevice;
      const map = await createHexnodeAdapter(counting).apps([...devices.map(asUem), { id: '999999' } as UemDevice]);
      expect(paths).to.have.length(devices.length + 1);
      expect(paths.every((p) => /^\/devices\/\d+\/applications\/\?page=1&per_page=100$/.test(p))).to.equal(true);
      expect(most).to.be.at.most(4).and.at.least(2);
      expect([...map.keys()]).to.deep.equal(devices.map((d) => String(d.id)));
      for (const d of devices) {
        expect(map.get(String(d.id))).to.deep.equal(state.data.appsFor(d).map((a) => ({ id: a.identifier, name: a.name, version: a.version })));
      }
      expect(map.get(String(disenrolled.id))).to.deep.equal([]);
    });

    it('tags through a custom device group: create once, add, list members, remove', async () => {
      const rec = recording(fetch);
      const a = createHexnodeAdapter(rec.fetch);
      const name = 'uemlink Risk High';
      const posts = () => rec.calls.filter((c) => c === 'POST /devicegroups/').length;
      const id = await a.ensureTagGroup(name);
      expect(posts()).to.equal(1);
      expect(await a.ensureTagGroup(name)).to.equal(id);
      expect(posts()).to.equal(1);
      const g = state.data.group(Number(id))!;
      expect(g).to.include({ groupname: name, grouptype: 'custom' });

      expect(await a.tagGroupMembers(id, name)).to.deep.equal([]);
      const ids = state.data.devices.slice(3, 9).map((d) => String(d.id));
      await a.addToTagGroup(id, name, ids);
      await a.addToTagGroup(id, name, ids.slice(0, 2)); // idempotent
      expect(await a.tagGroupMembers(id, name)).to.deep.equal(ids);
      await a.removeFromTagGroup(id, name, ids.slice(0, 4));
      expect(await a.tagGroupMembers(id, name)).to.deep.equal(ids.slice(4));
      expect([...g.members].map(String)).to.deep.equal(ids.slice(4));

      // A device deleted in the portal since the last sync ("Invalid pk"): left out, the rest written.
      await a.addToTagGroup(id, name, ['999999', ids[0]!]);
      expect([...g.members].map(String).sort()).to.deep.equal([ids[0]!, ...ids.slice(4)].sort());
      await a.removeFromTagGroup(id, name, [ids[0]!, '999999']);
      expect([...g.members].map(String)).to.deep.equal(ids.slice(4));
      const notAnId = await rejection(a.addToTagGroup(id, name, ['abc']));
      expect(notAnId.kind).to.equal('not_found');
      const renamed = await rejection(a.tagGroupMembers(id, 'another name'));
      expect(renamed.kind).to.equal('not_found');
      const dynamic = await rejection(a.ensureTagGroup('All Android Devices'));
      expect(dynamic.kind).to.equal('protocol');
      const dynamicAdd = await rejection(a.addToTagGroup('2', 'All Android Devices', ids.slice(0, 1)));
      expect(dynamicAdd.kind).to.equal('protocol');
    });

    it('refuses next links to another origin, another listing or outside the API root', async () => {
      const g = bigCustom();
      const rewrite = (to: (next: string) => string, onAnswer: number) =>
        rewriting(fetch, (body, _path, n) => (n === onAnswer && typeof body.next === 'string' ? { ...body, next: to(body.next) } : body));
      const other = (next: string) => next.replace(sim.url, 'https://evil.example');

      // With the portal's origin given, the first link is already checked.
      let e = await rejection(collect(createHexnodeAdapter(rewrite(other, 1), { origin: sim.url, pageSize: 5 }).devicesInGroup(group(g.id))));
      expect(e.kind).to.equal('protocol');
      expect(e.message).to.match(/another host/);
      // Without it, the first absolute link pins the host.
      e = await rejection(collect(createHexnodeAdapter(rewrite(other, 2), { pageSize: 5 }).devicesInGroup(group(g.id))));
      expect(e.message).to.match(/another host/);
      e = await rejection(collect(createHexnodeAdapter(rewrite((n) => n.replace('/devices/', '/users/'), 1), { pageSize: 5 }).devicesInGroup(group(g.id))));
      expect(e.message).to.match(/leaves the listing/);
      e = await rejection(collect(createHexnodeAdapter(rewrite((n) => n.replace('/api/v1/', '/api/v2/'), 1), { pageSize: 5 }).devicesInGroup(group(g.id))));
      expect(e.message).to.match(/API root/);
      e = await rejection(collect(createHexnodeAdapter(rewrite(() => 'javascript:alert(1)', 1), { pageSize: 5 }).devicesInGroup(group(g.id))));
      expect(e.kind).to.equal('protocol');
      // A root-relative link on the same listing is fine.
      const relative = await collect(createHexnodeAdapter(rewrite((n) => n.replace(sim.url, ''), 1), { pageSize: 5 }).devicesInGroup(group(g.id)));
      expect(relative.devices).to.have.length(g.members.size);
    });

    it('never yields a page shorter than the envelope promises', async () => {
      const g = bigCustom();
      const dropLast = rewriting(fetch, (body, _path, n) => (n === 2 ? { ...body, results: body.results.slice(0, -1) } : body));
      const got: string[] = [];
      const e = await rejection(
        (async () => {
          for await (const p of createHexnodeAdapter(dropLast, { pageSize: 5 }).devicesInGroup(group(g.id))) got.push(...p.devices.map((d) => d.id));
        })(),
      );
      expect(e.kind).to.equal('protocol');
      expect(got).to.have.length(5); // page 1 only; the short page 2 was never handed out
      const noNextEarly = rewriting(fetch, (body) => ({ ...body, next: null }));
      expect((await rejection(collect(createHexnodeAdapter(noNextEarly, { pageSize: 5 }).devicesInGroup(group(g.id))))).kind).to.equal('protocol');
    });
  });

  describe('fault modes', () => {
    it('truncatePages: device listings come back short, the adapter says protocol', async () => {
      state.faults = { truncatePages: true };
      const g = smallCustom();
      const r = await call(sim, 'GET', `/api/v1/devices/?devicegroup=${g.id}&per_page=100`);
      expect(r.json.count).to.equal(g.members.size);
      expect(r.json.results.length).to.be.lessThan(g.members.size);
      for (const pageSize of [100, 5]) {
        const e = await rejection(collect(adapter({ pageSize }).devicesInGroup(group(g.id))));
        expect(e.kind).to.equal('protocol');
        expect(e.message).to.match(/truncated/);
      }
    });

    it('rateLimit: 429 with Retry-After becomes rate_limited with retryAfterMs', async () => {
      state.faults = { rateLimit: { retryAfterSeconds: 7, count: 1 } };
      const e = await rejection(adapter().groups());
      expect(e.kind).to.equal('rate_limited');
      expect(e.retryAfterMs).to.equal(7_000);
      expect(state.faults.rateLimit).to.equal(undefined);
      expect((await adapter().groups()).length).to.be.greaterThan(0);
    });

    it('a 429 while reading apps surfaces at once and is not retried', async () => {
      state.faults = { rateLimit: { retryAfterSeconds: 30 } };
      const rec = recording(fetch);
      const devices = state.data.devices.slice(0, 20).map((d) => ({ id: String(d.id) }) as UemDevice);
      const e = await rejection(createHexnodeAdapter(rec.fetch).apps(devices));
      expect(e.kind).to.equal('rate_limited');
      expect(e.retryAfterMs).to.equal(30_000);
      // The calls already in flight when the first 429 came back, and nothing after it, nothing twice.
      expect(rec.calls.length).to.be.at.most(4);
      expect(new Set(rec.calls).size).to.equal(rec.calls.length);
    });

    it('serverErrors: unavailable', async () => {
      state.faults = { serverErrors: 1 };
      const e = await rejection(adapter().ping());
      expect(e.kind).to.equal('unavailable');
      expect(e.status).to.equal(500);
      await adapter().ping();
    });

    it('authExpired: auth, with the vendor 401 body', async () => {
      state.faults = { authExpired: true };
      const r = await call(sim, 'GET', '/api/v1/devicegroups/');
      expect(r.status).to.equal(401);
      expect(r.json).to.deep.equal({ detail: 'Invalid token.' });
      const e = await rejection(adapter().groups());
      expect(e.kind).to.equal('auth');
    });

    it('flapDevices: the list changes between calls; a listing that changes while paging is protocol', async () => {
      state.faults = { flapDevices: 0.5 };
      const g = smallCustom();
      const one = (await collect(adapter().devicesInGroup(group(g.id)))).devices.map((d) => d.id);
      const two = (await collect(adapter().devicesInGroup(group(g.id)))).devices.map((d) => d.id);
      expect(one.length).to.be.lessThan(g.members.size);
      expect(one).to.not.deep.equal(two);
      const big = bigCustom();
      const e = await rejection(collect(adapter({ pageSize: 2 }).devicesInGroup(group(big.id))));
      expect(e.kind).to.equal('protocol');
    });
  });

  describe('control endpoint', () => {
    it('needs the control token; PUT sets the faults, GET reads them, PUT {} heals', async () => {
      expect((await control('GET', undefined, null)).status).to.equal(401);
      expect((await control('GET', undefined, 'wrong')).status).to.equal(401);
      expect((await control('PUT', { serverErrors: true }, null)).status).to.equal(401);
      expect(state.faults).to.deep.equal({});

      const put = await control('PUT', { latencyMs: 5, flapDevices: 0.25 });
      expect(put.status).to.equal(200);
      expect(put.json).to.deep.equal({ latencyMs: 5, flapDevices: 0.25 });
      expect((await control('GET')).json).to.deep.equal({ latencyMs: 5, flapDevices: 0.25 });
      expect((await control('PUT', { flapDevices: 2 })).status).to.equal(400);
      expect((await control('PUT', {})).json).to.deep.equal({});
      expect(state.faults).to.deep.equal({});
    });
  });
});
