/**
 * Install, upgrade and uninstall as an admin does them (found in review): what a second run of
 * install.sh and a run of uninstall.sh do to what the admin decided.
 *
 * The DESTDIR tests run the scripts into a temporary root, as test/install/install.test.ts does.
 * The "disabled unit" test needs the non-DESTDIR code path (systemctl is only run there): it runs
 * install.sh for real inside a private mount namespace (`unshare --mount`) where /etc is a copy,
 * /opt, /var/lib, /var/log and /run are tmpfs, and `systemctl` is a stub that records its calls.
 * Nothing of it outlives the namespace but a temp dir, removed afterwards.
 */
import { expect } from 'chai';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/procs.js';
import { INSTALL, UNINSTALL, describeRun, isRoot, makeRoot, run, skipBecause, which } from '../helpers/install.js';

describe('install review: install.sh run again (upgrade) keeps what the admin decided', function () {
  this.timeout(180_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  before(function () {
    if (!isRoot) skipBecause(this, 'not root: install.sh needs root');
    if (!which('useradd')) skipBecause(this, 'useradd missing');
  });

  it('a masked unit (systemctl mask: a link to /dev/null) stays masked after an upgrade', () => {
    const root = makeRoot();
    dirs.push(root);
    const r1 = run('bash', [INSTALL, '--destdir', root], { timeoutMs: 120_000 });
    expect(r1.code, describeRun(r1)).to.equal(0);
    // The admin takes this connector out of service for good (a cold standby, a decommissioned site).
    const unit = join(root, 'etc/systemd/system/uemlink-connector.service');
    rmSync(unit);
    symlinkSync('/dev/null', unit);
    const r2 = run('bash', [INSTALL, '--destdir', root], { timeoutMs: 120_000 });
    expect(r2.code, describeRun(r2)).to.equal(0);
    const s = lstatSync(unit);
    expect(s.isSymbolicLink() ? `link to ${readlinkSync(unit)}` : 'a regular unit file (unmasked)', describeRun(r2)).to.equal('link to /dev/null');
  });

  it('an upgrade without --prefix updates the install where it is (the unit names it), not a second copy in /opt/uemlink', () => {
    const root = makeRoot();
    dirs.push(root);
    const r1 = run('bash', [INSTALL, '--destdir', root, '--prefix', '/srv/uemlink'], { timeoutMs: 120_000 });
    expect(r1.code, describeRun(r1)).to.equal(0);
    // The runbook's upgrade: "run it again".
    const r2 = run('bash', [INSTALL, '--destdir', root], { timeoutMs: 120_000 });
    expect(r2.code, describeRun(r2)).to.equal(0);
    const unit = readFileSync(join(root, 'etc/systemd/system/uemlink-connector.service'), 'utf8');
    const execStart = /^ExecStart=(\S+)/m.exec(unit)?.[1];
    const copies = ['opt/uemlink', 'srv/uemlink'].filter((p) => existsSync(join(root, p)));
    expect({ execStart, copies }).to.deep.equal({ execStart: '/srv/uemlink/bin/uemlink', copies: ['srv/uemlink'] });
  });

  it('an upgrade does not enable a unit the admin disabled (systemctl is-enabled: disabled)', function () {
    const unshare = which('unshare');
    if (!unshare) skipBecause(this, 'unshare (util-linux) missing');
    const w = tempDir('uemlink-review-ns-');
    dirs.push(w);
    mkdirSync(join(w, 'fakebin'));
    const log = join(w, 'systemctl.log');
    // The stub says what systemd would say once the admin ran `systemctl disable uemlink-connector`.
    writeFileSync(
      join(w, 'fakebin/systemctl'),
      `#!/bin/sh\necho "run$RUN: systemctl $*" >> '${log}'\ncase "$1" in\n  is-enabled) echo disabled; exit 1 ;;\n  is-active) exit 3 ;;\nesac\nexit 0\n`,
      { mode: 0o755 },
    );
    const script = join(w, 'ns.sh');
    writeFileSync(
      script,
      [
        'set -e',
        `W='${w}'`,
        'mkdir "$W/etc"',
        'cp -a /etc/. "$W/etc/"',
        'mount --bind "$W/etc" /etc',
        'for d in /opt /var/lib /var/log /run; do mount -t tmpfs tmpfs "$d"; done',
        'mkdir -p /run/systemd/system',
        'export PATH="$W/fakebin:$PATH"',
        // RUN tells the stub which run called it.
        `export RUN=1; bash '${INSTALL}' > "$W/install1.log" 2>&1`,
        `export RUN=2; bash '${INSTALL}' > "$W/install2.log" 2>&1`,
      ].join('\n'),
    );
    const r = run(unshare, ['--mount', '--fork', 'bash', script], { timeoutMs: 170_000 });
    const out = (f: string): string => (existsSync(join(w, f)) ? readFileSync(join(w, f), 'utf8') : '');
    expect(r.code, `${describeRun(r)}\n--- install1\n${out('install1.log')}\n--- install2\n${out('install2.log')}`).to.equal(0);
    const second = out('systemctl.log')
      .split('\n')
      .filter((l) => l.startsWith('run2:'));
    expect(second.length, out('systemctl.log')).to.be.greaterThan(0);
    expect(second.filter((l) => / enable\b/.test(l)), `systemctl calls of the upgrade:\n${second.join('\n')}`).to.deep.equal([]);
  });
});

describe('install review: uninstall.sh removes only what install.sh created', function () {
  this.timeout(180_000);
  let root: string | undefined;
  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('--prefix /usr/local: the pre-existing (empty) /usr/local/bin and /usr/local/lib of the system stay', function () {
    if (!isRoot) skipBecause(this, 'not root: install.sh needs root');
    if (!which('useradd')) skipBecause(this, 'useradd missing');
    root = makeRoot();
    // Debian's base-files ships these, empty on a fresh system.
    for (const d of ['usr/local/bin', 'usr/local/lib', 'usr/local/sbin']) mkdirSync(join(root, d), { recursive: true });
    const i = run('bash', [INSTALL, '--destdir', root, '--prefix', '/usr/local'], { timeoutMs: 120_000 });
    expect(i.code, describeRun(i)).to.equal(0);
    const u = run('bash', [UNINSTALL, '--destdir', root]);
    expect(u.code, describeRun(u)).to.equal(0);
    const gone = ['usr/local/bin', 'usr/local/lib'].filter((d) => !existsSync(join(root!, d)));
    expect(gone, `system directories removed by uninstall.sh:\n${describeRun(u)}`).to.deep.equal([]);
  });
});
