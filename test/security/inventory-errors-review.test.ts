/**
 * Attacker's review of the inventory's storage errors as tenants see them (commit 33cb60b:
 * InventoryStorageError.publicMessage, "the tenant's status says what in a word without the cloud's
 * paths"). Failed on the code as reviewed. Loopback only; the lock holder, cloud and dirs are removed.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createApiKey } from '../../src/cloud/api-keys.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { systemClock } from '../../src/common/clock.js';
import { startInprocCloud } from '../helpers/inproc.js';
import { bareIntegration } from '../helpers/integrations.js';

const require = createRequire(import.meta.url);
const SQLITE = require.resolve('better-sqlite3');

describe('security review: inventory storage errors shown to a tenant', function () {
  this.timeout(40_000);
  let cloud: CloudServer | undefined;
  let holder: ChildProcess | undefined;
  after(async () => {
    holder?.kill('SIGKILL');
    if (cloud) {
      await cloud.shutdown().catch(() => {});
      rmSync(dirname(cloud.config.dataDir), { recursive: true, force: true });
    }
  });

  it("a tenant API key's call that meets a locked inventory is told 'busy' without the cloud's file path", async () => {
    cloud = await startInprocCloud();
    const { key } = await createApiKey(cloud.store, 'acme', 'tenant-script', systemClock);
    const integration = 'int_0123456789abcdef';
    await cloud.store.update((s) => {
      s.integrations.push(bareIntegration(integration) as never);
    });
    const file = join(cloud.config.dataDir, 'inventory.sqlite');
    // Another process (an operator's sqlite3 session, a backup tool) holds the write lock, as the
    // InventoryStorageError's own comment foresees ("a lock held elsewhere").
    holder = spawn(
      process.execPath,
      [
        '-e',
        `const D = require(${JSON.stringify(SQLITE)}); const db = new D(${JSON.stringify(file)});
         const now = new Date().toISOString();
         db.prepare("INSERT INTO devices (integration_id, id, tenant, platform, hash, first_seen, updated_at) VALUES (?, 'd1', 'acme', 'ios', 'h', ?, ?)").run(${JSON.stringify(integration)}, now, now);
         db.exec('BEGIN IMMEDIATE'); db.exec("UPDATE devices SET model = 'x'"); console.log('locked'); setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      holder!.stdout!.once('data', () => resolve());
      holder!.once('exit', (c) => reject(new Error(`lock holder exited ${c}`)));
    });
    // The tenant's own script sets a verdict (PUT …/devices/{integration}:{id}/risk).
    const r = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/tenants/acme/devices/${integration}:d1/risk`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ risk: 'high' }),
      signal: AbortSignal.timeout(20_000),
    });
    const body = (await r.json()) as { error: string; message: string };
    expect(r.status).to.equal(503);
    expect(body.error).to.equal('busy');
    expect(body.message, "the tenant is shown the cloud's data directory").to.not.contain(cloud.config.dataDir).and.not.contain('inventory.sqlite');
  });
});
