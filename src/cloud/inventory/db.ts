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
import Database, { type Database as Db, type Statement } from 'better-sqlite3';
import type { UemApp, UemDevice } from '../../uem/adapter.js';

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
`;

/** How long a deleted device that carried tags is remembered, in case it comes back. */
const DEPARTED_KEEP_MS = 90 * 24 * 3600_000;

export function deviceHash(d: UemDevice, groups: string[]): string {
  return createHash('sha1')
    .update(JSON.stringify([d.udid, d.serial, d.name, d.phone, d.ownerEmail, d.ownerName, d.platform, d.os, d.model, d.enrollment, d.compliance, d.lastSeen, groups]))
    .digest('base64');
}

export function appsHash(apps: UemApp[]): string {
  const sorted = [...apps].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return createHash('sha1').update(JSON.stringify(sorted.map((a) => [a.id, a.name, a.version]))).digest('base64');
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

  constructor(file: string) {
    // The inventory holds device PII: 0600 like every other file in the data dir (it was created
    // 0644 under the umask). SQLite gives the -wal and -shm files the database file's mode, so
    // creating it 0600 first covers them; an existing database from an older version is fixed too.
    if (file !== ':memory:') {
      closeSync(openSync(file, 'a', 0o600));
      for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    }
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
  }

  static open(dataDir: string): InventoryDb {
    return new InventoryDb(join(dataDir, 'inventory.sqlite'));
  }

  close(): void {
    this.db.close();
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
    for (const r of this.db.prepare('SELECT id, hash, missing FROM devices WHERE integration_id = ?').iterate(integrationId) as IterableIterator<{ id: string; hash: string; missing: number }>) {
      existing.set(r.id, { hash: r.hash, missing: r.missing });
    }
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
    if (Number.isFinite(at)) this.db.prepare('DELETE FROM tag_departed WHERE integration_id = ? AND departed_at < ?').run(integrationId, new Date(at - DEPARTED_KEEP_MS).toISOString());
    this.db.transaction(() => {
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
    })();
    return counts;
  }

  /** Replaces a device's app list when it changed; returns whether it wrote. */
  applyApps(integrationId: string, deviceId: string, apps: UemApp[]): boolean {
    const h = appsHash(apps);
    const q = this.appStatements();
    const cur = q.hash.get(integrationId, deviceId) as { apps_hash: string | null } | undefined;
    if (!cur || cur.apps_hash === h) return false;
    this.db.transaction(() => {
      q.clear.run(integrationId, deviceId);
      for (const a of apps) q.insert.run(integrationId, deviceId, a.id, a.name, a.version);
      q.setHash.run(h, integrationId, deviceId);
    })();
    return true;
  }

  // Prepared once: an app sync calls applyApps once per device, and compiling the SQL each time
  // cost more than running it.
  private appQ: { hash: Statement; clear: Statement; insert: Statement; setHash: Statement } | undefined;
  private appStatements(): NonNullable<InventoryDb['appQ']> {
    return (this.appQ ??= {
      hash: this.db.prepare('SELECT apps_hash FROM devices WHERE integration_id = ? AND id = ?'),
      clear: this.db.prepare('DELETE FROM device_apps WHERE integration_id = ? AND device_id = ?'),
      insert: this.db.prepare('INSERT OR REPLACE INTO device_apps (integration_id, device_id, app_id, name, version) VALUES (?, ?, ?, ?, ?)'),
      setHash: this.db.prepare('UPDATE devices SET apps_hash = ? WHERE integration_id = ? AND id = ?'),
    });
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
    return n;
  }

  deleteIntegration(integrationId: string): void {
    this.db.transaction(() => {
      for (const t of ['devices', 'device_apps', 'tag_members', 'tags', 'tag_departed']) this.db.prepare(`DELETE FROM ${t} WHERE integration_id = ?`).run(integrationId);
    })();
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
  listDevices(tenant: string, opts: { integrationId?: string; search?: string; page: number; pageSize: number }): { devices: DeviceRow[]; total: number } {
    const where = ['tenant = @tenant'];
    const p: Record<string, unknown> = { tenant, limit: opts.pageSize, offset: opts.page * opts.pageSize };
    if (opts.integrationId) {
      where.push('integration_id = @integrationId');
      p.integrationId = opts.integrationId;
    }
    if (opts.search) {
      where.push('(name LIKE @q OR serial LIKE @q OR udid LIKE @q OR owner_email LIKE @q OR model LIKE @q OR id LIKE @q)');
      p.q = `%${opts.search.replace(/[%_\\]/g, (c) => `\\${c}`)}%`;
    }
    const w = where.join(' AND ').replace(/LIKE @q/g, "LIKE @q ESCAPE '\\'");
    const total = (this.db.prepare(`SELECT count(*) AS n FROM devices WHERE ${w}`).get(p) as { n: number }).n;
    const rows = this.db.prepare(`SELECT * FROM devices WHERE ${w} ORDER BY integration_id, id LIMIT @limit OFFSET @offset`).all(p) as RawDevice[];
    return { devices: rows.map(toRow), total };
  }

  appsOf(integrationId: string, deviceId: string): UemApp[] {
    return this.db.prepare('SELECT app_id AS id, name, version FROM device_apps WHERE integration_id = ? AND device_id = ? ORDER BY name').all(integrationId, deviceId) as UemApp[];
  }

  /** The tenant-wide app catalogue: name, bundle id, versions, device count. */
  catalogue(tenant: string, opts: { search?: string; page: number; pageSize: number }): { apps: Array<{ id: string; name: string; versions: string[]; devices: number }>; total: number } {
    const p: Record<string, unknown> = { tenant, limit: opts.pageSize, offset: opts.page * opts.pageSize };
    let filter = '';
    if (opts.search) {
      filter = "AND (a.app_id LIKE @q ESCAPE '\\' OR a.name LIKE @q ESCAPE '\\')";
      p.q = `%${opts.search.replace(/[%_\\]/g, (c) => `\\${c}`)}%`;
    }
    const base = `FROM device_apps a JOIN devices d ON d.integration_id = a.integration_id AND d.id = a.device_id WHERE d.tenant = @tenant ${filter}`;
    const total = (this.db.prepare(`SELECT count(DISTINCT a.app_id) AS n ${base}`).get(p) as { n: number }).n;
    const rows = this.db
      .prepare(`SELECT a.app_id AS id, max(a.name) AS name, group_concat(DISTINCT a.version) AS versions, count(DISTINCT a.integration_id || '/' || a.device_id) AS devices ${base} GROUP BY a.app_id ORDER BY devices DESC, name LIMIT @limit OFFSET @offset`)
      .all(p) as Array<{ id: string; name: string; versions: string | null; devices: number }>;
    return { apps: rows.map((r) => ({ id: r.id, name: r.name, versions: r.versions ? r.versions.split(',').sort() : [], devices: r.devices })), total };
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

  // ---- tags written to the UEM (what we believe the UEM holds) -------------------------------------

  tagId(integrationId: string, name: string): string | undefined {
    return (this.db.prepare('SELECT tag_id FROM tags WHERE integration_id = ? AND tag_name = ?').get(integrationId, name) as { tag_id: string } | undefined)?.tag_id;
  }

  setTagId(integrationId: string, name: string, id: string): void {
    this.db.prepare('INSERT OR REPLACE INTO tags (integration_id, tag_name, tag_id) VALUES (?, ?, ?)').run(integrationId, name, id);
  }

  /** Forgets a tag the UEM no longer has (deleted in its console): its id and what it held. */
  forgetTag(integrationId: string, name: string): void {
    this.db.transaction(() => {
      for (const t of ['tags', 'tag_members', 'tag_departed']) this.db.prepare(`DELETE FROM ${t} WHERE integration_id = ? AND tag_name = ?`).run(integrationId, name);
    })();
  }

  /** Tag names we manage for an integration (known ids), for removing emptied ones. */
  tagNames(integrationId: string): string[] {
    return (this.db.prepare('SELECT tag_name FROM tags WHERE integration_id = ?').all(integrationId) as Array<{ tag_name: string }>).map((r) => r.tag_name);
  }

  tagMembers(integrationId: string, name: string): Set<string> {
    return new Set((this.db.prepare('SELECT device_id FROM tag_members WHERE integration_id = ? AND tag_name = ?').all(integrationId, name) as Array<{ device_id: string }>).map((r) => r.device_id));
  }

  setTagMembers(integrationId: string, name: string, add: string[], remove: string[]): void {
    const ins = this.db.prepare('INSERT OR IGNORE INTO tag_members (integration_id, tag_name, device_id) VALUES (?, ?, ?)');
    const del = this.db.prepare('DELETE FROM tag_members WHERE integration_id = ? AND tag_name = ? AND device_id = ?');
    this.db.transaction(() => {
      for (const d of add) ins.run(integrationId, name, d);
      for (const d of remove) del.run(integrationId, name, d);
    })();
  }
}
