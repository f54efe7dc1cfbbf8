import { expect } from 'chai';
import { request } from 'node:https';
import { Target } from '../../src/connector/targets/target.js';
import { UemError, type DevicePage, type UemAdapter, type UemDevice, type UemFetch, type UemGroup } from '../../src/uem/adapter.js';
import { createIvantiEpmmAdapter, normalizeDevice, normalizePlatform, normalizeTime } from '../../src/uem/adapters/ivanti-epmm.js';
import { DEVICE_FIELDS, generateEpmmData, type EpmmDevice } from '../../src/uem/simulator/ivanti-epmm-data.js';
import { matches, parseQuery, QueryError } from '../../src/uem/simulator/ivanti-epmm-query.js';
import type { IvantiEpmmState } from '../../src/uem/simulator/ivanti-epmm.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import { targetFetch } from '../../src/uem/target-fetch.js';
import { tempDir } from '../helpers/procs.js';
import { rejectionOf } from '../helpers/rejection.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const SPACE = 'adminDeviceSpaceId=1';
const ALL_FIELDS = [...DEVICE_FIELDS].join(',');

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

type Auth = 'basic' | 'none' | { user: string; password: string };

/** One HTTPS request to the simulator on 127.0.0.1, trusting only its CA. */
function call(sim: RunningSimulator, method: string, path: string, o: { auth?: Auth; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
  const c = sim.credentials;
  const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
  const auth = o.auth ?? 'basic';
  if (auth !== 'none') {
    const [u, p] = auth === 'basic' ? [c.username, c.password] : [auth.user, auth.password];
    headers.authorization = `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  }
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

const q = (params: Record<string, string | number>): string => new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();

function expectEpmmError(r: Reply, status: number): void {
  expect(r.status, r.text).to.equal(status);
  expect(r.json).to.have.key('messages');
  expect(r.json.messages[0]).to.include({ type: 'Error' });
  expect(r.json.messages[0].localizedMessage).to.be.a('string').and.not.equal('');
}

/** Every page of a device listing, checking the envelope on the way. */
async function allPages(sim: RunningSimulator, params: Record<string, string | number>, limit: number): Promise<{ rows: any[]; pages: number; total: number }> {
  const rows: any[] = [];
  for (let offset = 0, pages = 1; ; pages++) {
    const r = await call(sim, 'GET', `/api/v2/devices?${SPACE}&${q({ ...params, limit, offset })}`);
    expect(r.status, r.text).to.equal(200);
    expect(r.json).to.have.keys('totalCount', 'resultCount', 'hasMore', 'results');
    expect(r.json.resultCount).to.equal(r.json.results.length);
    expect(r.json.hasMore).to.equal(offset + r.json.resultCount < r.json.totalCount);
    rows.push(...r.json.results);
    if (!r.json.hasMore) return { rows, pages, total: r.json.totalCount };
    expect(r.json.resultCount).to.equal(limit);
    offset += r.json.resultCount;
  }
}

/** The direct route to the simulator (the one the cloud uses without a connector). */
function simTarget(sim: RunningSimulator, password = sim.credentials.password): Target {
  return Target.resolve(
    {
      id: 't',
      baseUrl: sim.baseUrl,
      auth: { type: 'basic', username: sim.credentials.username, password, apiKeyHeader: 'aw-tenant-code' },
      tls: { ca: sim.caPem },
      timeoutMs: 10_000,
      maxConcurrent: 8,
      allow: [],
    } as any,
    { where: 't', origin: 'local' },
  );
}

async function collect(it: AsyncIterable<DevicePage>): Promise<{ devices: UemDevice[]; pages: number }> {
  const devices: UemDevice[] = [];
  let pages = 0;
  for await (const p of it) {
    pages++;
    devices.push(...p.devices);
  }
  return { devices, pages };
}

const rejection = (p: Promise<unknown>): Promise<UemError> => rejectionOf(p, UemError);

const label = (id: number, name: string): UemGroup => ({ id: String(id), name, kind: 'label', parentId: null });

describe('Ivanti EPMM', function () {
  this.timeout(30_000);
  const DEVICES = 457;
  let sim: RunningSimulator;
  let state: IvantiEpmmState;

  before(async () => {
    sim = await startSimulator({ vendor: 'ivanti-epmm', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-epmm-'), devices: DEVICES, seed: 7 });
    state = sim.state as IvantiEpmmState;
  });
  after(async () => {
    await sim?.close();
  });
  afterEach(() => {
    state.faults = {};
  });

  describe('data and query language', () => {
    it('generates the same fleet from the same seed', () => {
      const a = generateEpmmData({ devices: 50, seed: 3, asOf: 1_700_000_000_000 });
      const b = generateEpmmData({ devices: 50, seed: 3, asOf: 1_700_000_000_000 });
      expect(JSON.stringify(a.devices)).to.equal(JSON.stringify(b.devices));
      expect(a.labels.map((l) => [l.id, [...l.members]])).to.deep.equal(b.labels.map((l) => [l.id, [...l.members]]));
    });

    it('parses and evaluates comparisons, AND/OR/NOT and parentheses', () => {
      const r = { 'common.status': 'ACTIVE', 'common.compliant': false, 'common.model': 'iPhone 14', 'common.os_version': '17.6.1', 'ios.DeviceName': null };
      const t = (s: string): boolean => matches(parseQuery(s), r);
      expect(t('')).to.equal(true);
      expect(t('common.status="ACTIVE"')).to.equal(true);
      expect(t('common.status = "active"')).to.equal(true);
      expect(t('"common.compliant" = true')).to.equal(false);
      expect(t('common.status = "ACTIVE" AND (common.compliant = true OR common.model "starts with" "iphone")')).to.equal(true);
      expect(t('NOT common.status = "RETIRED" and common.os_version >= "9.0"')).to.equal(true); // numeric: 17.6.1 >= 9.0
      expect(t('common.model contains 14')).to.equal(true);
      expect(t('ios.DeviceName = null')).to.equal(true);
      expect(t('common.imei != "1"')).to.equal(true);
      for (const bad of ['common.status', 'common.status = ', '(common.status = "A"', 'common.status ~ "A"', 'a = "b" c', '"unterminated']) {
        expect(() => parseQuery(bad), bad).to.throw(QueryError);
      }
      expect(() => parseQuery('nope = 1', { knownField: (f) => f.startsWith('common.') })).to.throw(QueryError, /unknown search field/);
    });
  });

  describe('simulator', () => {
    it('answers ping, under /api/v2 and the cloud variant /rest/api/v2', async () => {
      for (const base of ['/api/v2', '/rest/api/v2']) {
        const r = await call(sim, 'GET', `${base}/ping`);
        expect(r.status, base).to.equal(200);
        expect(r.json.results.apiVersion).to.equal(2);
        expect(r.json.results.vspVersion).to.match(/^VSP [\d.]+ Build \d+$/);
      }
      expect(sim.baseUrl).to.match(/\/api\/v2$/);
      expectEpmmError(await call(sim, 'GET', '/api/v2/nothing-here'), 404);
    });

    it('refuses missing or wrong Basic credentials with 401 and the error body', async () => {
      const failures = state.counters.authFailures;
      const wrong = await call(sim, 'GET', `/api/v2/devices?${SPACE}&fields=common.uuid&query=`, { auth: { user: sim.credentials.username, password: 'wrong' } });
      expectEpmmError(wrong, 401);
      expect(wrong.json.messages[0].messageKey).to.equal('com.mobileiron.vsp.messages.http.401');
      expect(wrong.headers['www-authenticate']).to.match(/^Basic realm=/);
      expectEpmmError(await call(sim, 'GET', '/api/v2/ping', { auth: 'none' }), 401);
      expect(state.counters.authFailures).to.equal(failures + 2);
    });

    it('pages through every device with offset/limit and the envelope, returning only the fields asked for', async () => {
      const { rows, pages, total } = await allPages(sim, { fields: 'common.uuid,common.id', query: '' }, 200);
      expect(pages).to.equal(3);
      expect(total).to.equal(DEVICES);
      expect(rows).to.have.length(DEVICES);
      expect(new Set(rows.map((d) => d['common.uuid'])).size).to.equal(DEVICES);
      for (const d of rows) expect(d).to.have.keys('common.uuid', 'common.id');
      const ids = rows.map((d) => d['common.id'] as number);
      expect(ids).to.deep.equal([...ids].sort((a, b) => a - b));
      // Past the end: an empty page with the real total; limit 0: a count only.
      const past = await call(sim, 'GET', `/api/v2/devices?${SPACE}&fields=common.uuid&query=&offset=5000&limit=10`);
      expect(past.json).to.deep.equal({ totalCount: DEVICES, resultCount: 0, hasMore: false, results: [] });
      const zero = await call(sim, 'GET', `/api/v2/devices?${SPACE}&fields=common.uuid&query=&limit=0`);
      expect(zero.json).to.include({ totalCount: DEVICES, resultCount: 0, hasMore: true });
      // Default limit 50; descending order; unknown fields left out.
      const def = await call(sim, 'GET', `/api/v2/devices?${SPACE}&fields=common.id,no.such_field&query=&sortField=common.id&sortOrder=DESC`);
      expect(def.json.resultCount).to.equal(50);
      expect(def.json.results[0]).to.deep.equal({ 'common.id': Math.max(...ids) });
    });

    it('serves realistic flat dotted-key device records', async () => {
      const { rows } = await allPages(sim, { fields: ALL_FIELDS, query: '' }, 200);
      const d = rows[0]!;
      expect(d['common.uuid']).to.match(UUID);
      expect(d['common.id']).to.be.a('number');
      expect(d['user.email_address']).to.match(/^[a-z0-9.-]+@globex\.example$/);
      expect(d['user.display_name']).to.be.a('string').and.match(/\S \S/);
      expect(d['common.device_space_name']).to.equal('Global');
      expect(new Set(rows.map((x) => x['common.platform']))).to.include.all.keys('iOS', 'Android', 'Windows');
      expect(new Set(rows.map((x) => x['common.owner']))).to.have.all.keys('COMPANY', 'EMPLOYEE');
      expect(new Set(rows.map((x) => x['common.status']))).to.include.all.keys('ACTIVE', 'RETIRED', 'VERIFICATION_PENDING');
      for (const x of rows) {
        expect(x['common.compliant']).to.be.a('boolean');
        expect(x['common.quarantined']).to.be.a('boolean');
        if (x['common.status'] === 'VERIFICATION_PENDING') expect(x['common.last_connected_at']).to.equal(null);
        else expect(x['common.last_connected_at']).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$/);
        if (x['common.platform'] === 'iOS') expect(x['ios.DeviceName']).to.be.a('string');
        else if (x['common.platform'] !== 'macOS') expect(x['ios.DeviceName']).to.equal(null);
      }
      expect(rows.some((x) => typeof x['common.current_phone_number'] === 'string' && /^\+1555\d{7}$/.test(x['common.current_phone_number']))).to.equal(true);
      expect(rows.some((x) => x['common.quarantined'] === true)).to.equal(true);
    });

    it('filters with query, and refuses bad parameters with 400 (403 for another device space)', async () => {
      const active = await allPages(sim, { fields: 'common.uuid,common.status', query: 'common.status="ACTIVE"' }, 200);
      expect(active.rows.length).to.equal(state.data.devices.filter((d) => d['common.status'] === 'ACTIVE').length).and.be.greaterThan(0);
      expect(active.rows.every((d) => d['common.status'] === 'ACTIVE')).to.equal(true);
      const q2 = 'common.status = "ACTIVE" AND (common.compliant = false OR common.quarantined = true)';
      const bad = await allPages(sim, { fields: 'common.uuid', query: q2 }, 200);
      expect(bad.rows.length).to.equal(state.data.devices.filter((d) => d['common.status'] === 'ACTIVE' && (!d['common.compliant'] || d['common.quarantined'])).length);
      const count = await call(sim, 'GET', `/api/v2/devices/count?${SPACE}&${q({ query: 'common.status="ACTIVE"' })}`);
      expect(count.json).to.deep.equal({ totalCount: active.rows.length });

      const path = (params: Record<string, string | number>): string => `/api/v2/devices?${q(params)}`;
      expectEpmmError(await call(sim, 'GET', path({ adminDeviceSpaceId: 1, fields: 'common.uuid', query: 'common.status = ' })), 400);
      expectEpmmError(await call(sim, 'GET', path({ adminDeviceSpaceId: 1, fields: 'common.uuid', query: 'common.nope = 1' })), 400);
      expectEpmmError(await call(sim, 'GET', path({ adminDeviceSpaceId: 1, fields: 'common.uuid', query: 'x'.repeat(256) })), 400);
      expectEpmmError(await call(sim, 'GET', path({ adminDeviceSpaceId: 1, fields: 'common.uuid' })), 400); // neither query nor labelId
      expectEpmmError(await call(sim, 'GET', path({ adminDeviceSpaceId: 1, query: '' })), 400); // no fields
      expectEpmmError(await call(sim, 'GET', path({ adminDeviceSpaceId: 1, fields: 'common.uuid', query: '', limit: 201 })), 400);
      expectEpmmError(await call(sim, 'GET', path({ adminDeviceSpaceId: 1, fields: 'common.uuid', query: '', offset: -1 })), 400);
      expectEpmmError(await call(sim, 'GET', path({ adminDeviceSpaceId: 1, fields: 'common.uuid', query: '', sortField: 'x' })), 400);
      expectEpmmError(await call(sim, 'GET', path({ fields: 'common.uuid', query: '' })), 400);
      expectEpmmError(await call(sim, 'GET', path({ adminDeviceSpaceId: 2, fields: 'common.uuid', query: '' })), 403);
    });

    it('lists labels with the envelope: system and admin, static and dynamic, with device counts', async () => {
      const all: any[] = [];
      for (let offset = 0; ; offset += 5) {
        const r = await call(sim, 'GET', `/api/v2/labels/label_summary?${SPACE}&limit=5&offset=${offset}`);
        expect(r.status).to.equal(200);
        expect(r.json.resultCount).to.equal(r.json.results.length);
        all.push(...r.json.results);
        if (!r.json.hasMore) break;
      }
      expect(all).to.have.length(state.data.labels.length);
      const smart = all.find((l) => l.name === 'All-Smartphones');
      expect(smart).to.include({ id: -1, isStatic: false, rowType: 'SYSTEM', deviceSpaceId: 1, deviceSpaceName: 'Global' });
      expect(smart.deviceCount).to.equal(state.data.devices.filter((d) => d['common.status'] !== 'RETIRED').length);
      const whse = all.find((l) => l.name === 'Warehouse Scanners');
      expect(whse).to.include({ isStatic: true, criteria: '', rowType: 'ADMIN' });
      expect(whse.deviceCount).to.be.greaterThan(10);
      expect(all[0]).to.have.keys('id', 'name', 'description', 'isStatic', 'criteria', 'deviceCount', 'deviceSpaceId', 'deviceSpaceName', 'deviceSpacePath', 'rowType');
      expectEpmmError(await call(sim, 'GET', `/api/v2/labels/label_summary?${SPACE}&limit=201`), 400);
      const byName = await call(sim, 'GET', `/api/v2/labels/label_summary?${SPACE}&sortField=name&sortOrder=DESC&limit=200`);
      const names = byName.json.results.map((l: any) => l.name.toLowerCase());
      expect(names).to.deep.equal([...names].sort().reverse());
    });

    it('filters devices by labelId (static and dynamic labels, combined with a query); 404 for an unknown label', async () => {
      const data = state.data;
      const whse = data.labels.find((l) => l.name === 'Warehouse Scanners')!;
      const got = await allPages(sim, { fields: 'common.uuid,common.manufacturer', labelId: whse.id }, 200);
      expect(got.rows.map((d) => d['common.uuid'])).to.deep.equal(data.members(whse).map((d) => d['common.uuid']));
      expect(got.rows.every((d) => d['common.manufacturer'] === 'Zebra Technologies')).to.equal(true);
      const ios = data.labels.find((l) => l.name === 'iOS')!;
      const iosActive = await allPages(sim, { fields: 'common.platform,common.status', labelId: ios.id, query: 'common.status = "ACTIVE"' }, 200);
      expect(iosActive.rows.length).to.equal(data.devices.filter((d) => d['common.platform'] === 'iOS' && d['common.status'] === 'ACTIVE').length);
      expect(iosActive.rows.every((d) => d['common.platform'] === 'iOS' && d['common.status'] === 'ACTIVE')).to.equal(true);
      expectEpmmError(await call(sim, 'GET', `/api/v2/devices?${SPACE}&fields=common.uuid&labelId=987654`), 404);
    });

    it('serves app inventories for at most 25 devices per call; unknown uuids are left out', async () => {
      const data = state.data;
      const active = data.devices.filter((d) => d['common.status'] === 'ACTIVE').slice(0, 25);
      const r = await call(sim, 'GET', `/api/v2/devices/appinventory?${SPACE}&deviceUuids=${active.map((d) => d['common.uuid']).join(',')}`);
      expect(r.status, r.text).to.equal(200);
      expect(r.json.results).to.have.length(25);
      expect(r.json.results.map((x: any) => x.deviceUuid)).to.deep.equal(active.map((d) => d['common.uuid']));
      const withApps = r.json.results.find((x: any) => x.appInventory.length > 0);
      expect(withApps.appInventory[0]).to.have.keys('name', 'version', 'identifier', 'managed');
      expect(withApps.appInventory).to.deep.equal(data.appsFor(data.deviceByUuid(withApps.deviceUuid)!));
      const unknown = await call(sim, 'GET', `/api/v2/devices/appinventory?${SPACE}&deviceUuids=${active[0]!['common.uuid']},00000000-0000-4000-8000-000000000000`);
      expect(unknown.json.results.map((x: any) => x.deviceUuid)).to.deep.equal([active[0]!['common.uuid']]);
      const many = data.devices.slice(0, 26).map((d) => d['common.uuid']);
      expectEpmmError(await call(sim, 'GET', `/api/v2/devices/appinventory?${SPACE}&deviceUuids=${many.join(',')}`), 400);
      expectEpmmError(await call(sim, 'GET', `/api/v2/devices/appinventory?${SPACE}`), 400);
      const retired = data.devices.find((d) => d['common.status'] === 'RETIRED')!;
      const none = await call(sim, 'GET', `/api/v2/devices/appinventory?${SPACE}&deviceUuids=${retired['common.uuid']}`);
      expect(none.json.results).to.deep.equal([{ deviceUuid: retired['common.uuid'], appInventory: [] }]);
    });

    it('adds devices to and removes them from static labels by name, creating a static label on the first add', async () => {
      const data = state.data;
      const uuids = data.devices.slice(0, 3).map((d) => d['common.uuid']);
      const name = 'Sim Test Label';
      const path = (op: string, n = name): string => `/api/v2/devices/labels/${encodeURIComponent(n)}/${op}?${SPACE}`;
      const add = await call(sim, 'PUT', path('add'), { body: { deviceUuids: uuids } });
      expect(add.status, add.text).to.equal(200);
      expect(add.json).to.deep.equal({ successful: true });
      const created = data.labelByName(name)!;
      expect(created).to.include({ name, rowType: 'ADMIN', criteria: null });
      expect(created.id).to.be.greaterThan(199);
      expect(data.members(created).map((d) => d['common.uuid'])).to.have.members(uuids);
      // Idempotent both ways; unknown uuids are ignored; names match in any case.
      expect((await call(sim, 'PUT', path('add', name.toUpperCase()), { body: { deviceUuids: [uuids[0], '00000000-0000-4000-8000-000000000000'] } })).json).to.deep.equal({ successful: true });
      expect((await call(sim, 'PUT', path('remove'), { body: { deviceUuids: [uuids[1]] } })).status).to.equal(200);
      expect((await call(sim, 'PUT', path('remove'), { body: { deviceUuids: [uuids[1]] } })).status).to.equal(200);
      expect(data.members(created).map((d) => d['common.uuid'])).to.have.members([uuids[0], uuids[2]]);
      const listed = await allPages(sim, { fields: 'common.uuid', labelId: created.id }, 200);
      expect(listed.rows.map((d) => d['common.uuid'])).to.have.members([uuids[0], uuids[2]]);

      expectEpmmError(await call(sim, 'PUT', path('remove', 'No Such Label'), { body: { deviceUuids: uuids } }), 404);
      expectEpmmError(await call(sim, 'PUT', path('add', 'iOS'), { body: { deviceUuids: uuids } }), 400); // dynamic
      expectEpmmError(await call(sim, 'PUT', path('add'), { body: { uuids } }), 400);
      expectEpmmError(await call(sim, 'PUT', path('add'), { body: 'not json', headers: { 'content-type': 'application/json' } }), 400);
    });

    it('has a control endpoint: 401 without the token, PUT then GET the faults, PUT {} heals', async () => {
      const token = sim.credentials.controlToken;
      const base = sim.baseUrl.replace(/\/api\/v2$/, '');
      expect(base).to.equal(sim.url);
      expect((await call(sim, 'GET', '/_simulator/faults', { auth: 'none' })).status).to.equal(401);
      expect((await call(sim, 'GET', '/_simulator/faults', { auth: 'none', headers: { 'x-simulator-control': 'wrong' } })).status).to.equal(401);
      const put = await call(sim, 'PUT', '/_simulator/faults', { auth: 'none', headers: { 'x-simulator-control': token }, body: { serverErrors: 1, latencyMs: 5 } });
      expect(put.status, put.text).to.equal(200);
      const get = await call(sim, 'GET', '/_simulator/faults', { auth: 'none', headers: { 'x-simulator-control': token } });
      expect(get.json).to.deep.equal({ serverErrors: 1, latencyMs: 5 });
      expect((await call(sim, 'GET', '/api/v2/ping')).status).to.equal(500);
      expect((await call(sim, 'GET', '/api/v2/ping')).status).to.equal(200); // the count ran out
      const bad = await call(sim, 'PUT', '/_simulator/faults', { auth: 'none', headers: { 'x-simulator-control': token }, body: { flapDevices: 2 } });
      expect(bad.status).to.equal(400);
      expect((await call(sim, 'PUT', '/_simulator/faults', { auth: 'none', headers: { 'x-simulator-control': token }, body: {} })).json).to.deep.equal({});
      expect(state.faults).to.deep.equal({});
    });
  });

  describe('adapter (through targetFetch)', () => {
    let target: Target;
    let fetch: UemFetch;
    let adapter: UemAdapter;

    before(() => {
      target = simTarget(sim);
      fetch = targetFetch(target);
      adapter = createIvantiEpmmAdapter(fetch);
    });
    after(() => {
      target?.close();
    });

    it('pings; wrong credentials give an auth error', async () => {
      await adapter.ping();
      const bad = simTarget(sim, 'wrong');
      try {
        const e = await rejection(createIvantiEpmmAdapter(targetFetch(bad)).ping());
        expect(e.kind).to.equal('auth');
        expect(e.status).to.equal(401);
        expect(e.message).to.match(/Unauthorized/);
      } finally {
        bad.close();
      }
    });

    it('lists every label as a group of kind "label" without a parent', async () => {
      const groups = await createIvantiEpmmAdapter(fetch, { pageSize: 4 }).groups();
      expect(groups.map((g) => g.id)).to.have.members(state.data.labels.map((l) => String(l.id)));
      expect(groups.every((g) => g.kind === 'label' && g.parentId === null)).to.equal(true);
      expect(groups.find((g) => g.id === '-1')).to.deep.equal({ id: '-1', name: 'All-Smartphones', kind: 'label', parentId: null });
    });

    it('yields every device of a label exactly once, page by page, normalized', async () => {
      const data = state.data;
      const smart = data.labels.find((l) => l.id === -1)!;
      const expected = data.members(smart);
      expect(expected.length).to.be.greaterThan(400);
      sim.state.clearRequestLog();
      const { devices, pages } = await collect(adapter.devicesInGroup(label(-1, 'All-Smartphones')));
      expect(pages).to.equal(Math.ceil(expected.length / 200));
      expect(devices.map((d) => d.id)).to.deep.equal(expected.map((d) => d['common.uuid']));
      const listings = sim.state.requests.filter((r) => r.path === '/api/v2/devices');
      expect(listings).to.have.length(pages);
      expect(listings.every((r) => /(^|&)limit=200(&|$)/.test(r.query) && /(^|&)labelId=-1(&|$)/.test(r.query))).to.equal(true);

      // Small pages: a static label, all its members once.
      const whse = data.labels.find((l) => l.name === 'Warehouse Scanners')!;
      const small = await collect(createIvantiEpmmAdapter(fetch, { pageSize: 7 }).devicesInGroup(label(whse.id, whse.name)));
      expect(small.pages).to.equal(Math.ceil(data.members(whse).length / 7));
      expect(small.devices.map((d) => d.id)).to.deep.equal(data.members(whse).map((d) => d['common.uuid']));

      // Normalized fields, against the records they came from.
      const byUuid = new Map(devices.map((d) => [d.id, d]));
      const check = (pick: (d: EpmmDevice) => boolean, f: (raw: EpmmDevice, n: UemDevice) => void): void => {
        const raw = expected.find(pick)!;
        expect(raw, 'a device to check').to.not.equal(undefined);
        f(raw, byUuid.get(raw['common.uuid'])!);
      };
      check(
        (d) => d['common.platform'] === 'iOS' && d['common.status'] === 'ACTIVE' && d['common.current_phone_number'] !== null,
        (raw, n) => {
          expect(n).to.deep.equal({
            id: raw['common.uuid'],
            udid: null,
            serial: raw['common.SerialNumber'],
            name: raw['ios.DeviceName'],
            phone: raw['common.current_phone_number'],
            ownerEmail: raw['user.email_address'],
            ownerName: raw['user.display_name'],
            platform: 'ios',
            os: raw['common.os_version'],
            model: raw['common.model'],
            enrollment: 'enrolled',
            compliance: raw['common.quarantined'] || !raw['common.compliant'] ? 'noncompliant' : 'compliant',
            lastSeen: raw['common.last_connected_at'],
          });
        },
      );
      check((d) => d['common.platform'] === 'Android', (_raw, n) => expect(n).to.include({ platform: 'android', name: null }));
      check((d) => d['common.platform'] === 'Windows', (_raw, n) => expect(n).to.include({ platform: 'windows', phone: null }));
      check((d) => d['common.status'] === 'VERIFICATION_PENDING', (_raw, n) => expect(n).to.include({ enrollment: 'verification_pending', lastSeen: null }));
      check((d) => d['common.quarantined'], (_raw, n) => expect(n.compliance).to.equal('noncompliant'));
      expect(new Set(devices.map((d) => d.platform))).to.include.all.keys('ios', 'android', 'windows');
    });

    it('can restrict device listings with a query; an unknown label is not_found; other group kinds too', async () => {
      const a = createIvantiEpmmAdapter(fetch, { deviceQuery: 'common.status = "ACTIVE"' });
      const { devices } = await collect(a.devicesInGroup(label(-1, 'All-Smartphones')));
      expect(devices.length).to.equal(state.data.devices.filter((d) => d['common.status'] === 'ACTIVE').length);
      expect(devices.every((d) => d.enrollment === 'enrolled')).to.equal(true);
      expect((await rejection(collect(adapter.devicesInGroup(label(987654, 'gone'))))).kind).to.equal('not_found');
      expect((await rejection(collect(adapter.devicesInGroup({ id: '1', name: 'x', kind: 'organization', parentId: null })))).kind).to.equal('not_found');
    });

    it('fetches apps for more than 25 devices, 25 per call', async () => {
      const data = state.data;
      const { devices } = await collect(adapter.devicesInGroup(label(-1, 'All-Smartphones')));
      const some = devices.slice(0, 60);
      sim.state.clearRequestLog();
      const apps = await adapter.apps([...some, some[0]!]);
      const calls = sim.state.requests.filter((r) => r.path === '/api/v2/devices/appinventory');
      expect(calls).to.have.length(3);
      for (const c of calls) expect(decodeURIComponent(new URLSearchParams(c.query).get('deviceUuids')!).split(',').length).to.be.at.most(25);
      expect([...apps.keys()]).to.have.members(some.map((d) => d.id));
      for (const d of some) {
        const raw = data.appsFor(data.deviceByUuid(d.id)!);
        expect(apps.get(d.id), d.id).to.deep.equal(raw.map((a) => ({ id: a.identifier, name: a.name, version: a.version })));
      }
      expect((await adapter.apps([])).size).to.equal(0);
    });

    it('ensures static labels for tagging, adds and removes members (idempotent), and refuses dynamic labels', async () => {
      const a = createIvantiEpmmAdapter(fetch, { labelPrefix: 'UEMLINK_' });
      const [id, again] = await Promise.all([a.ensureTagGroup('Risk_High'), a.ensureTagGroup('Risk_High')]);
      expect(again).to.equal(id);
      const created = state.data.labelByName('UEMLINK_Risk_High')!;
      expect(String(created.id)).to.equal(id);
      expect(created.criteria).to.equal(null);
      expect(await a.ensureTagGroup('Risk_High')).to.equal(id);
      expect(await a.tagGroupMembers(id, 'Risk_High')).to.deep.equal([]);

      const { devices } = await collect(adapter.devicesInGroup(label(-1, 'All-Smartphones')));
      const ids = devices.slice(0, 250).map((d) => d.id);
      await a.addToTagGroup(id, 'Risk_High', ids);
      expect(await a.tagGroupMembers(id, 'Risk_High')).to.have.members(ids);
      await a.addToTagGroup(id, 'Risk_High', ids.slice(0, 5)); // already members
      await a.removeFromTagGroup(id, 'Risk_High', ids.slice(0, 100));
      await a.removeFromTagGroup(id, 'Risk_High', ids.slice(0, 100)); // no longer members
      expect(await a.tagGroupMembers(id, 'Risk_High')).to.have.members(ids.slice(100));
      await a.addToTagGroup(id, 'Risk_High', []);

      // An existing static label is reused; a dynamic one cannot be written to.
      const whse = state.data.labels.find((l) => l.name === 'Warehouse Scanners')!;
      expect(await adapter.ensureTagGroup('Warehouse Scanners')).to.equal(String(whse.id));
      const dyn = await rejection(adapter.ensureTagGroup('iOS'));
      expect(dyn.kind).to.equal('protocol');
      expect(dyn.message).to.match(/dynamic/);
      expect((await rejection(adapter.removeFromTagGroup('1', 'No Such Label', [ids[0]!]))).kind).to.equal('not_found');
      let thrown: unknown;
      try {
        await adapter.ensureTagGroup('a/b');
      } catch (e) {
        thrown = e;
      }
      expect(thrown).to.be.instanceOf(RangeError);
    });

    describe('fault modes', () => {
      it('truncatePages: the adapter throws protocol instead of yielding a short list', async () => {
        state.faults = { truncatePages: true };
        const e = await rejection(collect(adapter.devicesInGroup(label(-1, 'All-Smartphones'))));
        expect(e.kind).to.equal('protocol');
        expect(e.message).to.match(/truncated/);
        const members = await rejection(adapter.tagGroupMembers(String(state.data.labels.find((l) => l.name === 'Warehouse Scanners')!.id), 'Warehouse Scanners'));
        expect(members.kind).to.equal('protocol');
      });

      it('rateLimit: rate_limited with retryAfterMs', async () => {
        state.faults = { rateLimit: { retryAfterSeconds: 7 } };
        const e = await rejection(adapter.groups());
        expect(e.kind).to.equal('rate_limited');
        expect(e.status).to.equal(429);
        expect(e.retryAfterMs).to.equal(7000);
      });

      it('serverErrors: unavailable', async () => {
        state.faults = { serverErrors: true };
        const e = await rejection(adapter.apps([{ id: state.data.devices[0]!['common.uuid'] } as UemDevice]));
        expect(e.kind).to.equal('unavailable');
        expect(e.status).to.equal(500);
      });

      it('authExpired: auth', async () => {
        state.faults = { authExpired: true };
        const e = await rejection(adapter.ping());
        expect(e.kind).to.equal('auth');
        expect(e.status).to.equal(401);
        state.faults = {};
        await adapter.ping();
      });

      it('flapDevices: the same label lists differently on two calls, each a subset of the truth', async () => {
        const smart = state.data.labels.find((l) => l.id === -1)!;
        const truth = new Set(state.data.members(smart).map((d) => d['common.uuid']));
        // Up to 200 devices on one page, so the two listings are each self-consistent.
        const a = createIvantiEpmmAdapter(fetch, { deviceQuery: 'common.platform = "Android"' });
        state.faults = { flapDevices: 0.3 };
        const one = (await collect(a.devicesInGroup(label(-1, 'All-Smartphones')))).devices.map((d) => d.id);
        const two = (await collect(a.devicesInGroup(label(-1, 'All-Smartphones')))).devices.map((d) => d.id);
        state.faults = {};
        const full = (await collect(a.devicesInGroup(label(-1, 'All-Smartphones')))).devices.map((d) => d.id);
        expect(full.length).to.be.within(50, 200);
        expect(one).to.not.deep.equal(two);
        for (const id of [...one, ...two]) expect(truth.has(id)).to.equal(true);
        expect(one.length).to.be.below(full.length);
      });
    });
  });

  describe('adapter: answers that contradict themselves', () => {
    /** A UemFetch that answers from a table of paths (query strings ignored). */
    function fake(answers: Record<string, (query: URLSearchParams) => { status?: number; body: string }>): UemFetch {
      return async (path) => {
        const [p, qs] = path.split('?') as [string, string | undefined];
        const f = answers[p];
        if (!f) return new Response('{}', { status: 404 });
        const a = f(new URLSearchParams(qs ?? ''));
        return new Response(a.body, { status: a.status ?? 200, headers: { 'content-type': 'application/json' } });
      };
    }
    const dev = (n: number): Record<string, unknown> => ({ 'common.uuid': `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, 'common.platform': 'Android' });

    it('throws protocol for resultCount > results, a last page short of totalCount, hasMore with nothing, or bad JSON', async () => {
      const cases: Array<[string, string]> = [
        ['resultCount says more than results', JSON.stringify({ totalCount: 3, resultCount: 3, hasMore: false, results: [dev(1), dev(2)] })],
        ['a last page short of totalCount', JSON.stringify({ totalCount: 3, resultCount: 2, hasMore: false, results: [dev(1), dev(2)] })],
        ['hasMore with no results', JSON.stringify({ totalCount: 3, resultCount: 0, hasMore: true, results: [] })],
        ['no envelope', JSON.stringify([dev(1)])],
        ['not JSON', '<html>oops</html>'],
        ['a device without uuid', JSON.stringify({ totalCount: 1, resultCount: 1, hasMore: false, results: [{ 'common.id': 1 }] })],
      ];
      for (const [why, body] of cases) {
        const a = createIvantiEpmmAdapter(fake({ '/devices': () => ({ body }) }));
        const e = await rejection(collect(a.devicesInGroup(label(5, 'x'))));
        expect(e.kind, why).to.equal('protocol');
      }
    });

    it('follows hasMore even when a page is shorter than the limit, and reads the vendor error text', async () => {
      const all = [dev(1), dev(2), dev(3), dev(4), dev(5)];
      const a = createIvantiEpmmAdapter(
        fake({
          '/devices': (query) => {
            const offset = Number(query.get('offset'));
            const page = all.slice(offset, offset + 2); // a server that gives 2 whatever the limit
            return { body: JSON.stringify({ totalCount: all.length, resultCount: page.length, hasMore: offset + page.length < all.length, results: page }) };
          },
          '/ping': () => ({ status: 403, body: JSON.stringify({ messages: [{ type: 'Error', localizedMessage: 'no API role' }] }) }),
        }),
      );
      const { devices, pages } = await collect(a.devicesInGroup(label(5, 'x')));
      expect(pages).to.equal(3);
      expect(devices.map((d) => d.id)).to.deep.equal(all.map((d) => d['common.uuid']));
      const e = await rejection(a.ping());
      expect(e.kind).to.equal('auth');
      expect(e.message).to.match(/no API role/);
    });

    it('maps app inventories without deviceUuid by position, and refuses inventories of devices not asked for', async () => {
      const d1 = normalizeDevice(dev(1), 't');
      const d2 = normalizeDevice(dev(2), 't');
      const inv = (rows: unknown[]) => createIvantiEpmmAdapter(fake({ '/devices/appinventory': () => ({ body: JSON.stringify({ results: rows }) }) }));
      const apps = await inv([{ appInventory: [{ name: 'A', version: '1' }] }, { appInventory: [] }]).apps([d1, d2]);
      expect(apps.get(d1.id)).to.deep.equal([{ id: 'A', name: 'A', version: '1' }]);
      expect(apps.get(d2.id)).to.deep.equal([]);
      expect((await rejection(inv([{ appInventory: [] }]).apps([d1, d2]))).kind).to.equal('protocol');
      expect((await rejection(inv([{ deviceUuid: 'someone-else', appInventory: [] }]).apps([d1]))).kind).to.equal('protocol');
    });

    it('normalizes platforms and times', () => {
      expect(['iOS', 'iPadOS', 'Android', 'Windows', 'Windows Phone', 'macOS', 'OS X', 'BlackBerry', ''].map((p) => normalizePlatform(p))).to.deep.equal([
        'ios',
        'ios',
        'android',
        'windows',
        'windows',
        'macos',
        'macos',
        'other',
        'other',
      ]);
      expect(normalizeTime('2020-11-09T07:38:22.000Z')).to.equal('2020-11-09T07:38:22.000Z');
      expect(normalizeTime(1604907502000)).to.equal('2020-11-09T07:38:22.000Z');
      expect(normalizeTime('2020-11-09T07:38:22')).to.equal('2020-11-09T07:38:22.000Z');
      expect(normalizeTime(null)).to.equal(null);
      expect(normalizeTime('never')).to.equal(null);
    });
  });
});
