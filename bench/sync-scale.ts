/**
 * Integration scale: a simulated Workspace ONE with --devices (default 50,000) devices, synced by the
 * cloud through a connector (real processes, real tunnel). Measures the full device sync's time and
 * the cloud's peak RSS, then checks that a second, unchanged sync writes nothing and makes no tag
 * call. Targets: <= 120 s, < 512 MiB.
 *
 *   npm run bench:sync [-- --devices 50000] [--cloud-node-options "--max-old-space-size=320"]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSimulator } from '../src/uem/simulator/server.js';
import { makeConnector, startCloud, tempDir, until } from '../test/helpers/procs.js';
import { cloudNodeOptions, rssMiB } from './lib.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const DEVICES = arg('--devices', 50_000);
const CLOUD_NODE_OPTIONS = cloudNodeOptions();

async function main(): Promise<void> {
  const t0 = Date.now();
  const sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: tempDir('uemlink-bench-sim-'), devices: DEVICES, seed: 11 });
  process.stdout.write(`cloud NODE_OPTIONS: ${CLOUD_NODE_OPTIONS || '(none)'}\n`);
  process.stdout.write(`simulator with ${DEVICES} devices ready in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const cloud = await startCloud({ ...(CLOUD_NODE_OPTIONS ? { env: { NODE_OPTIONS: CLOUD_NODE_OPTIONS } } : {}), extra: { logLevel: 'warn', relay: { timeoutSeconds: 120 }, integrations: { firstRunWithinSeconds: 3600 } } });
  const dir = tempDir('uemlink-bench-conn-');
  writeFileSync(join(dir, 'ca.pem'), sim.caPem);
  const c = sim.credentials;
  const conn = await makeConnector({
    dir,
    config: {
      logLevel: 'warn',
      health: { checkIntervalSeconds: 0 },
      targets: [{ id: 'ws1', baseUrl: sim.baseUrl, auth: { type: 'basic', username: c.username, password: c.password, apiKey: c.apiKey }, tls: { caFile: 'ca.pem' }, timeoutMs: 120_000, maxConcurrent: 16 }],
    },
  });
  const token = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'bench' })).body.token as string;
  if ((await conn.pair(token)).code !== 0) throw new Error('pairing failed');
  await conn.start();
  await until(async () => (await cloud.api('GET', '/api/v1/connectors')).body.connectors.some((x: { connected: boolean }) => x.connected), 15_000, 'connector');

  const api = (m: string, p: string, b?: unknown) => cloud.api(m, `/api/v1/tenants/bench${p}`, b);
  const created = await api('POST', '/integrations', { vendor: 'workspace-one', displayName: 'bench', route: { via: 'connector', group: 'default', target: 'ws1' } });
  const id = created.body.id as string;
  const groups = (await api('GET', `/integrations/${id}/groups`)).body.groups as Array<{ id: string; kind: string }>;
  const ogs = groups.filter((g) => g.kind === 'organization').map((g) => g.id);
  const upd = await api('PUT', `/integrations/${id}`, { sync: { groups: ogs }, tagging: { deviceStatus: true } });
  if (upd.status !== 200) throw new Error(JSON.stringify(upd.body));

  let peak = rssMiB(cloud.proc.pid);
  const base = peak;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(cloud.proc.pid))), 100);
  const runs: Array<{ label: string; secs: number; deviceSecs: number; status: any; tagWrites: number }> = [];
  let tagWrites = 0;
  // Writes to the UEM: tag creation and membership changes (POST /mdm/devices/id is a bulk read).
  sim.state.onRequest((r) => {
    if (r.method === 'POST' && /\/tags\//.test(r.path)) tagWrites++;
  });
  for (const label of ['first (full)', 'second (unchanged)']) {
    tagWrites = 0;
    const before = (await api('GET', `/integrations/${id}/status`)).body;
    const s0 = Date.now();
    const r = await api('POST', `/integrations/${id}/sync`);
    if (r.status !== 202) throw new Error(JSON.stringify(r.body));
    // The device sync (with its tagging pass) is done when the app sync starts; then wait for that too.
    const status = await until(async () => {
      const st = (await api('GET', `/integrations/${id}/status`)).body;
      return st.appSync.lastRun !== before.appSync.lastRun && st.appSync.lastRun !== null && (st.appSync.lastSuccess === st.appSync.lastRun || st.appSync.indicator === 'red') ? st : undefined;
    }, 1_800_000, 'the sync to finish');
    const secs = (Date.now() - s0) / 1000;
    const deviceSecs = (Date.parse(status.appSync.lastRun) - Date.parse(status.deviceSync.lastRun)) / 1000;
    process.stdout.write(`  ${label}: device sync ${deviceSecs.toFixed(1)} s, with app sync ${secs.toFixed(1)} s\n`);
    runs.push({ label, secs, deviceSecs, status, tagWrites });
  }
  clearInterval(sampler);

  process.stdout.write(`\nintegration sync through the connector (Workspace ONE simulator, ${DEVICES} devices; cloud, connector separate processes)\n`);
  for (const r of runs) {
    const d = r.status.deviceSync;
    const t = r.status.tagging;
    const a = r.status.appSync;
    process.stdout.write(
      `${r.label.padEnd(20)} device sync ${r.deviceSecs.toFixed(1).padStart(6)} s   devices ${d.counts.devices}  added ${d.counts.added}  updated ${d.counts.updated}  deleted ${d.counts.deleted}` +
        `   tag calls ${t.counts.calls ?? 0}   tag writes seen by the UEM ${r.tagWrites}   | then app sync, total ${r.secs.toFixed(1)} s: apps of ${a.counts.devices ?? 0} devices (${a.counts.changed ?? 0} changed)\n`,
    );
    process.stdout.write(`${''.padEnd(20)} device sync: ${d.message.slice(0, 120)}\n`);
  }
  process.stdout.write(`cloud RSS: ${base.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB peak   (targets: full device sync <= 120 s, RSS < 512 MiB; unchanged sync: 0 writes, 0 tag calls)\n`);
  await conn.proc.stop();
  await cloud.proc.stop();
  await sim.close();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
    process.exit(1);
  },
);
