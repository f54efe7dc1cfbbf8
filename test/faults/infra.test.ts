/**
 * Faults around the connector: its corporate proxy restarts (a real tinyproxy), and its state file is
 * truncated by a crash, unreadable, or cannot be written because the disk is full (a tiny tmpfs
 * mounted by the test). Always under relay load. The connector must say clearly what is wrong, keep
 * its previous state, and never silently fall back to "unpaired".
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, connectorEntry, sleep, tempDir, until } from '../helpers/procs.js';
import { startTinyproxy, tinyproxyAvailable, type Tinyproxy } from '../helpers/tinyproxy.js';
import { startLab, type Lab } from './lab.js';

describe('faults: the corporate proxy restarts (real tinyproxy, under load)', function () {
  this.timeout(90_000);
  let lab: Lab | undefined;
  let tp: Tinyproxy | undefined;

  before(async function () {
    this.timeout(60_000);
    if (!tinyproxyAvailable()) {
      process.stdout.write('      (skipped: /usr/bin/tinyproxy is not installed; CI installs it)\n');
      this.skip();
    }
    tp = await startTinyproxy();
    lab = await startLab({
      // Loopback is never proxied, so the cloud is addressed by its IPv4-mapped IPv6 form (still
      // 127.0.0.1): the connector sends it through the proxy, which connects to 127.0.0.1.
      cloudUrl: (cloud) => `http://[::ffff:127.0.0.1]:${cloud.port}`,
      files: { 'proxy.pass': tp.password },
      connector: { proxy: { url: tp.url, username: tp.user, passwordFile: 'proxy.pass' } },
    });
  });
  after(async () => {
    await lab?.stop();
    await tp?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && lab) process.stderr.write(`${lab.logs()}\n--- tinyproxy ---\n${tp?.log().slice(-2000) ?? ''}\n`);
  });

  it('kill -9 and restart of the proxy on the same port: the connector reconnects through it', async () => {
    const l = lab!;
    const p = tp!;
    expect(p.log(), 'the tunnel goes through the proxy').to.match(new RegExp(`CONNECT.*:${l.cloud.port}`));
    await l.scenario('corporate proxy kill -9 + restart', {
      allowed: ['connector_lost', 'connector_error', 'no_connector'],
      fault: async () => {
        const c0 = l.conn.proc.logs.length;
        await p.stop();
        await until(() => l.conn.proc.logs.slice(c0).some((x) => x.message === 'tunnel lost'), 10_000, 'the connector to lose the tunnel');
        await sleep(2000);
        await until(() => l.conn.proc.logs.slice(c0).some((x) => x.message === 'tunnel connection failed' && x.code === 'TUNNEL_DIAL_FAILED'), 15_000, 'a failed dial while the proxy is down');
        await p.start();
        await l.waitConnected(30_000);
      },
    });
  });
});

describe('faults: the connector state file (under load)', function () {
  this.timeout(120_000);
  let lab: Lab;
  let dir: string;
  let stateDir: string;
  let mounted = false;
  let mountReason = '';

  before(async function () {
    this.timeout(60_000);
    dir = tempDir('uemlink-fault-state-');
    stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    // A 1 MiB tmpfs as the state directory, to fill it up later (needs root and mount rights).
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', stateDir], { stdio: 'pipe' });
      mounted = true;
    } catch (e) {
      mountReason = ((e as { stderr?: Buffer }).stderr?.toString() || (e as Error).message).trim();
    }
    lab = await startLab({
      connectorDir: dir,
      connector: { stateDir },
    });
  });
  after(async () => {
    await lab?.stop();
    if (mounted) {
      try {
        execFileSync('umount', ['-l', stateDir], { stdio: 'pipe' });
      } catch {
        /* best effort */
      }
    }
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && lab) process.stderr.write(lab.logs());
  });

  const stateFile = (): string => join(stateDir, 'state.json');
  const identityOf = (text: string): { connectorId: string; keyFile: string } => (JSON.parse(text) as { identity: { connectorId: string; keyFile: string } }).identity;

  /** Waits out a renewal in progress, so the state is at rest before a crash is simulated. */
  async function settled(): Promise<void> {
    const count = (re: RegExp): number => lab.conn.proc.logs.filter((l) => re.test(l.message)).length;
    await until(() => count(/^renewing the connector certificate$/) <= count(/^connector certificate renewed$|^certificate renewal failed/), 15_000, 'the renewal to finish');
  }

  async function crashAndRestartWith(name: string, damage: () => void, restore: () => void, expectStderr: RegExp): Promise<void> {
    await lab.scenario(name, {
      allowed: ['connector_lost', 'connector_error', 'no_connector'],
      fault: async () => {
        await settled();
        lab.conn.proc.kill('SIGKILL');
        await lab.conn.proc.wait();
        const good = readFileSync(stateFile());
        const { keyFile, connectorId } = identityOf(good.toString());
        damage();
        const damaged = safeRead(stateFile()); // undefined when it is not a readable file
        // The connector refuses to start, says why and where, and changes nothing.
        const r = await cli(['connector', 'run', '--config', lab.conn.configFile], { timeoutMs: 20_000 });
        expect(r.code, r.stderr).to.equal(1);
        expect(r.stderr).to.contain(stateFile()).and.match(expectStderr);
        expect(r.stdout, 'it did not start as an unpaired connector').to.not.contain('not paired');
        if (damaged !== undefined) expect(safeRead(stateFile()), 'the damaged file is left as it was').to.deep.equal(damaged);
        expect(existsSync(join(stateDir, keyFile)), 'the key is kept').to.equal(true);
        // The admin restores the file: the same identity connects again.
        restore();
        expect(readFileSync(stateFile())).to.deep.equal(good);
        await lab.conn.start();
        await lab.waitConnected();
        expect((await connectorEntry(lab.cloud, connectorId))?.connected).to.equal(true);
      },
    });
  }

  function safeRead(p: string): Buffer | undefined {
    try {
      return readFileSync(p);
    } catch {
      return undefined;
    }
  }

  it('truncated by a crash in mid-write (an older, non-atomic writer): a clear STATE_CORRUPT, file untouched, never unpaired', async () => {
    let good: Buffer;
    await crashAndRestartWith(
      'state file truncated',
      () => {
        good = readFileSync(stateFile());
        // What an older version writing in place would leave after a crash: the first part only,
        // in the old compact format.
        const compact = JSON.stringify(JSON.parse(good.toString()));
        writeFileSync(stateFile(), compact.slice(0, Math.floor(compact.length / 3)), { mode: 0o600 });
      },
      () => writeFileSync(stateFile(), good, { mode: 0o600 }),
      /corrupt/,
    );
  });

  it('unreadable (the path is a directory): a clear STATE_UNREADABLE, nothing changed, never unpaired', async () => {
    const aside = join(stateDir, 'state.json.aside');
    await crashAndRestartWith(
      'state file unreadable',
      () => {
        renameSync(stateFile(), aside);
        mkdirSync(stateFile());
      },
      () => {
        rmdirSync(stateFile());
        renameSync(aside, stateFile());
      },
      /cannot read connector state/,
    );
  });

  it('disk full when writing: a clear STATE_WRITE_FAILED, the previous state kept, traffic goes on', async function () {
    if (!mounted) {
      process.stdout.write(`      (skipped: cannot mount a tmpfs for the state directory: ${mountReason})\n`);
      this.skip();
    }
    const filler = join(stateDir, 'filler');
    const keys = (): string[] => readdirSync(stateDir).filter((n) => n.endsWith('.key')).sort();
    const r = await lab.scenario('state disk full on write', {
      allowed: ['connector_lost', 'connector_error', 'no_connector'],
      fault: async () => {
        const before = readFileSync(stateFile());
        const keysBefore = keys();
        // Fill the file system up.
        const chunk = Buffer.alloc(16 * 1024, 1);
        try {
          for (let i = 0; i < 1000; i++) writeFileSync(filler, chunk, { flag: 'a' });
        } catch (e) {
          expect((e as NodeJS.ErrnoException).code).to.equal('ENOSPC');
        }

        // 1. Pairing again on the full disk fails clearly; the old identity stays in place.
        const token = (await lab.cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
        const p = await lab.conn.pair(token, ['--force']);
        expect(p.code, p.stderr).to.equal(1);
        expect(p.stderr).to.contain('disk full').and.contain('nothing was changed, and the pairing token was not used');
        expect(readFileSync(stateFile()), 'state.json unchanged').to.deep.equal(before);
        expect(keys(), 'key files unchanged').to.deep.equal(keysBefore);

        // 2. A certificate renewal (forced at the next start) cannot store its result: logged as
        //    STATE_WRITE_FAILED, the previous identity kept, the tunnel and traffic go on.
        const cfg = JSON.parse(readFileSync(lab.conn.configFile, 'utf8')) as Record<string, unknown>;
        writeFileSync(lab.conn.configFile, JSON.stringify({ ...cfg, certificateRenewDays: 3650 }, null, 2));
        lab.conn.proc.kill('SIGKILL');
        await lab.conn.proc.wait();
        await lab.conn.start();
        await lab.waitConnected();
        const failed = await lab.conn.proc.waitLog((l) => l.message === 'certificate renewal failed; retrying', 20_000, 'the failed renewal');
        expect(JSON.stringify(failed), JSON.stringify(failed)).to.contain('STATE_WRITE_FAILED').and.contain('disk full').and.contain('previous version was kept');
        expect(readFileSync(stateFile()), 'state.json unchanged').to.deep.equal(before);
        expect(keys(), 'key files unchanged').to.deep.equal(keysBefore);
        expect(readdirSync(stateDir).filter((n) => n.endsWith('.tmp')), 'no temp file left behind').to.deep.equal([]);
        expect(lab.conn.proc.hasLog((l) => /not paired/.test(l.message))).to.equal(false);
        await lab.waitHealthy();
        expect(lab.conn.proc.exitCode, 'the connector keeps running').to.equal(undefined);

        // 3. Space comes back; a restart comes up with the same identity (the cloud still accepts
        //    the previous certificate: protocol.md §9.1, grace).
        rmSync(filler);
        writeFileSync(lab.conn.configFile, JSON.stringify(cfg, null, 2));
        lab.conn.proc.kill('SIGKILL');
        await lab.conn.proc.wait();
        await lab.conn.start();
        await lab.waitConnected();
      },
    });
    expect(identityOf(readFileSync(stateFile()).toString()).connectorId).to.equal(lab.connectorId);
    r.t.notes.push('re-pairing and a certificate renewal on the full disk: STATE_WRITE_FAILED (disk full), state.json and keys kept, traffic continued');
  });
});
