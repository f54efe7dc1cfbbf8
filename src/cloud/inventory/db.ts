/**
 * The device and app inventory (docs/storage.md): SQLite through better-sqlite3, in WAL mode, in the
 * cloud's data dir. Settings stay in the lowdb state file (small, human-readable, cross-process
 * safe); inventory is large (50,000 devices x 20 apps = a million rows) and changes in bulk, which a
 * JSON file rewritten on every change cannot do.
 *
 * Every write is a transaction, and sync writes only what changed (a per-row hash), so an unchanged
 * sync writes nothing.
 */
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import Database, { type Database as Db } from 'better-sqlite3';
import { UemlinkError } from '../../common/errors.js';
import type { UemApp, UemDevice } from '../../uem/adapter.js';
import { AppCounts, FILL_APP_COUNTS } from './app-counts.js';
import { openError, wrapStorageErrors } from './errors.js';
import { TagRecords } from './tags.js';

/** A device as stored: the normalized vendor fields plus the cloud's own verdicts. */
export interface DeviceRow extends UemDevice {
  integrationId: string;
  tenant: string;
  groups: string[];
  /** Complete syncs in a row that did not see the device (deleted at deviceDeletionAfterSyncs). */
  missing: number;
  risk: string;
  status: string;
  threatFactors: string[];
  firstSeen: string;
  updatedAt: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  integration_id TEXT NOT NULL, id TEXT NOT NULL, tenant TEXT NOT NULL,
  udid TEXT, serial TEXT, name TEXT, phone TEXT, owner_email TEXT, owner_name TEXT,
  platform TEXT NOT NULL, os TEXT, model TEXT, enrollment TEXT, compliance TEXT, last_seen TEXT,
  groups TEXT NOT NULL DEFAULT '[]', hash TEXT NOT NULL, missing INTEGER NOT NULL DEFAULT 0,
  risk TEXT NOT NULL DEFAULT 'none', status TEXT NOT NULL DEFAULT 'provisioned', threat_factors TEXT NOT NULL DEFAULT '[]',
  apps_hash TEXT, first_seen TEXT NOT NULL, updated_at TEXT NOT NULL,
  PRIMARY KEY (integration_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS devices_tenant ON devices (tenant, integration_id);
CREATE INDEX IF NOT EXISTS devices_tenant_compliance ON devices (tenant, compliance);
CREATE INDEX IF NOT EXISTS devices_tenant_platform ON devices (tenant, platform);
CREATE INDEX IF NOT EXISTS devices_tenant_risk ON devices (tenant, risk);
CREATE INDEX IF NOT EXISTS devices_tenant_last_seen ON devices (tenant, last_seen);
CREATE INDEX IF NOT EXISTS devices_tenant_name ON devices (tenant, name COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS device_apps (
  integration_id TEXT NOT NULL, device_id TEXT NOT NULL, app_id TEXT NOT NULL, name TEXT NOT NULL, version TEXT,
  PRIMARY KEY (integration_id, device_id, app_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS device_apps_app ON device_apps (integration_id, app_id);
CREATE TABLE IF NOT EXISTS tag_members (
  integration_id TEXT NOT NULL, tag_name TEXT NOT NULL, device_id TEXT NOT NULL,
  PRIMARY KEY (integration_id, tag_name, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
  integration_id TEXT NOT NULL, tag_name TEXT NOT NULL, tag_id TEXT NOT NULL,
  PRIMARY KEY (integration_id, tag_name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tag_departed (
  integration_id TEXT NOT NULL, device_id TEXT NOT NULL, tag_name TEXT NOT NULL, departed_at TEXT NOT NULL,
  PRIMARY KEY (integration_id, device_id, tag_name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tag_members_device ON tag_members (integration_id, device_id);
CREATE TABLE IF NOT EXISTS app_counts (
  integration_id TEXT NOT NULL, tenant TEXT NOT NULL, app_id TEXT NOT NULL, name TEXT NOT NULL, devices INTEGER NOT NULL,
  PRIMARY KEY (integration_id, app_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS app_counts_tenant ON app_counts (tenant, app_id);
CREATE TABLE IF NOT EXISTS app_version_counts (
  integration_id TEXT NOT NULL, app_id TEXT NOT NULL, version TEXT NOT NULL, devices INTEGER NOT NULL,
  PRIMARY KEY (integration_id, app_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS app_name_counts (
  integration_id TEXT NOT NULL, app_id TEXT NOT NULL, name TEXT NOT NULL, devices INTEGER NOT NULL,
  PRIMARY KEY (integration_id, app_id, name)
) WITHOUT ROWID;
`;

/**
 * The schema's version (PRAGMA user_version), so that a later release can migrate and an earlier
 * one can refuse a file it does not understand. 0: made before versions were recorded (no device
 * index on tag_members, no app counts). 2: the app counts. 3: this schema, which added the two
 * device order indexes (devices_tenant_last_seen, devices_tenant_name).
 */
export const INVENTORY_SCHEMA_VERSION = 3;

/** Every table holding an integration's rows: what removing one deletes. */
const INTEGRATION_TABLES = ['devices', 'device_apps', 'tag_members', 'tags', 'tag_departed', 'app_counts', 'app_version_counts', 'app_name_counts'] as const;

/** A LIKE pattern for `text` anywhere in a value, its %, _ and \ taken literally (the query says ESCAPE '\'). */
function containsPattern(text: string): string {
  return `%${text.replace(/[%_\\]/g, (c) => `\\${c}`)}%`;
}

/** How long a deleted device that carried tags is remembered, in case it comes back. */
const DEPARTED_KEEP_MS = 90 * 24 * 3600_000;

export function deviceHash(d: UemDevice, groups: string[]): string {
  return createHash('sha1')
    .update(JSON.stringify([d.udid, d.serial, d.name, d.phone, d.ownerEmail, d.ownerName, d.platform, d.os, d.model, d.enrollment, d.compliance, d.lastSeen, groups]))
    .digest('base64');
}

interface RawDevice {
  integration_id: string;
  id: string;
  tenant: string;
  udid: string | null;
  serial: string | null;
  name: string | null;
  phone: string | null;
  owner_email: string | null;
  owner_name: string | null;
  platform: string;
  os: string | null;
  model: string | null;
  enrollment: string | null;
  compliance: string | null;
  last_seen: string | null;
  groups: string;
  hash: string;
  missing: number;
  risk: string;
  status: string;
  threat_factors: string;
  apps_hash: string | null;
  first_seen: string;
  updated_at: string;
}

function toRow(r: RawDevice): DeviceRow {
  return {
    integrationId: r.integration_id,
    tenant: r.tenant,
    id: r.id,
    udid: r.udid,
    serial: r.serial,
    name: r.name,
    phone: r.phone,
    ownerEmail: r.owner_email,
    ownerName: r.owner_name,
    platform: r.platform,
    os: r.os,
    model: r.model,
    enrollment: r.enrollment,
    compliance: r.compliance,
    lastSeen: r.last_seen,
    groups: JSON.parse(r.groups) as string[],
    missing: r.missing,
    risk: r.risk,
    status: r.status,
    threatFactors: JSON.parse(r.threat_factors) as string[],
    firstSeen: r.first_seen,
    updatedAt: r.updated_at,
  };
}

/** Exact-value filters of a device list. */
export interface DeviceFilter {
  compliance?: string;
  risk?: string;
  platform?: string;
}

/**
 * Orders of a device list: by integration (the default, the order of the store), by name, or the
 * devices least recently seen by their UEM first (never seen before any), to find stale ones.
 */
export const DEVICE_SORTS = ['integration', 'name', 'lastSeen'] as const;
export type DeviceSort = (typeof DEVICE_SORTS)[number];
const ORDER_BY: Record<DeviceSort, string> = {
  integration: 'integration_id, id',
  name: 'name COLLATE NOCASE, integration_id, id',
  lastSeen: 'last_seen, integration_id, id',
};

export interface SyncWrite {
  /** Devices seen in this complete sync, with the groups they were seen in. */
  seen: Array<{ device: UemDevice; groups: string[] }>;
  /** Delete devices missing for this many complete syncs (or none when blocked). */
  deleteAfter: number;
  /** When false the missing counters still advance but nothing is deleted (threshold). */
  allowDeletion: boolean;
  now: string;
}

export interface SyncCounts {
  added: number;
  updated: number;
  unchanged: number;
  deleted: number;
  /** Missing, counted, not yet deleted. */
  pendingDeletion: number;
  /** Rows written in total (0 for an unchanged sync). */
  writes: number;
}

export class InventoryDb {
  readonly db: Db;
  private readonly apps: AppCounts;
  private readonly tags: TagRecords;

  constructor(readonly file: string) {
    // The inventory holds device PII: 0600 like every other file in the data dir (it was created
    // 0644 under the umask). SQLite gives the -wal and -shm files the database file's mode, so
    // creating it 0600 first covers them; an existing database from an older version is fixed too.
    let db: Db | undefined;
    try {
      if (file !== ':memory:') {
        closeSync(openSync(file, 'a', 0o600));
        for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
      }
      db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      // Deleted and overwritten values are zeroed in the file, not left in free space: turning a
      // PII switch off, or removing an integration, must leave the values nowhere on disk.
      db.pragma('secure_delete = ON');
      // A damaged file failed every sync and page later, with no file named: refused here instead.
      const check = db.pragma('quick_check', { simple: true }) as string;
      if (check !== 'ok') throw Object.assign(new Error(`damaged (${check.slice(0, 200)})`), { code: 'SQLITE_CORRUPT' });
      this.db = db;
      this.migrate();
      this.apps = new AppCounts(db);
      this.tags = new TagRecords(db);
    } catch (e) {
      db?.close();
      if (e instanceof UemlinkError) throw e;
      throw openError(file, e);
    }
  }

  /** Creates or brings the schema up to this release's version; refuses a newer one. */
  private migrate(): void {
    const v = this.db.pragma('user_version', { simple: true }) as number;
    if (v > INVENTORY_SCHEMA_VERSION) {
      throw new UemlinkError('STATE_INVALID', `inventory database ${this.file} was written by a newer uemlink (inventory schema ${v}; this release reads up to ${INVENTORY_SCHEMA_VERSION}): run that release, or restore a backup made by this one`);
    }
    if (v === INVENTORY_SCHEMA_VERSION) return;
    this.db.transaction(() => {
      const existed = (this.db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'devices'").get() as { n: number }).n > 0;
      this.db.exec(SCHEMA); // IF NOT EXISTS throughout: creates what this version added
      // The app counts came with version 2; a file from before has rows but no counts.
      if (existed && v < 2) this.db.exec(FILL_APP_COUNTS);
      this.db.pragma(`user_version = ${INVENTORY_SCHEMA_VERSION}`);
    }).immediate();
  }

  static open(dataDir: string): InventoryDb {
    return new InventoryDb(join(dataDir, 'inventory.sqlite'));
  }

  close(): void {
    this.db.close();
  }

  /**
   * Moves what the WAL holds into the file and empties it: its old frames still held the values a
   * PII erase or a removal just zeroed. Best effort (a reader in the middle keeps its frames).
   */
  private truncateWal(): void {
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      /* busy: the next checkpoint does it */
    }
  }

  /**
   * Removes the rows of integrations that are no longer configured: a cloud stopped between the
   * state write and the rows' removal left them (with their PII) in the tenant's lists for good.
   * Returns how many integrations' rows went.
   */
  purgeExcept(keep: ReadonlySet<string>): number {
    const ids = new Set<string>();
    for (const t of INTEGRATION_TABLES) {
      for (const r of this.db.prepare(`SELECT DISTINCT integration_id AS id FROM ${t}`).all() as Array<{ id: string }>) if (!keep.has(r.id)) ids.add(r.id);
    }
    for (const id of ids) this.deleteIntegration(id);
    return ids.size;
  }

  /** How many devices would be deleted by `plan`, without writing (for the threshold). */
  planDeletion(integrationId: string, seenIds: Set<string>, deleteAfter: number): { total: number; wouldDelete: number } {
    const rows = this.db.prepare('SELECT id, missing FROM devices WHERE integration_id = ?').all(integrationId) as Array<{ id: string; missing: number }>;
    let wouldDelete = 0;
    for (const r of rows) if (!seenIds.has(r.id) && r.missing + 1 >= deleteAfter) wouldDelete++;
    return { total: rows.length, wouldDelete };
  }

  /** Applies a complete device sync in one transaction, writing only what changed. */
  applyDeviceSync(integrationId: string, tenant: string, w: SyncWrite): SyncCounts {
    const counts: SyncCounts = { added: 0, updated: 0, unchanged: 0, deleted: 0, pendingDeletion: 0, writes: 0 };
    const existing = new Map<string, { hash: string; missing: number }>();
    const readExisting = (): void => {
      for (const r of this.db.prepare('SELECT id, hash, missing FROM devices WHERE integration_id = ?').iterate(integrationId) as IterableIterator<{ id: string; hash: string; missing: number }>) {
        existing.set(r.id, { hash: r.hash, missing: r.missing });
      }
    };
    const insert = this.db.prepare(`INSERT INTO devices (integration_id, id, tenant, udid, serial, name, phone, owner_email, owner_name, platform, os, model, enrollment, compliance, last_seen, groups, hash, missing, first_seen, updated_at)
      VALUES (@integration_id, @id, @tenant, @udid, @serial, @name, @phone, @owner_email, @owner_name, @platform, @os, @model, @enrollment, @compliance, @last_seen, @groups, @hash, 0, @now, @now)`);
    const update = this.db.prepare(`UPDATE devices SET udid=@udid, serial=@serial, name=@name, phone=@phone, owner_email=@owner_email, owner_name=@owner_name, platform=@platform, os=@os,
      model=@model, enrollment=@enrollment, compliance=@compliance, last_seen=@last_seen, groups=@groups, hash=@hash, missing=0, updated_at=@now WHERE integration_id=@integration_id AND id=@id`);
    const resetMissing = this.db.prepare('UPDATE devices SET missing = 0 WHERE integration_id = ? AND id = ?');
    const setMissing = this.db.prepare('UPDATE devices SET missing = ? WHERE integration_id = ? AND id = ?');
    const del = this.db.prepare('DELETE FROM devices WHERE integration_id = ? AND id = ?');
    const delApps = this.db.prepare('DELETE FROM device_apps WHERE integration_id = ? AND device_id = ?');
    const delTags = this.db.prepare('DELETE FROM tag_members WHERE integration_id = ? AND device_id = ?');
    // A deleted device keeps the tags we gave it in the UEM. Its tag rows are set aside, and put
    // back if it returns (moved between groups, a list that left it out once): a new row knowing
    // none of them would leave, say, a stale Risk_High on it for good. The write-back then removes
    // what its verdict no longer wants.
    const departTags = this.db.prepare('INSERT OR REPLACE INTO tag_departed (integration_id, device_id, tag_name, departed_at) SELECT integration_id, device_id, tag_name, ? FROM tag_members WHERE integration_id = ? AND device_id = ?');
    const returnTags = this.db.prepare('INSERT OR IGNORE INTO tag_members (integration_id, tag_name, device_id) SELECT integration_id, tag_name, device_id FROM tag_departed WHERE integration_id = ? AND device_id = ?');
    const forgetDeparted = this.db.prepare('DELETE FROM tag_departed WHERE integration_id = ? AND device_id = ?');
    const at = Date.parse(w.now);
    // IMMEDIATE, and the read inside it: another writer's commit between a read outside and the
    // writes failed the whole sync (a UNIQUE constraint on a device it had just added).
    this.db.transaction(() => {
      readExisting();
      if (Number.isFinite(at)) this.db.prepare('DELETE FROM tag_departed WHERE integration_id = ? AND departed_at < ?').run(integrationId, new Date(at - DEPARTED_KEEP_MS).toISOString());
      const seenIds = new Set<string>();
      for (const { device: d, groups } of w.seen) {
        if (seenIds.has(d.id)) continue;
        seenIds.add(d.id);
        const hash = deviceHash(d, groups);
        const prev = existing.get(d.id);
        const params = {
          integration_id: integrationId,
          id: d.id,
          tenant,
          udid: d.udid,
          serial: d.serial,
          name: d.name,
          phone: d.phone,
          owner_email: d.ownerEmail,
          owner_name: d.ownerName,
          platform: d.platform,
          os: d.os,
          model: d.model,
          enrollment: d.enrollment,
          compliance: d.compliance,
          last_seen: d.lastSeen,
          groups: JSON.stringify(groups),
          hash,
          now: w.now,
        };
        if (!prev) {
          insert.run(params);
          if (returnTags.run(integrationId, d.id).changes > 0) forgetDeparted.run(integrationId, d.id);
          counts.added++;
          counts.writes++;
        } else if (prev.hash !== hash) {
          update.run(params);
          counts.updated++;
          counts.writes++;
        } else {
          counts.unchanged++;
          if (prev.missing !== 0) {
            resetMissing.run(integrationId, d.id);
            counts.writes++;
          }
        }
      }
      for (const [id, prev] of existing) {
        if (seenIds.has(id)) continue;
        const missing = prev.missing + 1;
        if (missing >= w.deleteAfter && w.allowDeletion) {
          del.run(integrationId, id);
          this.apps.uncountDevice(integrationId, id);
          delApps.run(integrationId, id);
          departTags.run(w.now, integrationId, id);
          delTags.run(integrationId, id);
          counts.deleted++;
        } else {
          setMissing.run(missing, integrationId, id);
          counts.pendingDeletion++;
        }
        counts.writes++;
      }
    }).immediate();
    return counts;
  }

  /** Replaces a device's app list, and the app counts, when it changed; returns whether it wrote. */
  applyApps(integrationId: string, deviceId: string, apps: UemApp[]): boolean {
    return this.apps.apply(integrationId, deviceId, apps);
  }

  /** Erases PII a switch was turned off for (the guides: turning a switch off erases stored values). */
  erasePii(integrationId: string, what: { name: boolean; phone: boolean; email: boolean }, placeholder: (udid: string | null, id: string) => string): number {
    let n = 0;
    this.db.transaction(() => {
      // The stored hashes are cleared so that the next sync rewrites every device: were the switch
      // turned on again before it, the device's hash would match the one stored before the erase,
      // and the erased values would never come back.
      if (what.name || what.phone || what.email) this.db.prepare("UPDATE devices SET hash = '' WHERE integration_id = ?").run(integrationId);
      if (what.name) n += this.db.prepare('UPDATE devices SET name = NULL WHERE integration_id = ? AND name IS NOT NULL').run(integrationId).changes;
      if (what.phone) n += this.db.prepare('UPDATE devices SET phone = NULL WHERE integration_id = ? AND phone IS NOT NULL').run(integrationId).changes;
      if (what.email) {
        const rows = this.db.prepare('SELECT id, udid FROM devices WHERE integration_id = ?').all(integrationId) as Array<{ id: string; udid: string | null }>;
        const upd = this.db.prepare('UPDATE devices SET owner_email = ?, owner_name = NULL WHERE integration_id = ? AND id = ?');
        for (const r of rows) n += upd.run(placeholder(r.udid, r.id), integrationId, r.id).changes;
      }
    })();
    this.truncateWal();
    return n;
  }

  deleteIntegration(integrationId: string): void {
    this.db.transaction(() => {
      for (const t of INTEGRATION_TABLES) this.db.prepare(`DELETE FROM ${t} WHERE integration_id = ?`).run(integrationId);
    })();
    this.truncateWal();
  }

  deviceIds(integrationId: string): string[] {
    return (this.db.prepare('SELECT id FROM devices WHERE integration_id = ?').all(integrationId) as Array<{ id: string }>).map((r) => r.id);
  }

  /**
   * All devices of an integration, `size` at a time in id order (keyset paging): a sync over 50,000
   * devices holds one page, never the whole inventory, in memory.
   */
  *devicePages(integrationId: string, size = 500): Generator<DeviceRow[]> {
    const q = this.db.prepare('SELECT * FROM devices WHERE integration_id = ? AND id > ? ORDER BY id LIMIT ?');
    let after = '';
    for (;;) {
      const rows = (q.all(integrationId, after, size) as RawDevice[]).map(toRow);
      if (rows.length === 0) return;
      yield rows;
      if (rows.length < size) return;
      after = rows[rows.length - 1]!.id;
    }
  }

  countDevices(integrationId: string): number {
    return (this.db.prepare('SELECT count(*) AS n FROM devices WHERE integration_id = ?').get(integrationId) as { n: number }).n;
  }

  device(integrationId: string, id: string): DeviceRow | undefined {
    const r = this.db.prepare('SELECT * FROM devices WHERE integration_id = ? AND id = ?').get(integrationId, id) as RawDevice | undefined;
    return r ? toRow(r) : undefined;
  }

  /** A page of a tenant's devices (optionally one integration, optionally matching `search`). */
  listDevices(tenant: string, opts: { integrationId?: string; search?: string; page: number; pageSize: number; sort?: DeviceSort } & DeviceFilter): { devices: DeviceRow[]; total: number } {
    const where = ['tenant = @tenant'];
    const p: Record<string, unknown> = { tenant, limit: opts.pageSize, offset: opts.page * opts.pageSize };
    if (opts.integrationId) {
      where.push('integration_id = @integrationId');
      p.integrationId = opts.integrationId;
    }
    // Exact values, as the console offers them (deviceFacets): an operator narrows 50,000 devices
    // to the noncompliant or high-risk ones.
    for (const [key, column] of [['compliance', 'compliance'], ['risk', 'risk'], ['platform', 'platform']] as const) {
      const value = opts[key];
      if (value === undefined) continue;
      where.push(`${column} = @${key}`);
      p[key] = value;
    }
    if (opts.search) {
      where.push('(name LIKE @q OR serial LIKE @q OR udid LIKE @q OR owner_email LIKE @q OR model LIKE @q OR id LIKE @q)');
      p.q = containsPattern(opts.search);
    }
    const w = where.join(' AND ').replace(/LIKE @q/g, "LIKE @q ESCAPE '\\'");
    const total = (this.db.prepare(`SELECT count(*) AS n FROM devices WHERE ${w}`).get(p) as { n: number }).n;
    const rows = this.db.prepare(`SELECT * FROM devices WHERE ${w} ORDER BY ${ORDER_BY[opts.sort ?? 'integration']} LIMIT @limit OFFSET @offset`).all(p) as RawDevice[];
    return { devices: rows.map(toRow), total };
  }

  /** The compliance states and platforms a tenant's devices have (at most 50 of each), for filters. */
  deviceFacets(tenant: string): { compliance: string[]; platform: string[] } {
    const values = (column: 'compliance' | 'platform'): string[] =>
      (this.db.prepare(`SELECT DISTINCT ${column} AS v FROM devices WHERE tenant = ? AND ${column} IS NOT NULL ORDER BY v LIMIT 50`).all(tenant) as Array<{ v: string }>).map((r) => r.v);
    return { compliance: values('compliance'), platform: values('platform') };
  }

  appsOf(integrationId: string, deviceId: string): UemApp[] {
    return this.db.prepare('SELECT app_id AS id, name, version FROM device_apps WHERE integration_id = ? AND device_id = ? ORDER BY name').all(integrationId, deviceId) as UemApp[];
  }

  /**
   * The tenant-wide app catalogue: name, bundle id, versions, device count. Read from the counts
   * kept as app lists change: grouping the tenant's app rows (a million at 50,000 devices) took
   * seconds per page, with the event loop, and so every tunnel and relayed call, waiting.
   */
  catalogue(tenant: string, opts: { search?: string; page: number; pageSize: number }): { apps: Array<{ id: string; name: string; versions: string[]; devices: number }>; total: number } {
    const p: Record<string, unknown> = { tenant, limit: opts.pageSize, offset: opts.page * opts.pageSize };
    let filter = '';
    if (opts.search) {
      filter = "AND (app_id LIKE @q ESCAPE '\\' OR name LIKE @q ESCAPE '\\')";
      p.q = containsPattern(opts.search);
    }
    const base = `FROM app_counts WHERE tenant = @tenant ${filter}`;
    const total = (this.db.prepare(`SELECT count(DISTINCT app_id) AS n ${base}`).get(p) as { n: number }).n;
    // app_id last: a stable order, so that pages neither repeat nor skip an app.
    const rows = this.db.prepare(`SELECT app_id AS id, max(name) AS name, sum(devices) AS devices ${base} GROUP BY app_id ORDER BY devices DESC, name, app_id LIMIT @limit OFFSET @offset`).all(p) as Array<{ id: string; name: string; devices: number }>;
    const versions = new Map<string, Set<string>>(rows.map((r) => [r.id, new Set<string>()]));
    if (rows.length > 0) {
      const marks = rows.map(() => '?').join(',');
      const q = `SELECT v.app_id AS id, v.version AS version FROM app_version_counts v JOIN app_counts c ON c.integration_id = v.integration_id AND c.app_id = v.app_id WHERE c.tenant = ? AND v.app_id IN (${marks})`;
      for (const r of this.db.prepare(q).all(tenant, ...rows.map((x) => x.id)) as Array<{ id: string; version: string }>) if (r.version !== '') versions.get(r.id)?.add(r.version);
    }
    return { apps: rows.map((r) => ({ id: r.id, name: r.name, versions: [...versions.get(r.id)!].sort(), devices: r.devices })), total };
  }

  /** Devices of an integration that have any of `appIds` installed. */
  devicesWithApps(integrationId: string, appIds: string[]): string[] {
    if (appIds.length === 0) return [];
    const marks = appIds.map(() => '?').join(',');
    return (this.db.prepare(`SELECT DISTINCT device_id FROM device_apps WHERE integration_id = ? AND (app_id IN (${marks}) OR name IN (${marks}))`).all(integrationId, ...appIds, ...appIds) as Array<{ device_id: string }>).map(
      (r) => r.device_id,
    );
  }

  setVerdict(integrationId: string, deviceId: string, v: { risk?: string; status?: string; threatFactors?: string[] }, now: string): boolean {
    const cur = this.device(integrationId, deviceId);
    if (!cur) return false;
    this.db
      .prepare('UPDATE devices SET risk = ?, status = ?, threat_factors = ?, updated_at = ? WHERE integration_id = ? AND id = ?')
      .run(v.risk ?? cur.risk, v.status ?? cur.status, JSON.stringify(v.threatFactors ?? cur.threatFactors), now, integrationId, deviceId);
    return true;
  }

  // ---- tags written to the UEM (what we believe the UEM holds; tags.ts) --------------------------

  tagId(integrationId: string, name: string): string | undefined {
    return this.tags.id(integrationId, name);
  }

  setTagId(integrationId: string, name: string, id: string): void {
    this.tags.setId(integrationId, name, id);
  }

  forgetTag(integrationId: string, name: string): void {
    this.tags.forget(integrationId, name);
  }

  tagNames(integrationId: string): string[] {
    return this.tags.names(integrationId);
  }

  tagMembers(integrationId: string, name: string): Set<string> {
    return this.tags.members(integrationId, name);
  }

  setTagMembers(integrationId: string, name: string, add: string[], remove: string[]): void {
    this.tags.setMembers(integrationId, name, add, remove);
  }
}

// The disk's and the file's failures, from any method, as InventoryStorageError naming the file.
wrapStorageErrors(InventoryDb);
