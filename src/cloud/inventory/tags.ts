/**
 * The tags the cloud wrote to each UEM, as it believes the UEM holds them: each tag's id there and
 * its members, so that a write-back sends only the differences.
 */
import type { Database as Db } from 'better-sqlite3';

export class TagRecords {
  constructor(private readonly db: Db) {}

  id(integrationId: string, name: string): string | undefined {
    return (this.db.prepare('SELECT tag_id FROM tags WHERE integration_id = ? AND tag_name = ?').get(integrationId, name) as { tag_id: string } | undefined)?.tag_id;
  }

  setId(integrationId: string, name: string, id: string): void {
    this.db.prepare('INSERT OR REPLACE INTO tags (integration_id, tag_name, tag_id) VALUES (?, ?, ?)').run(integrationId, name, id);
  }

  /** Forgets a tag the UEM no longer has (deleted in its console): its id and what it held. */
  forget(integrationId: string, name: string): void {
    this.db.transaction(() => {
      for (const t of ['tags', 'tag_members', 'tag_departed']) this.db.prepare(`DELETE FROM ${t} WHERE integration_id = ? AND tag_name = ?`).run(integrationId, name);
    })();
  }

  /** Tag names we manage for an integration (known ids), for removing emptied ones. */
  names(integrationId: string): string[] {
    return (this.db.prepare('SELECT tag_name FROM tags WHERE integration_id = ?').all(integrationId) as Array<{ tag_name: string }>).map((r) => r.tag_name);
  }

  members(integrationId: string, name: string): Set<string> {
    return new Set((this.db.prepare('SELECT device_id FROM tag_members WHERE integration_id = ? AND tag_name = ?').all(integrationId, name) as Array<{ device_id: string }>).map((r) => r.device_id));
  }

  setMembers(integrationId: string, name: string, add: string[], remove: string[]): void {
    const ins = this.db.prepare('INSERT OR IGNORE INTO tag_members (integration_id, tag_name, device_id) VALUES (?, ?, ?)');
    const del = this.db.prepare('DELETE FROM tag_members WHERE integration_id = ? AND tag_name = ? AND device_id = ?');
    this.db.transaction(() => {
      for (const d of add) ins.run(integrationId, name, d);
      for (const d of remove) del.run(integrationId, name, d);
    })();
  }
}
