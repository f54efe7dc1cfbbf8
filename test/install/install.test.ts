/**
 * The install story: scripts/install.sh and scripts/uninstall.sh run for real into a temporary root
 * (DESTDIR: users go into its own etc/passwd and etc/group, ownership uses the ids found there), the
 * systemd units checked by systemd-analyze (hardening score, and `verify` of the installed units
 * against the installed wrapper), and the Dockerfile checked against the repository.
 *
 * Needs root for the install tests (useradd --prefix and chown); CI runs as root. shellcheck and
 * systemd-analyze come from .ci/run's Debian packages; a test that lacks one says so and is skipped.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants as fsc,
  copyFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, posix } from 'node:path';
import { NODE_FLAGS } from '../../src/common/v8-tuning.js';
import { tempDir } from '../helpers/procs.js';
import { INSTALL, ROOT, UNINSTALL, describeRun, isRoot, makeRoot, run, skipBecause, unitSettings, which, type Run } from '../helpers/install.js';

/** The repository (this file runs from dist/test/install/). */
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

function mode(p: string): number {
  return lstatSync(p).mode & 0o7777;
}

/** Name -> numeric id from a passwd or group file. */
function ids(file: string): Map<string, { id: number; fields: string[] }> {
  const m = new Map<string, { id: number; fields: string[] }>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0]) m.set(f[0], { id: Number(f[2]), fields: f });
  }
  return m;
}

/** Everything under `dir` except `skip` (relative paths): type, mode, owner and content. */
function snapshot(dir: string, skip: string[] = []): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip.includes(r)) continue;
      const p = join(dir, r);
      const s = lstatSync(p);
      const what = s.isSymbolicLink()
        ? `-> ${readlinkSync(p)}`
        : s.isFile()
          ? createHash('sha256').update(readFileSync(p)).digest('hex')
          : s.isDirectory()
            ? 'dir'
            : 'other';
      out.push(`${r} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid} ${what}`);
      if (s.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

// -------------------------------------------------------------------------------------------------

describe('install scripts: shellcheck', function () {
  this.timeout(30_000);

  it('scripts/install.sh and scripts/uninstall.sh pass shellcheck with no output', function () {
    const sc = which('shellcheck');
    if (!sc) skipBecause(this, 'shellcheck is not installed (Debian package shellcheck; .ci/run installs it)');
    // --norc: a developer's ~/.shellcheckrc must not change the verdict.
    const r = run(sc, ['--norc', INSTALL, UNINSTALL]);
    expect(r.stdout + r.stderr, describeRun(r)).to.equal('');
    expect(r.code).to.equal(0);
  });

  it('both scripts use set -euo pipefail', () => {
    for (const f of [INSTALL, UNINSTALL]) {
      const text = readFileSync(f, 'utf8');
      expect(text.startsWith('#!/usr/bin/env bash\n'), f).to.equal(true);
      expect(text, f).to.match(/^set -euo pipefail$/m);
    }
  });
});

describe('install.sh: arguments and prerequisites', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('--help prints the usage and exits 0', () => {
    for (const script of [INSTALL, UNINSTALL]) {
      const r = run('bash', [script, '--help']);
      expect(r.code, describeRun(r)).to.equal(0);
      expect(r.stdout).to.match(/^Usage: /);
      expect(r.stdout).to.include('--cloud');
      expect(r.stderr).to.equal('');
    }
  });

  it('an unknown argument is a usage error (exit 2, on stderr)', () => {
    for (const script of [INSTALL, UNINSTALL]) {
      const r = run('bash', [script, '--frobnicate']);
      expect(r.code, describeRun(r)).to.equal(2);
      expect(r.stderr).to.include('unknown argument: --frobnicate');
      expect(r.stdout).to.equal('');
    }
  });

  it('refuses to run without root', function () {
    let r: Run;
    if (isRoot) {
      const runuser = which('runuser');
      if (!runuser) skipBecause(this, 'running as root and runuser (util-linux) is missing, so a non-root run cannot be tried');
      // A copy nobody can read, run from there: the checkout may sit under a directory nobody cannot enter.
      const d = tempDir('uemlink-noroot-');
      dirs.push(d);
      chmodSync(d, 0o755);
      copyFileSync(INSTALL, join(d, 'install.sh'));
      chmodSync(join(d, 'install.sh'), 0o755);
      r = run(runuser, ['-u', 'nobody', '--', 'bash', join(d, 'install.sh')], { cwd: d });
    } else {
      r = run('bash', [INSTALL]);
    }
    expect(r.code, describeRun(r)).to.equal(1);
    expect(r.stderr).to.match(/must run as root/);
  });

  describe('as root', function () {
    let destdir: string;
    before(function () {
      if (!isRoot) skipBecause(this, 'not root: the checks after the root check cannot be reached');
      destdir = makeRoot();
      dirs.push(destdir);
    });

    const nothingInstalled = (): void => {
      expect(readdirSync(destdir).sort()).to.deep.equal(['etc']);
      expect(readdirSync(join(destdir, 'etc')).sort()).to.deep.equal(['group', 'passwd']);
    };

    it('says so when the checkout is not built, and changes nothing', () => {
      const empty = tempDir('uemlink-nobuild-');
      dirs.push(empty);
      writeFileSync(join(empty, 'package.json'), '{}');
      writeFileSync(join(empty, 'package-lock.json'), '{}');
      const r = run('bash', [INSTALL, '--source', empty], { env: { DESTDIR: destdir } });
      expect(r.code, describeRun(r)).to.equal(1);
      expect(r.stderr).to.include('dist/src/cli/main.js not found');
      expect(r.stderr).to.include('npm ci');
      nothingInstalled();
    });

    it('says so when node is missing or older than 20.19, and changes nothing', () => {
      const r1 = run('bash', [INSTALL, '--node', '/nonexistent/node'], { env: { DESTDIR: destdir } });
      expect(r1.code, describeRun(r1)).to.equal(1);
      expect(r1.stderr).to.include('/nonexistent/node is missing or not executable');

      const d = tempDir('uemlink-oldnode-');
      dirs.push(d);
      const fake = join(d, 'node');
      writeFileSync(fake, '#!/bin/sh\necho 18.20.4\n', { mode: 0o755 });
      const r2 = run('bash', [INSTALL, '--node', fake], { env: { DESTDIR: destdir } });
      expect(r2.code, describeRun(r2)).to.equal(1);
      expect(r2.stderr).to.include('is Node.js 18.20.4; uemlink needs >= 20.19');
      nothingInstalled();
    });

    it('says so when DESTDIR has no etc/passwd to add the user to', () => {
      const bare = tempDir('uemlink-bare-');
      dirs.push(bare);
      const r = run('bash', [INSTALL], { env: { DESTDIR: bare } });
      expect(r.code, describeRun(r)).to.equal(1);
      expect(r.stderr).to.include(`${bare}/etc/passwd does not exist`);
      expect(readdirSync(bare)).to.deep.equal([]);
    });

    it('refuses a relative --prefix', () => {
      const r = run('bash', [INSTALL, '--prefix', 'opt/uemlink'], { env: { DESTDIR: destdir } });
      expect(r.code, describeRun(r)).to.equal(2);
      expect(r.stderr).to.include('--prefix must be an absolute path');
      nothingInstalled();
    });
  });
});

describe('install.sh and uninstall.sh into a temporary root (DESTDIR)', function () {
  // Each install copies node_modules and prunes it: a few seconds.
  this.timeout(120_000);

  let destdir: string;
  const hostPasswd = readFileSync('/etc/passwd', 'utf8');
  const hostGroup = readFileSync('/etc/group', 'utf8');
  const lib = (): string => join(destdir, 'opt/uemlink/lib/uemlink');
  const users = (): Map<string, { id: number; fields: string[] }> => ids(join(destdir, 'etc/passwd'));
  const groups = (): Map<string, { id: number; fields: string[] }> => ids(join(destdir, 'etc/group'));

  const install = (args: string[] = [], env: Record<string, string> = {}): Run => {
    const r = run('bash', [INSTALL, ...args], { env: { DESTDIR: destdir, ...env } });
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.stderr, describeRun(r)).to.equal('');
    return r;
  };
  const uninstall = (args: string[] = []): Run => {
    const r = run('bash', [UNINSTALL, ...args], { env: { DESTDIR: destdir } });
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.stderr, describeRun(r)).to.equal('');
    return r;
  };

  before(function () {
    if (!isRoot) skipBecause(this, 'not root: useradd --prefix and chown need root (CI runs as root)');
    if (!which('useradd') || !which('groupadd')) skipBecause(this, 'useradd/groupadd missing (Debian package passwd)');
    if (!existsSync(join(ROOT, 'node_modules')) || !existsSync(join(ROOT, 'dist/src/cli/main.js'))) {
      throw new Error('run `npm ci` (which builds) before this test: install.sh installs dist/src and node_modules');
    }
    destdir = makeRoot();
  });
  after(() => {
    if (destdir) rmSync(destdir, { recursive: true, force: true });
  });

  it('installs the connector and prints how to pair and start it', () => {
    const r = install();
    expect(r.stdout).to.include('uemlink connector pair --config /etc/uemlink/connector.json --token-file FILE');
    expect(r.stdout).to.include('systemctl start uemlink-connector');
    expect(r.stdout).to.include('created   /etc/uemlink/connector.json');
    // Under DESTDIR nothing talks to the host's systemd.
    expect(r.stdout).to.include('systemctl not run');
  });

  it('adds the user and group to DESTDIR/etc/passwd and group only: no login shell, no home', () => {
    const u = users().get('uemlink');
    const g = groups().get('uemlink');
    expect(u, 'uemlink in DESTDIR/etc/passwd').to.not.equal(undefined);
    expect(g, 'uemlink in DESTDIR/etc/group').to.not.equal(undefined);
    expect(u!.fields[3]).to.equal(String(g!.id));
    expect(u!.fields[5]).to.equal('/nonexistent');
    expect(u!.fields[6]).to.match(/\/(nologin|false)$/);
    // A system account.
    expect(u!.id).to.be.greaterThan(0).and.lessThan(1000);
    // The host's user database is untouched.
    expect(readFileSync('/etc/passwd', 'utf8')).to.equal(hostPasswd);
    expect(readFileSync('/etc/group', 'utf8')).to.equal(hostGroup);
  });

  it('installs a wrapper that runs the installed program with an absolute node path', () => {
    const wrapper = join(destdir, 'opt/uemlink/bin/uemlink');
    const s = statSync(wrapper);
    expect(s.uid).to.equal(0);
    expect(s.mode & 0o777).to.equal(0o755);
    const text = readFileSync(wrapper, 'utf8');
    expect(text.startsWith('#!/bin/sh\n')).to.equal(true);
    // It points at the final location (/opt/uemlink), not into DESTDIR.
    // With the node flags V8 reads only at start (src/common/v8-tuning.ts).
    const flags = NODE_FLAGS.map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join(' ');
    const m = new RegExp(`^exec '(/[^']+)' ${flags} '/opt/uemlink/lib/uemlink/dist/src/cli/main\\.js' "\\$@"$`, 'm').exec(text);
    expect(m, text).to.not.equal(null);
    accessSync(m![1]!, fsc.X_OK);
    expect(text).to.not.include(destdir);

    // The program at its installed place runs with production dependencies only...
    const direct = run(m![1]!, [join(lib(), 'dist/src/cli/main.js'), '--version']);
    expect(direct.code, describeRun(direct)).to.equal(0);
    expect(direct.stdout.trim()).to.equal(PKG.version);
    // ...and so does the wrapper itself, once its /opt/uemlink is moved to where DESTDIR put it.
    const moved = join(destdir, 'wrapper-in-destdir');
    writeFileSync(moved, text.replace("'/opt/uemlink/", `'${destdir}/opt/uemlink/`), { mode: 0o755 });
    const viaWrapper = run(moved, ['--version']);
    rmSync(moved);
    expect(viaWrapper.code, describeRun(viaWrapper)).to.equal(0);
    expect(viaWrapper.stdout.trim()).to.equal(PKG.version);
  });

  it('installs production dependencies only, and dist/src only, all owned by root and read-only for others', () => {
    const nm = join(lib(), 'node_modules');
    for (const dev of Object.keys(PKG.devDependencies)) expect(existsSync(join(nm, dev)), `devDependency ${dev}`).to.equal(false);
    for (const dep of Object.keys(PKG.dependencies)) expect(existsSync(join(nm, dep)), `dependency ${dep}`).to.equal(true);
    // Nothing the lock file marks as dev-only, at any depth.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([k, v]) => k && v.dev === true);
    expect(devOnly.length).to.be.greaterThan(0);
    for (const [path] of devOnly) expect(existsSync(join(lib(), path)), path).to.equal(false);
    for (const must of ['typescript', 'mocha', 'chai', 'sinon', 'playwright-core']) expect(existsSync(join(nm, must)), must).to.equal(false);

    expect(readdirSync(lib()).sort()).to.deep.equal(['dist', 'node_modules', 'package-lock.json', 'package.json']);
    expect(readdirSync(join(lib(), 'dist'))).to.deep.equal(['src']);
    // No staging copies left next to it.
    expect(readdirSync(join(destdir, 'opt/uemlink/lib'))).to.deep.equal(['uemlink']);

    const bad: string[] = [];
    const walk = (p: string): void => {
      const s = lstatSync(p);
      if (s.uid !== 0 || s.gid !== 0 || (!s.isSymbolicLink() && (s.mode & 0o022) !== 0)) bad.push(`${p} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}`);
      if (s.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
    };
    walk(join(destdir, 'opt/uemlink'));
    expect(bad.slice(0, 10), 'program files not root-owned or writable by others').to.deep.equal([]);
  });

  it('creates the directories and the config with the owners and modes the unit expects', () => {
    const uid = users().get('uemlink')!.id;
    const gid = groups().get('uemlink')!.id;
    const expected: Array<[string, number, number, number]> = [
      ['etc/uemlink', 0o750, 0, gid],
      ['etc/uemlink/connector.json', 0o640, 0, gid],
      ['var/lib/uemlink', 0o700, uid, gid],
      ['var/log/uemlink', 0o750, uid, gid],
      ['etc/systemd/system/uemlink-connector.service', 0o644, 0, 0],
      ['opt/uemlink/bin/uemlink', 0o755, 0, 0],
    ];
    for (const [rel, m, u, g] of expected) {
      const s = lstatSync(join(destdir, rel));
      expect(`${rel} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}`).to.equal(`${rel} ${m.toString(8)} ${u}:${g}`);
    }
    expect(readFileSync(join(destdir, 'etc/uemlink/connector.json'), 'utf8')).to.equal(readFileSync(join(ROOT, 'config/connector.example.json'), 'utf8'));
    expect(readFileSync(join(destdir, 'etc/systemd/system/uemlink-connector.service'), 'utf8')).to.equal(
      readFileSync(join(ROOT, 'systemd/uemlink-connector.service'), 'utf8'),
    );
  });

  it('creates exactly the directories, user and modes the unit names', () => {
    for (const [unit, user] of [['uemlink-connector.service', 'uemlink'], ['uemlink-cloud.service', 'uemlink-cloud']] as const) {
      const s = unitSettings(readFileSync(join(ROOT, 'systemd', unit), 'utf8'));
      expect(s.get('User'), unit).to.equal(user);
      expect(s.get('Group'), unit).to.equal(user);
      expect(s.get('StateDirectory'), unit).to.equal(user);
      expect(s.get('ConfigurationDirectory'), unit).to.equal(user);
      expect(s.get('LogsDirectory'), unit).to.equal(user);
      expect(s.get('StateDirectoryMode'), unit).to.equal('0700');
      expect(s.get('ConfigurationDirectoryMode'), unit).to.equal('0750');
      expect(s.get('LogsDirectoryMode'), unit).to.equal('0750');
      expect(s.get('ExecStart'), unit).to.match(/^\/opt\/uemlink\/bin\/uemlink /);
    }
    const s = unitSettings(readFileSync(join(ROOT, 'systemd/uemlink-connector.service'), 'utf8'));
    expect(mode(join(destdir, 'var/lib', s.get('StateDirectory')!))).to.equal(Number.parseInt(s.get('StateDirectoryMode')!, 8));
    expect(mode(join(destdir, 'etc', s.get('ConfigurationDirectory')!))).to.equal(Number.parseInt(s.get('ConfigurationDirectoryMode')!, 8));
    expect(mode(join(destdir, 'var/log', s.get('LogsDirectory')!))).to.equal(Number.parseInt(s.get('LogsDirectoryMode')!, 8));
  });

  it('a second run changes nothing but the program files, and keeps an existing config', () => {
    const conf = join(destdir, 'etc/uemlink/connector.json');
    // The admin's edited config (same owner and mode as installed).
    writeFileSync(conf, '{ "stateDir": "/var/lib/uemlink", "edited": "by the admin" }\n');
    const before = snapshot(destdir, ['opt/uemlink/lib/uemlink']);
    const r = install();
    expect(r.stdout).to.include('kept      /etc/uemlink/connector.json');
    expect(r.stdout).to.include('unchanged /etc/systemd/system/uemlink-connector.service');
    expect(r.stdout).to.not.match(/created|fixed/);
    expect(snapshot(destdir, ['opt/uemlink/lib/uemlink'])).to.deep.equal(before);
    expect(readFileSync(conf, 'utf8')).to.include('by the admin');
    expect(readdirSync(join(destdir, 'opt/uemlink/lib'))).to.deep.equal(['uemlink']);
    expect([...users().keys()].filter((n) => n === 'uemlink')).to.have.length(1);
  });

  it('installs the cloud relay (--cloud) next to it', () => {
    const r = install(['--cloud']);
    expect(r.stdout).to.include('systemctl start uemlink-cloud');
    expect(r.stdout).to.include('cloud token create --config /etc/uemlink-cloud/cloud.json');
    const uid = users().get('uemlink-cloud')!.id;
    const gid = groups().get('uemlink-cloud')!.id;
    expect(uid).to.not.equal(users().get('uemlink')!.id);
    const expected: Array<[string, number, number, number]> = [
      ['etc/uemlink-cloud', 0o750, 0, gid],
      ['etc/uemlink-cloud/cloud.json', 0o640, 0, gid],
      ['var/lib/uemlink-cloud', 0o700, uid, gid],
      ['var/log/uemlink-cloud', 0o750, uid, gid],
      ['etc/systemd/system/uemlink-cloud.service', 0o644, 0, 0],
    ];
    for (const [rel, m, u, g] of expected) {
      const s = lstatSync(join(destdir, rel));
      expect(`${rel} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}`).to.equal(`${rel} ${m.toString(8)} ${u}:${g}`);
    }
    expect(readFileSync(join(destdir, 'etc/uemlink-cloud/cloud.json'), 'utf8')).to.equal(readFileSync(join(ROOT, 'config/cloud.example.json'), 'utf8'));
  });

  // `verify` checks that ExecStart= exists, so it runs on the units as installed, against the
  // installed wrapper: `systemd-analyze verify --root=DESTDIR` when this systemd-analyze has --root
  // (252 does), else a copy of the unit whose ExecStart= points into DESTDIR.
  let analyze: string | undefined;
  const verify = (ctx: Mocha.Context, unit: string): Run => {
    analyze ??= which('systemd-analyze');
    if (!analyze) skipBecause(ctx, 'systemd-analyze is not installed (Debian package systemd; .ci/run installs it)');
    if (/--root=/.test(run(analyze, ['--help']).stdout)) {
      // --root resolves everything inside DESTDIR, the units ours refer to as well
      // (network-online.target, multi-user.target, sysinit.target...): give it the host's unit
      // library, so that only our units' own problems remain.
      for (const lib of ['/usr/lib/systemd/system', '/lib/systemd/system']) {
        if (existsSync(lib) && !existsSync(join(destdir, 'usr/lib/systemd/system'))) {
          cpSync(lib, join(destdir, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
        }
      }
      // ExecReload= runs the system's /bin/kill, which a real root has and DESTDIR does not.
      if (!existsSync(join(destdir, 'bin/kill'))) {
        mkdirSync(join(destdir, 'bin'), { recursive: true });
        copyFileSync(realpathSync('/bin/kill'), join(destdir, 'bin/kill'));
      }
      return run(analyze, ['verify', `--root=${destdir}`, unit]);
    }
    const d = tempDir('uemlink-verify-');
    try {
      const text = readFileSync(join(destdir, 'etc/systemd/system', unit), 'utf8').replace(/^ExecStart=\//m, `ExecStart=${destdir}/`);
      writeFileSync(join(d, unit), text);
      return run(analyze, ['verify', join(d, unit)]);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  };
  /** Lines about our units; anything else is the host's business. */
  const ours = (r: Run): string[] => (r.stdout + r.stderr).split('\n').filter((l) => l.includes('uemlink'));

  for (const unit of ['uemlink-connector.service', 'uemlink-cloud.service']) {
    it(`systemd-analyze verify of the installed ${unit} reports nothing`, function () {
      const r = verify(this, unit);
      expect(ours(r), describeRun(r)).to.deep.equal([]);
      if (r.code !== 0) expect.fail(`systemd-analyze verify exited ${r.code} without naming ${unit}:\n${describeRun(r)}`);
    });
  }

  it('systemd-analyze verify would report a missing ExecStart= program (so the check above is not vacuous)', function () {
    const wrapper = join(destdir, 'opt/uemlink/bin/uemlink');
    renameSync(wrapper, `${wrapper}.away`);
    try {
      const r = verify(this, 'uemlink-connector.service');
      expect(ours(r).join('\n'), describeRun(r)).to.match(/uemlink-connector\.service: Command .*\/opt\/uemlink\/bin\/uemlink is not executable/);
    } finally {
      renameSync(`${wrapper}.away`, wrapper);
    }
  });

  it('uninstall.sh keeps config, state, logs and the user; the program stays while the other unit uses it', () => {
    writeFileSync(join(destdir, 'var/lib/uemlink/identity.json'), '{}');
    const r1 = uninstall();
    expect(r1.stdout).to.include('removed   /etc/systemd/system/uemlink-connector.service');
    expect(r1.stdout).to.include('kept      /opt/uemlink (uemlink-cloud is still installed');
    expect(existsSync(join(destdir, 'etc/systemd/system/uemlink-connector.service'))).to.equal(false);
    expect(existsSync(join(destdir, 'opt/uemlink/bin/uemlink'))).to.equal(true);

    const r2 = uninstall(['--cloud']);
    expect(r2.stdout).to.include('removed   /opt/uemlink/lib/uemlink');
    expect(existsSync(join(destdir, 'opt/uemlink'))).to.equal(false);
    expect(existsSync(join(destdir, 'etc/systemd/system/uemlink-cloud.service'))).to.equal(false);
    for (const kept of ['etc/uemlink/connector.json', 'var/lib/uemlink/identity.json', 'var/log/uemlink', 'etc/uemlink-cloud/cloud.json', 'var/lib/uemlink-cloud', 'var/log/uemlink-cloud']) {
      expect(existsSync(join(destdir, kept)), kept).to.equal(true);
    }
    expect(users().has('uemlink')).to.equal(true);
    expect(groups().has('uemlink-cloud')).to.equal(true);

    // Again: nothing left to remove is not an error, and still nothing of the admin's goes.
    const before = snapshot(destdir);
    uninstall();
    uninstall(['--cloud']);
    expect(snapshot(destdir)).to.deep.equal(before);
  });

  it('a reinstall picks up the kept config and state, and puts back a directory mode that drifted', () => {
    chmodSync(join(destdir, 'var/lib/uemlink'), 0o755);
    const r = install();
    expect(r.stdout).to.match(/fixed {5}\/var\/lib\/uemlink \(was mode 755/);
    expect(mode(join(destdir, 'var/lib/uemlink'))).to.equal(0o700);
    expect(readFileSync(join(destdir, 'etc/uemlink/connector.json'), 'utf8')).to.include('by the admin');
    expect(existsSync(join(destdir, 'var/lib/uemlink/identity.json'))).to.equal(true);
  });

  it('uninstall.sh --purge removes config, state, logs, the user and the group too', () => {
    uninstall(['--purge']);
    uninstall(['--cloud', '--purge']);
    for (const gone of ['etc/uemlink', 'var/lib/uemlink', 'var/log/uemlink', 'etc/uemlink-cloud', 'var/lib/uemlink-cloud', 'var/log/uemlink-cloud', 'opt/uemlink']) {
      expect(existsSync(join(destdir, gone)), gone).to.equal(false);
    }
    for (const name of ['uemlink', 'uemlink-cloud']) {
      expect(users().has(name), `user ${name}`).to.equal(false);
      expect(groups().has(name), `group ${name}`).to.equal(false);
    }
    expect([...users().keys()]).to.deep.equal(['root', 'nobody']);
    // Idempotent.
    uninstall(['--purge']);
    expect(readFileSync('/etc/passwd', 'utf8')).to.equal(hostPasswd);
  });

  it('another PREFIX (--prefix/--destdir flags): the wrapper and the unit follow, uninstall finds it', function () {
    const other = makeRoot();
    try {
      const r = run('bash', [INSTALL, '--prefix', '/srv/uemlink', '--destdir', other]);
      expect(r.code, describeRun(r)).to.equal(0);
      const unit = readFileSync(join(other, 'etc/systemd/system/uemlink-connector.service'), 'utf8');
      expect(unit).to.match(/^ExecStart=\/srv\/uemlink\/bin\/uemlink connector run --config \/etc\/uemlink\/connector\.json$/m);
      expect(unit).to.not.include('/opt/uemlink');
      // Only ExecStart= differs from the shipped unit.
      const shipped = readFileSync(join(ROOT, 'systemd/uemlink-connector.service'), 'utf8').split('\n');
      const diff = unit.split('\n').filter((l, i) => l !== shipped[i]);
      expect(diff).to.deep.equal(['ExecStart=/srv/uemlink/bin/uemlink connector run --config /etc/uemlink/connector.json']);
      expect(readFileSync(join(other, 'srv/uemlink/bin/uemlink'), 'utf8')).to.include("'/srv/uemlink/lib/uemlink/dist/src/cli/main.js'");
      expect(existsSync(join(other, 'opt'))).to.equal(false);

      // uninstall reads the PREFIX back from the installed unit's ExecStart=.
      const u = run('bash', [UNINSTALL, '--destdir', other]);
      expect(u.code, describeRun(u)).to.equal(0);
      expect(existsSync(join(other, 'srv/uemlink'))).to.equal(false);
      expect(existsSync(join(other, 'etc/uemlink/connector.json'))).to.equal(true);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('systemd units: hardening', function () {
  this.timeout(30_000);
  for (const unit of ['uemlink-connector.service', 'uemlink-cloud.service']) {
    it(`${unit}: systemd-analyze security rates the overall exposure <= 2.0`, function () {
      const analyze = which('systemd-analyze');
      if (!analyze) skipBecause(this, 'systemd-analyze is not installed (Debian package systemd; .ci/run installs it)');
      const r = run(analyze, ['security', '--offline=true', join(ROOT, 'systemd', unit)]);
      const m = /Overall exposure level for (\S+): (\d+(?:\.\d+)?)/.exec(r.stdout);
      expect(m, describeRun(r)).to.not.equal(null);
      expect(m![1]).to.equal(unit);
      expect(Number(m![2]), r.stdout).to.be.at.most(2.0);
    });
  }
});

// -------------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  line: number;
  keyword: string;
  args: string;
}

/** Instructions with continuation lines joined and comments dropped (as Docker's parser does). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const t = raw.trim();
    if (t.startsWith('#') || (buf && !t)) return;
    if (!buf) {
      if (!t) return;
      start = i + 1;
    }
    if (t.endsWith('\\')) {
      buf += `${t.slice(0, -1)} `;
      return;
    }
    buf += t;
    const m = /^(\S+)\s*(.*)$/s.exec(buf)!;
    out.push({ line: start, keyword: m[1]!.toUpperCase(), args: m[2]! });
    buf = '';
  });
  return out;
}

/** Arguments of an exec-form (JSON array) or shell-form instruction, without --flags. */
function words(args: string): { flags: string[]; words: string[] } {
  const flags: string[] = [];
  let rest = args.trim();
  while (rest.startsWith('--')) {
    const m = /^(\S+)\s*(.*)$/s.exec(rest)!;
    flags.push(m[1]!);
    rest = m[2]!;
  }
  if (rest.startsWith('[')) return { flags, words: JSON.parse(rest) as string[] };
  return { flags, words: rest.split(/\s+/).filter(Boolean) };
}

/** .dockerignore as moby/patternmatcher reads it: Go's filepath.Match plus `**`, parents count, last match wins. */
function dockerIgnore(text: string): (path: string) => boolean {
  const rules: Array<{ neg: boolean; re: RegExp }> = [];
  for (let line of text.split('\n')) {
    line = line.trim();
    if (!line || line.startsWith('#')) continue;
    const neg = line.startsWith('!');
    let p = (neg ? line.slice(1) : line).trim();
    p = posix.normalize(p).replace(/^\/+/, '').replace(/\/+$/, '');
    let re = '';
    for (let i = 0; i < p.length; i++) {
      const c = p[i]!;
      if (c === '*' && p[i + 1] === '*') {
        i++;
        if (p[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else if (c === '[') {
        const j = p.indexOf(']', i + 1);
        if (j < 0) throw new Error(`.dockerignore: unterminated [ in ${line}`);
        const cls = p.slice(i + 1, j);
        re += `[${cls.startsWith('^') ? `^${cls.slice(1)}` : cls.replace(/^!/, '\\!')}]`;
        i = j;
      } else if (c === '\\') re += (p[++i] ?? '').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
    rules.push({ neg, re: new RegExp(`^${re}$`) });
  }
  return (path: string) => {
    const parts = posix.normalize(path).replace(/^\.\/|^\/+/, '').replace(/\/+$/, '').split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const r of rules) if (candidates.some((c) => r.re.test(c))) excluded = !r.neg;
    return excluded;
  };
}

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = parseDockerfile(text);
  const ignored = dockerIgnore(existsSync(join(ROOT, '.dockerignore')) ? readFileSync(join(ROOT, '.dockerignore'), 'utf8') : '');
  const stages: Instruction[][] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') stages.push([]);
    stages.at(-1)?.push(ins);
  }
  const runtime = stages.at(-1) ?? [];
  const argDefaults = new Map(
    instructions
      .filter((i) => i.keyword === 'ARG' && i.args.includes('='))
      .map((i) => [i.args.slice(0, i.args.indexOf('=')).trim(), i.args.slice(i.args.indexOf('=') + 1).trim()] as const),
  );
  const expand = (s: string): string => s.replace(/\$\{?(\w+)\}?/g, (_, n: string) => argDefaults.get(n) ?? '');

  it('is multi-stage on node:20-bookworm-slim: npm ci, npm run build, prune dev dependencies', () => {
    expect(stages.length).to.be.at.least(2);
    for (const s of stages) expect(expand(words(s[0]!.args).words[0]!)).to.equal('node:20-bookworm-slim');
    const build = stages[0]!.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    expect(build).to.match(/npm ci\b/);
    expect(build).to.match(/npm run build\b/);
    expect(build).to.match(/npm prune --omit=dev\b/);
  });

  it('every COPY/ADD source from the build context exists after the build and is not .dockerignored', () => {
    const copies = instructions.filter((i) => (i.keyword === 'COPY' || i.keyword === 'ADD') && !words(i.args).flags.some((f) => f.startsWith('--from')));
    expect(copies.length).to.be.greaterThan(0);
    for (const c of copies) {
      const srcs = words(c.args).words.slice(0, -1);
      expect(srcs.length, `line ${c.line}`).to.be.greaterThan(0);
      for (const raw of srcs) {
        expect(raw, `line ${c.line}: wildcards are not checked by this test`).to.not.match(/[*?[]/);
        const src = posix.normalize(raw).replace(/^\/+/, '');
        expect(existsSync(join(ROOT, src)), `line ${c.line}: ${raw} does not exist in the repository`).to.equal(true);
        expect(ignored(src), `line ${c.line}: ${raw} is excluded by .dockerignore`).to.equal(false);
        if (statSync(join(ROOT, src)).isDirectory()) {
          const files = readdirSync(join(ROOT, src), { recursive: true }).map(String);
          expect(files.some((f) => !ignored(`${src}/${f}`)), `line ${c.line}: everything in ${raw} is .dockerignored`).to.equal(true);
        }
      }
    }
  });

  it('.dockerignore keeps host builds, git and scratch files out of the context', () => {
    for (const p of ['node_modules', 'node_modules/ws/index.js', 'dist', 'dist/src/cli/main.js', '.git', '.tmp', 'bench/results/x.json', 'config/connector.json', 'npm-debug.log']) {
      expect(ignored(p), p).to.equal(true);
    }
    for (const p of ['package.json', 'package-lock.json', 'tsconfig.json', 'src/cli/main.ts', 'test/install/install.test.ts']) expect(ignored(p), p).to.equal(false);
  });

  it('the runtime stage runs as a non-root user with a HEALTHCHECK, a state VOLUME and no test files', () => {
    const last = (k: string): Instruction | undefined => runtime.filter((i) => i.keyword === k).at(-1);

    const user = last('USER');
    expect(user, 'USER in the runtime stage').to.not.equal(undefined);
    const [name, group] = user!.args.trim().split(':');
    expect(name).to.not.match(/^(root|0)$/);
    expect(group ?? '').to.not.match(/^(root|0)$/);

    const hc = last('HEALTHCHECK');
    expect(hc, 'HEALTHCHECK in the runtime stage').to.not.equal(undefined);
    expect(hc!.args).to.match(/\bCMD\b/);
    expect(hc!.args).to.include('http://127.0.0.1:8081/healthz');
    expect(hc!.args).to.match(/"node"/);

    const volumes = runtime.filter((i) => i.keyword === 'VOLUME').flatMap((i) => words(i.args).words);
    expect(volumes).to.include('/var/lib/uemlink');

    expect(runtime.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => words(i.args).words)).to.include('8081');
    expect(last('STOPSIGNAL')?.args.trim()).to.equal('SIGTERM');
    const cmdline = [...words(last('ENTRYPOINT')?.args ?? '[]').words, ...words(last('CMD')?.args ?? '[]').words].join(' ');
    expect(cmdline).to.match(/(uemlink|dist\/src\/cli\/main\.js) connector run --config \/etc\/uemlink\/connector\.json$/);

    // Copies from the build stage: dist/src and production node_modules, never the tests.
    const copied = runtime
      .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
      .flatMap((i) => words(i.args).words.slice(0, -1).map((w) => posix.normalize(w).replace(/\/+$/, '')));
    expect(copied.length).to.be.greaterThan(0);
    for (const src of copied) {
      expect(src, 'a test file or a directory holding tests').to.not.match(/(^|\/)(test|tests|bench)(\/|$)|\.test\.|^\.$|^\/$|^\/src$|(^|\/)dist$/);
    }
    expect(copied.some((s) => s.endsWith('dist/src'))).to.equal(true);
  });

  it('spells every instruction right', () => {
    const known = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);
    for (const i of instructions) expect(known.has(i.keyword), `line ${i.line}: ${i.keyword}`).to.equal(true);
  });
});
