/**
 * Devices' app lists, and the per-integration counts the tenant's app catalogue is read from
 * (app_counts, app_version_counts, app_name_counts). The counts change with each list, by its
 * differences: grouping a tenant's app rows (a million at 50,000 devices) took seconds per page.
 */
import { createHash } from 'node:crypto';
import type { Database as Db, Statement } from 'better-sqlite3';
import type { UemApp } from '../../uem/adapter.js';

/** Fills the app counts of a file made before they existed (version 0), once. */
export const FILL_APP_COUNTS = `
INSERT OR REPLACE INTO app_counts (integration_id, tenant, app_id, name, devices)
  SELECT a.integration_id, d.tenant, a.app_id, max(a.name), count(*) FROM device_apps a JOIN devices d ON d.integration_id = a.integration_id AND d.id = a.device_id GROUP BY a.integration_id, a.app_id;
INSERT OR REPLACE INTO app_version_counts (integration_id, app_id, version, devices)
  SELECT integration_id, app_id, coalesce(version, ''), count(*) FROM device_apps GROUP BY integration_id, app_id, coalesce(version, '');
INSERT OR REPLACE INTO app_name_counts (integration_id, app_id, name, devices)
  SELECT integration_id, app_id, name, count(*) FROM device_apps GROUP BY integration_id, app_id, name;
`;

function appsHash(apps: UemApp[]): string {
  const sorted = [...apps].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return createHash('sha1').update(JSON.stringify(sorted.map((a) => [a.id, a.name, a.version]))).digest('base64');
}

export class AppCounts {
  constructor(private readonly db: Db) {}

  /** Replaces a device's app list when it changed; returns whether it wrote. */
  apply(integrationId: string, deviceId: string, apps: UemApp[]): boolean {
    const h = appsHash(apps);
    const q = this.statements();
    const cur = q.hash.get(integrationId, deviceId) as { apps_hash: string | null; tenant: string } | undefined;
    if (!cur || cur.apps_hash === h) return false;
    this.db.transaction(() => {
      // Only what changed is written, rows and counts alike: a new version of one app among twenty
      // is one row and two count updates, not forty.
      const before = new Map<string, { name: string; version: string | null }>();
      for (const a of q.list.all(integrationId, deviceId) as Array<{ app_id: string; name: string; version: string | null }>) before.set(a.app_id, a);
      // One row per app id (a list naming one twice keeps the last, as the table does).
      const after = new Map<string, UemApp>();
      for (const a of apps) after.set(a.id, a);
      for (const [id, old] of before) {
        if (after.has(id)) continue;
        q.remove.run(integrationId, deviceId, id);
        this.uncount(integrationId, id, old.name, old.version);
      }
      for (const [id, a] of after) {
        const old = before.get(id);
        if (old && old.name === a.name && old.version === a.version) continue;
        q.upsert.run(integrationId, deviceId, id, a.name, a.version);
        if (!old) {
          q.countApp.run(integrationId, cur.tenant, id, a.name);
          this.countName(integrationId, id, a.name);
          q.countVersion.run(integrationId, id, a.version ?? '');
          continue;
        }
        if (old.name !== a.name) {
          this.uncountName(integrationId, id, old.name);
          this.countName(integrationId, id, a.name);
        }
        if (old.version !== a.version) {
          this.uncountVersion(integrationId, id, old.version);
          q.countVersion.run(integrationId, id, a.version ?? '');
        }
      }
      q.setHash.run(h, integrationId, deviceId);
    })();
    return true;
  }

  /** Takes a device's current apps out of the counts (before the device is deleted). */
  uncountDevice(integrationId: string, deviceId: string): void {
    for (const a of this.statements().list.all(integrationId, deviceId) as Array<{ app_id: string; name: string; version: string | null }>) this.uncount(integrationId, a.app_id, a.name, a.version);
  }

  private uncount(integrationId: string, appId: string, name: string, version: string | null): void {
    const q = this.statements();
    this.uncountName(integrationId, appId, name);
    const left = q.uncountApp.get(integrationId, appId) as { devices: number } | undefined;
    if (left && left.devices <= 0) q.dropApp.run(integrationId, appId);
    this.uncountVersion(integrationId, appId, version);
  }

  private uncountVersion(integrationId: string, appId: string, version: string | null): void {
    const q = this.statements();
    const left = q.uncountVersion.get(integrationId, appId, version ?? '') as { devices: number } | undefined;
    if (left && left.devices <= 0) q.dropVersion.run(integrationId, appId, version ?? '');
  }

  /**
   * The catalogue shows an app under the largest name its devices report (as grouping the rows
   * did): kept from per-name counts, so a rename, or the device with that name leaving, is seen.
   */
  private countName(integrationId: string, appId: string, name: string): void {
    const q = this.statements();
    const r = q.countName.get(integrationId, appId, name) as { devices: number };
    if (r.devices === 1) q.refreshName.run(integrationId, appId, integrationId, appId);
  }

  private uncountName(integrationId: string, appId: string, name: string): void {
    const q = this.statements();
    const left = q.uncountName.get(integrationId, appId, name) as { devices: number } | undefined;
    if (left && left.devices <= 0) {
      q.dropName.run(integrationId, appId, name);
      q.refreshName.run(integrationId, appId, integrationId, appId);
    }
  }

  // Prepared once: an app sync replaces each device's list in turn, and compiling the SQL each time
  // cost more than running it.
  private q:
    | Record<'hash' | 'upsert' | 'remove' | 'setHash' | 'list' | 'countApp' | 'countVersion' | 'uncountApp' | 'uncountVersion' | 'dropApp' | 'dropVersion' | 'countName' | 'uncountName' | 'dropName' | 'refreshName', Statement>
    | undefined;
  private statements(): NonNullable<AppCounts['q']> {
    return (this.q ??= {
      hash: this.db.prepare('SELECT apps_hash, tenant FROM devices WHERE integration_id = ? AND id = ?'),
      upsert: this.db.prepare('INSERT OR REPLACE INTO device_apps (integration_id, device_id, app_id, name, version) VALUES (?, ?, ?, ?, ?)'),
      remove: this.db.prepare('DELETE FROM device_apps WHERE integration_id = ? AND device_id = ? AND app_id = ?'),
      setHash: this.db.prepare('UPDATE devices SET apps_hash = ? WHERE integration_id = ? AND id = ?'),
      list: this.db.prepare('SELECT app_id, name, version FROM device_apps WHERE integration_id = ? AND device_id = ?'),
      countApp: this.db.prepare('INSERT INTO app_counts (integration_id, tenant, app_id, name, devices) VALUES (?, ?, ?, ?, 1) ON CONFLICT DO UPDATE SET devices = devices + 1'),
      countVersion: this.db.prepare('INSERT INTO app_version_counts (integration_id, app_id, version, devices) VALUES (?, ?, ?, 1) ON CONFLICT DO UPDATE SET devices = devices + 1'),
      uncountApp: this.db.prepare('UPDATE app_counts SET devices = devices - 1 WHERE integration_id = ? AND app_id = ? RETURNING devices'),
      uncountVersion: this.db.prepare('UPDATE app_version_counts SET devices = devices - 1 WHERE integration_id = ? AND app_id = ? AND version = ? RETURNING devices'),
      dropApp: this.db.prepare('DELETE FROM app_counts WHERE integration_id = ? AND app_id = ?'),
      dropVersion: this.db.prepare('DELETE FROM app_version_counts WHERE integration_id = ? AND app_id = ? AND version = ?'),
      countName: this.db.prepare('INSERT INTO app_name_counts (integration_id, app_id, name, devices) VALUES (?, ?, ?, 1) ON CONFLICT DO UPDATE SET devices = devices + 1 RETURNING devices'),
      uncountName: this.db.prepare('UPDATE app_name_counts SET devices = devices - 1 WHERE integration_id = ? AND app_id = ? AND name = ? RETURNING devices'),
      dropName: this.db.prepare('DELETE FROM app_name_counts WHERE integration_id = ? AND app_id = ? AND name = ?'),
      refreshName: this.db.prepare('UPDATE app_counts SET name = coalesce((SELECT max(name) FROM app_name_counts WHERE integration_id = ? AND app_id = ?), name) WHERE integration_id = ? AND app_id = ?'),
    });
  }
}
