/**
 * The cloud's inventory store (src/cloud/inventory/db.ts) at its edges (found in a review against
 * docs/storage.md and docs/threat-model.md): files that are not SQLite, damaged or newer; PII left
 * on disk; rows nobody owns; another writer; and the app counts behind the catalogue.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { INVENTORY_SCHEMA_VERSION, InventoryDb } from '../../src/cloud/inventory/db.js';
import { InventoryStorageError } from '../../src/cloud/inventory/errors.js';
import { startInprocCloud } from '../helpers/inproc.js';
import type { UemDevice } from '../../src/uem/adapter.js';
import { integrationsService } from '../helpers/integrations.js';
import { tempDir } from '../helpers/procs.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as typeof import('better-sqlite3');
const LOCK_MODULE = new URL('../../src/common/daemon-lock.js', import.meta.url).href;
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

const dev = (i: number, over: Partial<UemDevice> = {}): UemDevice => ({
  id: `d${String(i).padStart(6, '0')}`,
  udid: `udid-${i}`,
  serial: `SER${i}`,
  name: `Laptop ${i}`,
  phone: `+49151${String(i).padStart(8, '0')}`,
  ownerEmail: `erase-me-${i}@corp.example`,
  ownerName: `Owner Person ${i}`,
  platform: 'ios',
  os: '17.4',
  model: 'iPhone 15',
  enrollment: 'enrolled',
  compliance: 'compliant',
  lastSeen: null,
  ...over,
});

const sync = (db: InventoryDb, integrationId: string, tenant: string, devices: UemDevice[], deleteAfter = 3) =>
  db.applyDeviceSync(integrationId, tenant, { seen: devices.map((device) => ({ device, groups: ['g1'] })), deleteAfter, allowDeletion: true, now: new Date().toISOString() });

/** The bytes of the database and its WAL, as someone with the disk (or a backup of it) reads them. */
const filesContain = (dir: string, needle: string): string[] =>
  ['inventory.sqlite', 'inventory.sqlite-wal'].filter((f) => existsSync(join(dir, f)) && readFileSync(join(dir, f)).includes(needle));

/** Runs `code` (an ES module body) in a separate node process; resolves once it printed `ready`. */
function child(code: string): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    c.stdout!.on('data', (b: Buffer) => {
      out += String(b);
      if (out.includes('ready')) resolve(c);
    });
    c.stderr!.on('data', (b: Buffer) => (err += String(b)));
    c.on('exit', (code) => reject(new Error(`child exited ${code} before ready: ${err}`)));
  });
}

describe('inventory store edges (found in review)', function () {
  this.timeout(90_000);

  // ---- opening: corrupt, foreign and newer files ------------------------------------------------

  it('a data dir whose inventory.sqlite is not a SQLite file is refused with an error that names the file', () => {
    const dir = tempDir('inv-review-');
    writeFileSync(join(dir, 'inventory.sqlite'), 'not a database, e.g. a half-restored backup or a wrong file copied here\n'.repeat(200));
    let err: Error | undefined;
    try {
      InventoryDb.open(dir).close();
    } catch (e) {
      err = e as Error;
    }
    expect(err, 'opened a file that is not SQLite').to.not.equal(undefined);
    // Today: "file is not a database" (SqliteError SQLITE_NOTADB) — which file, of the dozen in the data dir?
    expect(err!.message).to.match(/inventory\.sqlite/);
  });

  it('a damaged inventory (a corrupt page) is refused at start, naming the file, instead of failing every sync and console page', () => {
    const dir = tempDir('inv-review-');
    const db = InventoryDb.open(dir);
    sync(db, 'int_a', 'acme', Array.from({ length: 2000 }, (_, i) => dev(i)));
    db.close();
    const fd = openSync(join(dir, 'inventory.sqlite'), 'r+');
    writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, 4096 * 8); // one b-tree page of the devices table
    closeSync(fd);
    let err: Error | undefined;
    let opened: InventoryDb | undefined;
    try {
      opened = InventoryDb.open(dir);
    } catch (e) {
      err = e as Error;
    }
    // Today the open succeeds; then every query fails with "database disk image is malformed" (no file named).
    let later = '';
    try {
      opened?.countDevices('int_a');
    } catch (e) {
      later = (e as Error).message;
    }
    opened?.close();
    expect(err, `the damaged DB opened; the first query then said: "${later}"`).to.not.equal(undefined);
    expect(err!.message).to.match(/inventory\.sqlite/);
  });

  it('a page damaged while a sync reads the devices page by page fails as InventoryStorageError naming the file (the pages are read after devicePages returned)', () => {
    const dir = tempDir('inv-review-');
    const file = join(dir, 'inventory.sqlite');
    const made = InventoryDb.open(dir);
    sync(made, 'int_a', 'acme', Array.from({ length: 2000 }, (_, i) => dev(i)));
    made.close(); // the rows move from the WAL into the file
    const db = InventoryDb.open(dir);
    const other = new Database(file);
    try {
      const pages = db.devicePages('int_a', 100);
      expect(pages.next().value).to.have.length(100);
      // Another writer commits one change (to the WAL), so the reader drops the pages it cached;
      // then the disk returns garbage for the rest of the file.
      other.prepare("UPDATE devices SET model = 'x' WHERE integration_id = 'int_a' AND id = ?").run(dev(0).id);
      const fd = openSync(file, 'r+');
      for (let at = 4096 * 2; at < statSync(file).size; at += 4096) writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, at);
      closeSync(fd);
      let err: unknown;
      try {
        for (const page of pages) expect(page).to.not.have.length(0);
      } catch (e) {
        err = e;
      }
      // Was a bare SqliteError ("database disk image is malformed"), naming no file.
      expect(err).to.be.instanceOf(InventoryStorageError);
      expect((err as InventoryStorageError).code).to.equal('STATE_CORRUPT');
      expect((err as Error).message).to.contain(file);
    } finally {
      other.close();
      db.close();
    }
  });

  it('records a schema version (PRAGMA user_version) so a later release can migrate', () => {
    const dir = tempDir('inv-review-');
    InventoryDb.open(dir).close();
    const raw = new Database(join(dir, 'inventory.sqlite'));
    const v = raw.pragma('user_version', { simple: true }) as number;
    raw.close();
    expect(v, 'user_version is 0: a future build cannot tell this schema from an older or newer one').to.be.greaterThan(0);
  });

  it('refuses an inventory written by a newer release (downgrade) instead of running on a schema it does not know', () => {
    const dir = tempDir('inv-review-');
    InventoryDb.open(dir).close();
    const raw = new Database(join(dir, 'inventory.sqlite'));
    raw.pragma('user_version = 9999');
    raw.close();
    let err: Error | undefined;
    try {
      InventoryDb.open(dir).close();
    } catch (e) {
      err = e as Error;
    }
    expect(err, 'a newer release\'s inventory was opened as if it were this release\'s').to.not.equal(undefined);
    expect(err!.message).to.match(/inventory\.sqlite/);
  });

  // ---- PII: erasure and removal leave nothing on disk ----------------------------------------------

  it('turning e-mail/phone/name collection off leaves no erased value in inventory.sqlite or its WAL', () => {
    const dir = tempDir('inv-review-');
    const db = InventoryDb.open(dir);
    sync(db, 'int_a', 'acme', Array.from({ length: 300 }, (_, i) => dev(i)));
    db.db.pragma('wal_checkpoint(PASSIVE)'); // as the automatic checkpoint of a running cloud does
    db.erasePii('int_a', { name: true, phone: true, email: true }, (udid, id) => `UEMDevice${udid ?? id}@workspace-one.UEM`);
    db.db.pragma('wal_checkpoint(PASSIVE)');
    expect(db.listDevices('acme', { page: 0, pageSize: 1000 }).devices.some((d) => d.ownerEmail?.startsWith('erase-me-'))).to.equal(false);
    const withEmail = filesContain(dir, 'erase-me-');
    const withName = filesContain(dir, 'Owner Person ');
    db.close();
    expect([...withEmail, ...withName], 'erased owner e-mails/names still readable in the files (no secure_delete, WAL not truncated)').to.deep.equal([]);
  });

  it('removing an integration leaves none of its devices\' PII in inventory.sqlite (even after the cloud closed it)', () => {
    const dir = tempDir('inv-review-');
    const db = InventoryDb.open(dir);
    sync(db, 'int_a', 'acme', Array.from({ length: 300 }, (_, i) => dev(i)));
    db.deleteIntegration('int_a');
    expect(db.countDevices('int_a')).to.equal(0);
    db.close(); // the last connection checkpoints and deletes the WAL
    expect(filesContain(dir, 'erase-me-'), 'the removed integration\'s owner e-mails are still in the file').to.deep.equal([]);
  });

  it('inventory rows of an integration no longer in the state (killed between the state write and the DB delete in remove) are removed at start', async () => {
    const db = new InventoryDb(':memory:');
    // What a SIGKILL (or a failing deleteIntegration) between `store.update` and `db.deleteIntegration`
    // in IntegrationsService.removeNow leaves: the record is gone, its rows (with PII) are not.
    sync(db, 'int_gone', 'acme', Array.from({ length: 10 }, (_, i) => dev(i)));
    const svc = integrationsService({ db });
    await svc.start();
    try {
      const shown = db.listDevices('acme', { page: 0, pageSize: 100 }).total;
      expect(shown, 'the tenant\'s device list (console, API) still shows the removed integration\'s devices, for good').to.equal(0);
      expect(db.countDevices('int_gone')).to.equal(0);
    } finally {
      await svc.stop();
    }
  });

  // ---- performance: the event loop is blocked by the store's synchronous queries -----------------

  it('deleting devices finds their tag rows by index (a sync deleting 300 of 30,000 scanned tag_members per device: seconds of frozen event loop)', () => {
    const db = new InventoryDb(':memory:');
    for (const q of ['DELETE FROM tag_members WHERE integration_id = ? AND device_id = ?', 'SELECT tag_name FROM tag_members WHERE integration_id = ? AND device_id = ?']) {
      const plan = (db.db.prepare(`EXPLAIN QUERY PLAN ${q}`).all('int_a', 'd1') as Array<{ detail: string }>).map((p) => p.detail).join('; ');
      expect(plan, q).to.match(/USING (COVERING )?INDEX tag_members_device/);
    }
    const fleet = Array.from({ length: 50 }, (_, i) => dev(i));
    sync(db, 'int_a', 'acme', fleet, 1);
    db.setTagMembers('int_a', 'CP_Risk_Low', fleet.map((d) => d.id), []);
    expect(sync(db, 'int_a', 'acme', fleet.slice(0, 40), 1).deleted).to.equal(10);
    expect(db.tagMembers('int_a', 'CP_Risk_Low').size).to.equal(40);
    db.close();
  });

  // ---- the app catalogue: counts kept as lists change, equal to grouping every row -----------------

  /** The catalogue as the rows say (what the console showed before the counts, one GROUP BY over all). */
  function grouped(db: InventoryDb, tenant: string): Array<{ id: string; name: string; devices: number; versions: string[] }> {
    const rows = db.db
      .prepare(`SELECT a.app_id AS id, max(a.name) AS name, count(*) AS devices FROM device_apps a JOIN devices d ON d.integration_id = a.integration_id AND d.id = a.device_id WHERE d.tenant = ? GROUP BY a.app_id`)
      .all(tenant) as Array<{ id: string; name: string; devices: number }>;
    const versions = db.db.prepare(`SELECT DISTINCT a.app_id AS id, a.version AS version FROM device_apps a JOIN devices d ON d.integration_id = a.integration_id AND d.id = a.device_id WHERE d.tenant = ? AND a.version IS NOT NULL`).all(tenant) as Array<{ id: string; version: string }>;
    return rows.map((r) => ({ ...r, versions: versions.filter((v) => v.id === r.id).map((v) => v.version).sort() })).sort((a, b) => (a.id < b.id ? -1 : 1));
  }
  const shown = (db: InventoryDb, tenant: string) =>
    db.catalogue(tenant, { page: 0, pageSize: 10_000 }).apps.map((a) => ({ id: a.id, name: a.name, devices: a.devices, versions: a.versions })).sort((a, b) => (a.id < b.id ? -1 : 1));

  it('the catalogue equals the grouped rows after any sequence of app lists, replaced lists, deleted devices and removed integrations', () => {
    const app = fc.record({ id: fc.constantFrom('com.a', 'com.b', 'com.c', 'com,d'), name: fc.constantFrom('A', 'B', 'C'), version: fc.option(fc.constantFrom('1.0', '2.0', '1,5'), { nil: null }) });
    const step = fc.oneof(
      fc.record({ kind: fc.constant('apps' as const), integration: fc.constantFrom('int_a', 'int_b', 'int_c'), device: fc.nat(5), apps: fc.array(app, { maxLength: 4 }) }),
      fc.record({ kind: fc.constant('sync' as const), integration: fc.constantFrom('int_a', 'int_b', 'int_c'), keep: fc.nat(6) }),
      fc.record({ kind: fc.constant('remove' as const), integration: fc.constantFrom('int_a', 'int_b', 'int_c') }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 25 }), (steps) => {
        const db = new InventoryDb(':memory:');
        const tenantOf = (i: string) => (i === 'int_c' ? 'globex' : 'acme');
        const devices = Array.from({ length: 6 }, (_, i) => dev(i));
        for (const i of ['int_a', 'int_b', 'int_c']) sync(db, i, tenantOf(i), devices, 1);
        for (const s of steps) {
          if (s.kind === 'apps') db.applyApps(s.integration, devices[s.device]!.id, s.apps);
          else if (s.kind === 'sync') sync(db, s.integration, tenantOf(s.integration), devices.slice(0, s.keep), 1);
          else db.deleteIntegration(s.integration);
        }
        for (const t of ['acme', 'globex']) {
          expect(shown(db, t)).to.deep.equal(grouped(db, t));
          expect(db.catalogue(t, { page: 0, pageSize: 1 }).total).to.equal(grouped(db, t).length);
        }
        db.close();
      }),
      { numRuns: 150 },
    );
  });

  it('a catalogue page reads the counts, not the app rows (grouping a million rows froze every tenant for seconds)', () => {
    const db = new InventoryDb(':memory:');
    const sql = (db.db as unknown as { prepare(q: string): { all(...a: unknown[]): Array<{ detail: string }> } }).prepare(
      "EXPLAIN QUERY PLAN SELECT app_id AS id, max(name) AS name, sum(devices) AS devices FROM app_counts WHERE tenant = 'acme' GROUP BY app_id ORDER BY devices DESC, name, app_id LIMIT 50",
    );
    expect(sql.all().map((p) => p.detail).join('; ')).to.match(/app_counts_tenant/).and.not.match(/device_apps/);
    // A version holding a comma stays one version.
    sync(db, 'int_a', 'acme', [dev(1)]);
    db.applyApps('int_a', dev(1).id, [{ id: 'com.x', name: 'X', version: '1,5' }]);
    expect(db.catalogue('acme', { page: 0, pageSize: 5 }).apps).to.deep.equal([{ id: 'com.x', name: 'X', versions: ['1,5'], devices: 1 }]);
    db.close();
  });

  it('a file made before schema versions gets its app counts once, at open, and the version recorded', () => {
    const dir = tempDir('inv-review-');
    const db = InventoryDb.open(dir);
    sync(db, 'int_a', 'acme', [dev(1), dev(2)]);
    db.applyApps('int_a', dev(1).id, [{ id: 'com.a', name: 'A', version: '1' }, { id: 'com.b', name: 'B', version: null }]);
    db.applyApps('int_a', dev(2).id, [{ id: 'com.a', name: 'A', version: '2' }]);
    const before = shown(db, 'acme');
    // What a file of the earlier release looks like: no counts, no device index on tag_members, version 0.
    db.db.exec('DROP TABLE app_counts; DROP TABLE app_version_counts; DROP TABLE app_name_counts; DROP INDEX tag_members_device');
    db.db.pragma('user_version = 0');
    db.close();
    const again = InventoryDb.open(dir);
    expect(again.db.pragma('user_version', { simple: true })).to.equal(INVENTORY_SCHEMA_VERSION);
    expect(shown(again, 'acme')).to.deep.equal(before).and.deep.equal(grouped(again, 'acme'));
    expect(before).to.deep.equal([{ id: 'com.a', name: 'A', devices: 2, versions: ['1', '2'] }, { id: 'com.b', name: 'B', devices: 1, versions: [] }]);
    again.close();
  });

  // ---- a second process on the same data dir -------------------------------------------------------

  it('a second cloud on the same data dir is refused before it opens anything (it ran every integration twice)', async () => {
    const dir = tempDir('inv-review-');
    const lockDir = JSON.stringify(join(dir, 'data'));
    const c = await child(`
      const { mkdirSync } = await import('node:fs');
      const { takeDaemonLock } = await import(${JSON.stringify(LOCK_MODULE)});
      mkdirSync(${lockDir}, { recursive: true });
      takeDaemonLock(${lockDir}, 'cloud', 'x');
      process.stdout.write('ready\\n');
      setTimeout(() => {}, 30000);
    `);
    try {
      const err = await startInprocCloud({ dataDir: join(dir, 'data') }).then(
        async (cloud) => {
          await cloud.shutdown();
          return undefined;
        },
        (e: { code?: string; message: string }) => e,
      );
      expect(err?.code).to.equal('ALREADY_RUNNING');
      expect(err?.message).to.match(/another cloud \(pid \d+ on .*\) is running with .*data/);
      expect(existsSync(join(dir, 'data', 'inventory.sqlite')), 'nothing opened').to.equal(false);
    } finally {
      c.kill();
    }
  });

  it('a device sync does not fail when another writer committed one of its devices between its read and its write', async () => {
    const dir = tempDir('inv-review-');
    const file = join(dir, 'inventory.sqlite');
    const db = InventoryDb.open(dir);
    // Another process (a second cloud on the same data dir) is mid-transaction and adds device d000001.
    const c = await child(`
      import { createRequire } from 'node:module';
      const Database = createRequire(process.cwd() + '/package.json')('better-sqlite3');
      const db = new Database(${JSON.stringify(file)});
      db.exec('BEGIN IMMEDIATE');
      process.stdout.write('ready\\n');
      setTimeout(() => {
        db.prepare("INSERT INTO devices (integration_id, id, tenant, platform, hash, first_seen, updated_at) VALUES ('int_a', 'd000001', 'acme', 'ios', 'other', 'x', 'x')").run();
        db.exec('COMMIT');
        db.close();
      }, 500);
      setTimeout(() => {}, 10000);
    `);
    let err: Error | undefined;
    try {
      // Reads the ids outside its transaction (before the other commit), then inserts -> UNIQUE constraint.
      sync(db, 'int_a', 'acme', [dev(1)]);
    } catch (e) {
      err = e as Error;
    } finally {
      c.kill();
      db.close();
    }
    expect(err?.message, 'the device sync failed').to.equal(undefined);
  });

});

describe('device orders: by name, and the least recently seen first (stale devices)', () => {
  const seen = (i: number, lastSeen: string | null, name: string): UemDevice => dev(i, { lastSeen, name });
  const fleet = [seen(1, '2026-11-20T10:00:00.000Z', 'beta'), seen(2, null, 'Alpha'), seen(3, '2026-01-02T00:00:00.000Z', 'gamma'), seen(4, '2026-06-01T00:00:00.000Z', 'alpha 2')];

  it('lastSeen puts never-seen devices, then the oldest, first; name ignores letter case; the default stays by integration', () => {
    const db = new InventoryDb(':memory:');
    sync(db, 'int_a', 'acme', fleet);
    const ids = (sort?: 'name' | 'lastSeen' | 'integration'): string[] => db.listDevices('acme', { page: 0, pageSize: 10, ...(sort ? { sort } : {}) }).devices.map((d) => d.id);
    expect(ids('lastSeen')).to.deep.equal(['d000002', 'd000003', 'd000004', 'd000001']);
    expect(ids('name')).to.deep.equal(['d000002', 'd000004', 'd000001', 'd000003']);
    expect(ids()).to.deep.equal(['d000001', 'd000002', 'd000003', 'd000004']);
    // A filtered, ordered page reads the order from an index, not by sorting the tenant's fleet per page.
    const plan = (db.db.prepare("EXPLAIN QUERY PLAN SELECT * FROM devices WHERE tenant = 'acme' ORDER BY last_seen, integration_id, id LIMIT 50").all() as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
    expect(plan).to.contain('devices_tenant_last_seen');
  });

  it('a version-2 file gains the order indexes at open, without recounting its apps', () => {
    const dir = tempDir('inv-v2-');
    const db = InventoryDb.open(dir);
    sync(db, 'int_a', 'acme', fleet);
    db.applyApps('int_a', 'd000001', [{ id: 'com.example.mail', name: 'Mail', version: '1.0' }]);
    db.db.exec('DROP INDEX devices_tenant_last_seen; DROP INDEX devices_tenant_name');
    db.db.exec("UPDATE app_counts SET devices = 7 WHERE app_id = 'com.example.mail'"); // a marker a recount would undo
    db.db.pragma('user_version = 2');
    db.close();
    const again = InventoryDb.open(dir);
    try {
      expect(again.db.pragma('user_version', { simple: true })).to.equal(INVENTORY_SCHEMA_VERSION);
      const indexes = (again.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'devices_tenant_%'").all() as Array<{ name: string }>).map((r) => r.name);
      expect(indexes).to.include.members(['devices_tenant_last_seen', 'devices_tenant_name']);
      expect((again.db.prepare("SELECT devices FROM app_counts WHERE app_id = 'com.example.mail'").get() as { devices: number }).devices, 'the counts were recomputed from a million rows at open').to.equal(7);
    } finally {
      again.close();
    }
  });
});

describe('device filters in the console (found in review)', () => {
  it('a filter value that is not among the offered ones stays selected (the form would otherwise drop it)', async () => {
    const { devicesBody } = await import('../../src/cloud/console/pages/inventory.js');
    const body = devicesBody({ tenants: ['acme'], tenant: 'acme', integrations: [], integration: undefined, search: '', filter: { compliance: 'quarantined' }, sort: 'integration', facets: { compliance: ['compliant'], platform: [] }, page: 1, devices: [], total: 0, now: Date.now() }).toString();
    expect(body).to.match(/<option value="quarantined" selected>quarantined<\/option>/);
    expect(body).to.contain('No device matches the filters.');
  });
});
