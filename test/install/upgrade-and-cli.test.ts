/**
 * Installation, packaging, service units and upgrades: what a review confirmed, kept as regression
 * tests. Only temp directories and loopback addresses are used; the install scripts run into a
 * temporary root (DESTDIR) as install.test.ts does.
 */
import { expect } from 'chai';
import { createHash, createPrivateKey, generateKeyPairSync, hkdfSync } from 'node:crypto';
import { chmodSync, cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../../src/common/clock.js';
import { silentLogger } from '../../src/common/log.js';
import { seal } from '../../src/common/sealed.js';
import { ManagedTargets } from '../../src/connector/managed-targets.js';
import { CloudTargetSchema } from '../../src/connector/targets/schema.js';
import { tempDir } from '../helpers/procs.js';
import { INSTALL, MAIN, ROOT, describeRun, isRoot, makeRoot, run, skipBecause, unitSettings, which } from '../helpers/install.js';

// -------------------------------------------------------------------------------------------------

describe('upgrade of a connector state dir written by an older version', function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a cloud-managed target accepted and stored by the version before the managed-targets.key file does not stop the connector from starting', async () => {
    // What that version (git 7f5b933^) wrote: managed-targets.json, each definition sealed with a key
    // derived from the connector's private key (keyFromPrivateKey(pem, 'managed-targets-v1')), no
    // managed-targets.key, and records without `contacts`/`decidedBy` (added later, optional).
    const stateDir = tempDir('uemlink-review-oldstate-');
    dirs.push(stateDir);
    chmodSync(stateDir, 0o700);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
    const oldKey = Buffer.from(hkdfSync('sha256', der, Buffer.from('uemlink'), Buffer.from('managed-targets-v1'), 32));
    const def = { id: 'mt1', baseUrl: 'https://127.0.0.1:9/API', auth: { type: 'none' } };
    const at = new Date().toISOString();
    const hash = createHash('sha256').update(JSON.stringify(CloudTargetSchema.parse(def))).digest('hex');
    writeFileSync(
      join(stateDir, 'managed-targets.json'),
      `${JSON.stringify(
        {
          version: 1,
          targets: [{ id: 'mt1', host: '127.0.0.1', baseUrl: def.baseUrl, state: 'accepted', offeredAt: at, decidedAt: at, decidedBy: 'admin', hash, sealed: seal(oldKey, JSON.stringify(def), 'mt1') },
            // Accepted by the policy of the day (no decidedBy): the start judged it against the policy, opening it.
            { id: 'mt2', host: '127.0.0.1', baseUrl: def.baseUrl, state: 'accepted', offeredAt: at, decidedAt: at, hash: 'x'.repeat(64), sealed: seal(oldKey, JSON.stringify({ ...def, id: 'mt2' }), 'mt2') },
          ],
        },
        null,
        2,
      )}\n`,
      { mode: 0o600 },
    );

    // ConnectorDaemon.startTunnel (src/connector/daemon.ts) awaits exactly this, with no catch: a
    // rejection here is `connector run` exiting 1 at every start (systemd gives up after 5).
    // Approved by a local admin (the policy allows nothing): the decision must survive the upgrade.
    const managed = new ManagedTargets({ stateDir, allowedHosts: [], localIds: new Set(), logger: silentLogger(), clock: systemClock, onChange: () => {} });
    let err: unknown;
    await managed.load().catch((e: unknown) => {
      err = e;
    });
    expect(err === undefined ? 'started' : `load() rejected: ${(err as Error).message}`).to.equal('started');
    expect(managed.targets().map((t) => t.id), 'not used while it cannot be opened').to.deep.equal([]);
    // The cloud offers it again at the next connection: sealed again, the admin's decision kept.
    expect(await managed.offer(def)).to.deep.equal({ id: 'mt1', state: 'accepted' });
    expect(managed.targets().map((t) => t.id)).to.deep.equal(['mt1']);
    const again = new ManagedTargets({ stateDir, allowedHosts: [], localIds: new Set(), logger: silentLogger(), clock: systemClock, onChange: () => {} });
    await again.load();
    expect(again.targets().map((t) => t.id), 'usable after a restart').to.deep.equal(['mt1']);
    for (const t of [...managed.targets(), ...again.targets()]) t.close();
  });
});

describe('install.sh smoke test and native modules', function () {
  this.timeout(180_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('install.sh --cloud refuses a checkout whose better-sqlite3 cannot be loaded by the node it installs for', function () {
    if (!isRoot) skipBecause(this, 'not root: install.sh under DESTDIR needs root');
    if (!which('useradd')) skipBecause(this, 'useradd missing');
    // A checkout whose native module does not load with this node (as one built by another node
    // version: `npm ci` under nvm's node 22, then --node /usr/bin/node): simulated by a broken .node.
    const src = tempDir('uemlink-review-src-');
    dirs.push(src);
    for (const p of ['package.json', 'package-lock.json', 'systemd', 'config', 'node_modules', 'dist/src']) {
      cpSync(join(ROOT, p), join(src, p), { recursive: true, verbatimSymlinks: true });
    }
    const addon = join(src, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
    expect(existsSync(addon), addon).to.equal(true);
    writeFileSync(addon, 'not an ELF object: built for another NODE_MODULE_VERSION\n');

    const destdir = makeRoot();
    dirs.push(destdir);
    const r = run('bash', [INSTALL, '--cloud', '--source', src], { env: { DESTDIR: destdir }, timeoutMs: 150_000 });
    // What the installed relay does at its first start: open dataDir/inventory.sqlite.
    const lib = join(destdir, 'opt/uemlink/lib/uemlink');
    const probe = existsSync(lib) ? run(process.execPath, ['-e', "new (require('better-sqlite3'))(':memory:').close()"], { cwd: lib }) : undefined;
    const installed = probe ? `installed program cannot open a database: ${probe.code !== 0} (${probe.stderr.split('\n').find((l) => /Error/.test(l)) ?? ''})` : 'nothing installed';
    expect(r.code, `${installed}\n${describeRun(r)}`).to.not.equal(0);
  });
});

describe('CLI exit codes and messages on bad input', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const cloudConfig = (): { file: string; dataDir: string } => {
    const d = tempDir('uemlink-review-cloudcfg-');
    dirs.push(d);
    const dataDir = join(d, 'data');
    const file = join(d, 'cloud.json');
    writeFileSync(file, JSON.stringify({ listen: '127.0.0.1:0', publicUrl: 'https://relay.example.com', dataDir, adminToken: 'review-admin-token-0123456789' }));
    return { file, dataDir };
  };

  it('cloud token create: an out-of-range --ttl or a bad --tenant/--group is a usage error (exit 2) naming the flag', () => {
    const { file } = cloudConfig();
    const cases: Array<[string[], string]> = [
      [['--tenant', 'acme', '--ttl', '0'], '--ttl'],
      [['--tenant', 'acme', '--ttl', '99999999'], '--ttl'],
      [['--tenant', 'ACME'], '--tenant'],
      [['--tenant', 'acme', '--group', 'bad group'], '--group'],
    ];
    const got = cases.map(([args, flag]) => {
      const r = run(process.execPath, [MAIN, 'cloud', 'token', 'create', '--config', file, ...args]);
      return `${args.join(' ')} -> exit ${r.code}, names ${flag}: ${r.stderr.includes(flag)} (${r.stderr.trim()})`;
    });
    const want = cases.map(([args, flag]) => `${args.join(' ')} -> exit 2, names ${flag}: true`);
    expect(got.map((g) => g.replace(/ \(.*\)$/s, '')), got.join('\n')).to.deep.equal(want);
  });

  it('cloud ca status is read-only: it does not create a CA (or the data dir) where there is none', () => {
    const { file, dataDir } = cloudConfig();
    const r = run(process.execPath, [MAIN, 'cloud', 'ca', 'status', '--config', file]);
    const written = existsSync(dataDir) ? readdirSync(dataDir) : [];
    expect(written, `${describeRun(r)}\n(a status command generated a new connector CA in ${dataDir})`).to.deep.equal([]);
  });
});

describe('docs vs the systemd unit', () => {
  it("docs/config.md's connector example keeps stateDir inside what the unit lets the service write", () => {
    const unit = unitSettings(readFileSync(join(ROOT, 'systemd/uemlink-connector.service'), 'utf8'));
    expect(unit.get('ProtectSystem')).to.equal('strict');
    const writable = [
      ...(unit.get('StateDirectory') ?? '').split(/\s+/).filter(Boolean).map((d) => `/var/lib/${d}`),
      ...(unit.get('LogsDirectory') ?? '').split(/\s+/).filter(Boolean).map((d) => `/var/log/${d}`),
      ...(unit.get('ReadWritePaths') ?? '').split(/\s+/).filter(Boolean),
    ];
    const doc = readFileSync(join(ROOT, 'docs/config.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Connector'));
    const m = /```json\n([\s\S]*?)```/.exec(section);
    expect(m, 'a json example in the connector section').to.not.equal(null);
    const example = JSON.parse(m![1]!) as { stateDir: string };
    const inside = writable.some((w) => example.stateDir === w || example.stateDir.startsWith(`${w}/`));
    expect(inside, `stateDir ${example.stateDir} is outside the unit's writable paths ${writable.join(', ')} (ProtectSystem=strict: read-only)`).to.equal(true);
  });
});

describe('the runbook after install.sh', function () {
  this.timeout(120_000);
  let destdir: string | undefined;
  after(() => {
    if (destdir) rmSync(destdir, { recursive: true, force: true });
  });

  it('the documented `uemlink connector status/diagnose --config /etc/uemlink/connector.json` lines work with the modes install.sh gives the config', function () {
    if (!isRoot) skipBecause(this, 'not root: install.sh under DESTDIR needs root');
    const runuser = which('runuser');
    if (!runuser || !which('useradd')) skipBecause(this, 'runuser/useradd missing');
    destdir = makeRoot();
    const i = run('bash', [INSTALL], { env: { DESTDIR: destdir }, timeoutMs: 100_000 });
    expect(i.code, describeRun(i)).to.equal(0);
    // What an admin without sudo gets from the installed config (here: nobody).
    const conf = join(destdir, 'etc/uemlink/connector.json');
    const r = run(runuser, ['-u', 'nobody', '--', process.execPath, MAIN, 'connector', 'status', '--config', conf], { cwd: '/' });
    const unprivilegedCanRead = !(r.code === 78 && /permission denied/.test(r.stderr));
    if (unprivilegedCanRead) return;
    // Then every documented use of the installed config must run as root or the service user.
    const offenders: string[] = [];
    for (const f of ['README.md', 'docs/runbook.md']) {
      readFileSync(join(ROOT, f), 'utf8')
        .split('\n')
        .forEach((line, n) => {
          const t = line.trim();
          if (/uemlink connector (status|diagnose|support-bundle)\b.*--config \/etc\/uemlink\//.test(t) && !/^(sudo|runuser)\b/.test(t)) offenders.push(`${f}:${n + 1}: ${t}`);
        });
    }
    expect(offenders, `as a non-root user: ${r.stderr.trim()} (exit ${r.code})`).to.deep.equal([]);
  });
});
