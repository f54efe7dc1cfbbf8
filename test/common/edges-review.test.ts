/**
 * Edges of the daemon lock, the rotating log files, once-per-episode warnings, the inventory's app
 * counts and pairing again (found in a review of the commits that added them; each test failed on
 * the code as reviewed).
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../../src/common/clock.js';
import { processStart, takeDaemonLock } from '../../src/common/daemon-lock.js';
import { Episodes } from '../../src/common/episodes.js';
import { createRotatingFile } from '../../src/common/rotating-file.js';
import { InventoryDb } from '../../src/cloud/inventory/db.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { pairConnector } from '../../src/connector/pair.js';
import { ConnectorStateStore } from '../../src/connector/state.js';
import { Target } from '../../src/connector/targets/target.js';
import type { UemDevice } from '../../src/uem/adapter.js';
import { startInprocCloud } from '../helpers/inproc.js';
import { relayOver } from '../helpers/relay.js';
import { capturingLogger } from '../helpers/logs.js';
import { sleep, tempDir } from '../helpers/procs.js';
import { sessionPair, waitFor } from '../helpers/sessions.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const require = createRequire(import.meta.url);
const fsCjs = require('node:fs') as typeof import('node:fs');
const LOCK_JS = fileURLToPath(new URL('../../src/common/daemon-lock.js', import.meta.url));

/** `argv` (a wrapper such as `unshare …`, then node) running `code`; resolves once it printed `held`. */
function lockHolder(prefix: string[], code: string): Promise<{ child: ChildProcess; out: () => string; kill(): Promise<void> }> {
  const argv = [...prefix, process.execPath, '--input-type=module', '-e', code];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += String(b)));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += String(b);
      if (out.includes('held')) resolve({ child, out: () => out, kill: () => new Promise<void>((r) => (child.exitCode !== null ? r() : (child.once('exit', () => r()), child.kill('SIGKILL')))) });
    });
    child.once('exit', (c) => reject(new Error(`holder exited ${c} before holding: ${out} ${err}`)));
  });
}

const takeAndHold = (dir: string): string =>
  `const { takeDaemonLock } = await import(${JSON.stringify(LOCK_JS)}); takeDaemonLock(${JSON.stringify(dir)}, 'connector', 'x'); console.log('held'); setInterval(() => {}, 1000);`;

/** Runs `code` to completion under `prefix`; its stdout. */
function runTo(prefix: string[], code: string): Promise<string> {
  const argv = [...prefix, process.execPath, '--input-type=module', '-e', code];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += String(b)));
  return new Promise((r) => child.once('exit', () => r(out)));
}

function canUnshare(args: string[]): boolean {
  try {
    require('node:child_process').execFileSync('unshare', [...args, 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const dev = (i: number): UemDevice => ({
  id: `d${i}`,
  udid: `u${i}`,
  serial: `S${i}`,
  name: `Laptop ${i}`,
  phone: null,
  ownerEmail: null,
  ownerName: null,
  platform: 'ios',
  os: '17',
  model: 'iPhone',
  enrollment: 'enrolled',
  compliance: 'compliant',
  lastSeen: null,
} as UemDevice);

describe('lock, log files, episodes, app counts and re-pairing at their edges (found in review)', function () {
  this.timeout(60_000);

  // ---- daemon.lock ---------------------------------------------------------------------------------

  describe('daemon lock', () => {
    it('two daemons taking over a dead holder\'s lock at once: only one may end up holding it', async () => {
      const dir = tempDir('rv-lock-race-');
      const file = join(dir, 'daemon.lock');
      // A lock left by a daemon killed with -9 (its pid no longer runs).
      const dead = await lockHolder([], takeAndHold(dir));
      await dead.kill();
      expect(existsSync(file)).to.equal(true);
      // Daemon A: a real process that starts its takeover when told to.
      const go = join(dir, 'go');
      const held = join(dir, 'a-result');
      const a = spawn(process.execPath, ['--input-type=module', '-e', `
        const { existsSync, writeFileSync } = await import('node:fs');
        const { takeDaemonLock } = await import(${JSON.stringify(LOCK_JS)});
        const wait = setInterval(() => {
          if (!existsSync(${JSON.stringify(go)})) return;
          clearInterval(wait);
          let r = 'held';
          try { takeDaemonLock(${JSON.stringify(dir)}, 'connector', 'x'); } catch (e) { r = e.code; }
          writeFileSync(${JSON.stringify(held)}, r);
          setInterval(() => {}, 1000);
        }, 2);
      `], { stdio: 'ignore' });
      // Daemon B (this process) read the dead holder, judged it gone, and is about to remove the
      // file: A, starting at the same moment, does its whole takeover in between.
      const realUnlink = fsCjs.unlinkSync;
      let interleaved = false;
      fsCjs.unlinkSync = ((p: string) => {
        if (p === file && !interleaved) {
          interleaved = true;
          writeFileSync(go, '');
          const until = Date.now() + 10_000;
          while (!existsSync(held) && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        }
        return realUnlink(p);
      }) as typeof fsCjs.unlinkSync;
      syncBuiltinESMExports();
      let bResult = 'held';
      try {
        takeDaemonLock(dir, 'connector', 'x');
      } catch (e) {
        bResult = (e as { code: string }).code;
      } finally {
        fsCjs.unlinkSync = realUnlink;
        syncBuiltinESMExports();
        a.kill('SIGKILL');
      }
      const aResult = readFileSync(held, 'utf8');
      expect(interleaved, 'the interleaving happened').to.equal(true);
      expect([aResult, bResult].filter((r) => r === 'held'), `A: ${aResult}, B: ${bResult} (B's unlink removed the lock A had just created)`).to.have.length(1);
    });

    it('a live daemon in another PID namespace on the same host name (containers with host networking, one volume) is not taken over', async function () {
      if (!canUnshare(['--pid', '--fork', '--mount-proc'])) this.skip();
      const dir = tempDir('rv-lock-pidns-');
      const h = await lockHolder(['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'], takeAndHold(dir));
      try {
        const lock = JSON.parse(readFileSync(join(dir, 'daemon.lock'), 'utf8')) as { pid: number; host: string };
        expect(lock.host).to.equal(hostname());
        let err: { code?: string } | undefined;
        try {
          takeDaemonLock(dir, 'connector', 'x').release();
        } catch (e) {
          err = e as { code: string };
        }
        expect(err?.code, `the live holder (pid ${lock.pid} in its own namespace, same host name) was judged dead and its lock taken over`).to.equal('ALREADY_RUNNING');
      } finally {
        await h.kill();
      }
    });

    it('without /proc (not mounted, or hidden) a live holder is not taken over', async function () {
      if (!canUnshare(['--mount', '--propagation', 'private'])) this.skip();
      const dir = tempDir('rv-lock-noproc-');
      const noProc = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'umount -l /proc && exec "$0" "$@"'];
      const h = await lockHolder(noProc, takeAndHold(dir));
      try {
        expect(processStart(h.child.pid!), 'the holder runs (seen from here)').to.not.equal('');
        const second = await runTo(noProc, `
          const { takeDaemonLock } = await import(${JSON.stringify(LOCK_JS)});
          try { takeDaemonLock(${JSON.stringify(dir)}, 'connector', 'x'); console.log('took it'); } catch (e) { console.log(e.code); }
        `);
        expect(second.trim(), 'a second daemon on a machine without /proc took the live daemon\'s lock').to.equal('ALREADY_RUNNING');
      } finally {
        await h.kill();
      }
    });
  });

  // ---- rotating file (log file, audit log) ---------------------------------------------------------

  describe('rotating file', () => {
    it('a file moved away by logrotate (no copytruncate) while lines are still queued for it loses none of them', async () => {
      const dir = tempDir('rv-rot-move-');
      const file = join(dir, 'audit.log');
      const f = createRotatingFile({ file, maxBytes: 100 * 1024 * 1024, maxFiles: 3 });
      const line = (i: number) => `{"n":${i},"pad":"${'x'.repeat(1000)}"}\n`;
      // A burst (a busy connector): every 64 KiB is handed to the stream at once.
      let n = 0;
      for (; n < 700; n++) f.write(line(n));
      renameSync(file, `${file}-20260105`); // logrotate's `create` rule, before its HUP
      for (let i = 0; i < 70; i++, n++) f.write(line(n));
      await f.close();
      await sleep(100);
      const seen = new Set<number>();
      for (const p of [file, `${file}-20260105`]) {
        if (!existsSync(p)) continue;
        for (const l of readFileSync(p, 'utf8').split('\n')) if (l) seen.add((JSON.parse(l) as { n: number }).n);
      }
      expect(seen.size, `${n - seen.size} of ${n} lines lost (the old stream was destroyed with writes still queued)`).to.equal(n);
    });

    it('after logrotate copytruncate (documented as working) the size restarts from the file: no rotation of a near-empty file', async () => {
      const dir = tempDir('rv-rot-trunc-');
      const file = join(dir, 'connector.log');
      const f = createRotatingFile({ file, maxBytes: 1024 * 1024, maxFiles: 5 });
      const line = `${'y'.repeat(1023)}\n`;
      for (let i = 0; i < 900; i++) f.write(line); // 900 KiB
      await sleep(200);
      truncateSync(file, 0); // logrotate copytruncate: copied to connector.log.1, then truncated in place
      await sleep(100);
      for (let i = 0; i < 200; i++) f.write(line); // 200 KiB more: the file is 200 KiB, far below 1 MiB
      await f.close();
      expect(existsSync(`${file}.1`), 'rotated after the truncation: the size counted the bytes logrotate had taken away').to.equal(false);
      expect(readFileSync(file, 'utf8').length, 'the 200 lines after the truncation are in the file').to.equal(200 * 1024);
    });
  });

  // ---- once-per-episode warnings -------------------------------------------------------------------

  describe('episodes', () => {
    let up: Upstream | undefined;
    afterEach(async () => {
      await up?.close();
      up = undefined;
    });

    it('a UEM whose response headers never fit through the tunnel is one episode, not a warning and a recovery per request', async () => {
      up = await startUpstream({ handler: (_req, res) => void res.writeHead(200, { 'x-big': 'z'.repeat(3000), 'content-length': '2' }).end('ok') });
      const target = Target.resolve({ id: 'ws1', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem }, timeoutMs: 5000, maxConcurrent: 4, allow: [] } as never, { where: 'ws1', origin: 'local' });
      const { logger, lines } = capturingLogger();
      const finished: number[] = [];
      const pair = relayOver(target, { pair: sessionPair({ cloud: { maxFrameSize: 1024 } }), logger, onFinished: (e) => finished.push(e.status) });
      try {
        const N = 20;
        for (let i = 0; i < N; i++) {
          const s = pair.cloud.openStream({ method: 'GET', path: '/x', target: 'ws1', headers: [] });
          s.on('error', () => {});
          s.resume();
          await waitFor(() => finished.length === i + 1, 5000, `request ${i}`);
        }
        expect(finished.every((st) => st === 502)).to.equal(true);
        const said = lines.filter((l) => l.message === 'upstream response refused' || l.message === 'upstream reachable again');
        expect(said.length, `${said.length} lines for ${N} identical failures: ${said.slice(0, 4).map((l) => `${String(l.level)} ${String(l.message)}`).join(' / ')}`).to.be.at.most(2);
      } finally {
        pair.cloud.close();
        target.close();
      }
    });

    it('a UEM failing two ways in turn (a dead node behind its balancer) is not said at every request', () => {
      const { logger, lines } = capturingLogger();
      let now = 1_000_000;
      const ep = new Episodes(logger, { ...systemClock, now: () => now });
      for (let i = 0; i < 100; i++) {
        now += 100;
        ep.failed('ws1', i % 2 ? 'upstream_timeout' : 'upstream_unreachable', 'upstream request failed', { target: 'ws1' });
      }
      // docs/runbook.md: said for the first failure "per target and error code"; the same failure
      // again within a minute is counted.
      expect(lines.length, `${lines.length} warnings for 100 failures within 10 s`).to.be.at.most(2);
    });
  });

  // ---- inventory: the app catalogue from counts ----------------------------------------------------

  describe('inventory app counts', () => {
    it('an app renamed on every device shows (and is found by) its current name, as the rows say', () => {
      const db = new InventoryDb(':memory:');
      db.applyDeviceSync('int_a', 'acme', { seen: [{ device: dev(1), groups: [] }, { device: dev(2), groups: [] }], deleteAfter: 3, allowDeletion: true, now: new Date().toISOString() });
      for (const d of ['d1', 'd2']) db.applyApps('int_a', d, [{ id: 'us.zoom.videomeetings', name: 'Zoom Workplace', version: '6.0' }]);
      // The vendor renames it back (or a localized name replaces it): every device now says "Zoom".
      for (const d of ['d1', 'd2']) db.applyApps('int_a', d, [{ id: 'us.zoom.videomeetings', name: 'Zoom', version: '6.1' }]);
      const rows = db.db.prepare('SELECT DISTINCT name FROM device_apps').all() as Array<{ name: string }>;
      expect(rows.map((r) => r.name)).to.deep.equal(['Zoom']);
      const page = db.catalogue('acme', { page: 0, pageSize: 10 });
      const found = db.catalogue('acme', { page: 0, pageSize: 10, search: 'Zoom' }).total;
      db.close();
      expect(page.apps[0]?.name, 'the catalogue shows a name no device has any more').to.equal('Zoom');
      expect(found).to.equal(1);
    });

    it('an app removed from the device that carried the largest name: the catalogue name follows the remaining rows', () => {
      const db = new InventoryDb(':memory:');
      db.applyDeviceSync('int_a', 'acme', { seen: [{ device: dev(1), groups: [] }, { device: dev(2), groups: [] }], deleteAfter: 1, allowDeletion: true, now: new Date().toISOString() });
      db.applyApps('int_a', 'd1', [{ id: 'com.x', name: 'X (beta)', version: '1' }]);
      db.applyApps('int_a', 'd2', [{ id: 'com.x', name: 'X', version: '1' }]);
      // d1 leaves the fleet (deleted by the next sync).
      db.applyDeviceSync('int_a', 'acme', { seen: [{ device: dev(2), groups: [] }], deleteAfter: 1, allowDeletion: true, now: new Date().toISOString() });
      const apps = db.catalogue('acme', { page: 0, pageSize: 10 }).apps;
      db.close();
      expect(apps).to.deep.equal([{ id: 'com.x', name: 'X', versions: ['1'], devices: 1 }]);
    });
  });

  // ---- pairing again -------------------------------------------------------------------------------

  describe('pairing again', () => {
    const clouds: CloudServer[] = [];
    after(async () => {
      for (const c of clouds) await c.shutdown();
    });

    it('re-pairing with another cloud says the old identity was not retired (runbook: "pair warns … another cloud")', async () => {
      const a = await startInprocCloud();
      const b = await startInprocCloud();
      clouds.push(a, b);
      const dir = tempDir('rv-repair-');
      writeFileSync(join(dir, 'connector.json'), JSON.stringify({ stateDir: './state', targets: [] }));
      const cfg = loadConnectorConfig(join(dir, 'connector.json'));
      const state = new ConnectorStateStore(cfg.stateDir);
      const first = await pairConnector(cfg, state, (await a.pairing.createToken({ tenant: 'acme' })).token);
      const again = await pairConnector(cfg, state, (await b.pairing.createToken({ tenant: 'acme' })).token, { force: true });
      const old = (await a.store.read()).connectors[first.connectorId]!;
      expect(old.revokedAt, 'cloud A still holds a valid record for the replaced identity').to.equal(undefined);
      // The CLI prints its warning from `replaced`; none is printed, so the admin believes nothing is left behind.
      expect(again.replaced, 'pair says nothing about the identity it left valid on the other cloud').to.deep.include({ connectorId: first.connectorId, revoked: false });
    });
  });
});
