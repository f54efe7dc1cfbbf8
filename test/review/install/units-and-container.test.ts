/**
 * Review (running the services as an admin does): the systemd units and the container as the
 * runbook uses them. Each test fails on the code as reviewed.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT, describeRun, isRoot, run, skipBecause, unitSettings, which } from '../../helpers/install.js';

const UNITS = ['uemlink-connector.service', 'uemlink-cloud.service'] as const;
const unitText = (u: string): string => readFileSync(join(ROOT, 'systemd', u), 'utf8');

describe('review: systemd units', function () {
  this.timeout(30_000);

  for (const unit of UNITS) {
    it(`${unit}: \`systemctl reload\` reopens the log files (ExecReload= sends SIGHUP to the main process only)`, () => {
      // docs/runbook.md: SIGHUP reopens the log files; `systemctl reload` (what logrotate rules and
      // config management call) is refused without ExecReload= ("Job type reload is not applicable").
      const s = unitSettings(unitText(unit));
      expect(s.get('ExecReload') ?? '(none)').to.match(/kill -(s )?HUP \$MAINPID/);
    });
  }

  it('uemlink-cloud.service: the documented way to listen on 443 (AmbientCapabilities=CAP_NET_BIND_SERVICE) can work with the unit\'s PrivateUsers=', function () {
    const text = unitText('uemlink-cloud.service');
    const s = unitSettings(text);
    if (!/AmbientCapabilities=CAP_NET_BIND_SERVICE/.test(text)) this.skip();
    if (s.get('PrivateUsers') !== 'yes') return; // the advice can work
    // PrivateUsers=yes: the service holds its capabilities in a user namespace of its own, and the
    // host's network namespace only honours CAP_NET_BIND_SERVICE held in the host's. Shown here with
    // the same arrangement: every capability, in a new user namespace, binding 443 on the host's
    // network namespace.
    if (!isRoot) skipBecause(this, 'not root');
    const unshare = which('unshare');
    if (!unshare) skipBecause(this, 'unshare (util-linux) missing');
    const start = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim());
    if (start <= 443) skipBecause(this, `net.ipv4.ip_unprivileged_port_start is ${start}: anyone may bind 443 here`);
    const probe = "require('net').createServer().listen(443,'127.0.0.1',function(){console.log('bound');this.close()}).on('error',(e)=>{console.log(e.code);process.exitCode=1})";
    const r = run(unshare, ['--user', '--map-root-user', '--keep-caps', process.execPath, '-e', probe]);
    expect(r.stdout.trim(), `with PrivateUsers=yes and CAP_NET_BIND_SERVICE in the service's user namespace:\n${describeRun(r)}`).to.equal('bound');
  });
});

describe('review: the container as the runbook runs it', () => {
  it("the runbook's `docker run -d` keeps the example config's audit log across a container re-creation (an image upgrade)", () => {
    const example = JSON.parse(readFileSync(join(ROOT, 'config/connector.example.json'), 'utf8')) as { stateDir: string; audit?: { file?: string } };
    const audit = example.audit?.file ?? `${example.stateDir}/audit.log`;
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const volumes = [...dockerfile.matchAll(/^VOLUME\s+(.+)$/gm)].flatMap((m) => (m[1]!.trim().startsWith('[') ? (JSON.parse(m[1]!) as string[]) : m[1]!.trim().split(/\s+/)));
    const runbook = readFileSync(join(ROOT, 'docs/runbook.md'), 'utf8');
    const runLine = runbook.split('\n').find((l) => /^docker run -d /.test(l.trim()));
    expect(runLine, 'a `docker run -d` line in docs/runbook.md').to.not.equal(undefined);
    // The command may continue on the next line (a trailing backslash).
    const idx = runbook.split('\n').indexOf(runLine!);
    const cmd = runbook.split('\n').slice(idx, idx + 3).join(' ');
    const mounts = [...cmd.matchAll(/-v\s+\S+?:(\/[^:\s]+)/g)].map((m) => m[1]!);
    const persistent = [...volumes, ...mounts];
    const under = (p: string, d: string): boolean => p === d || p.startsWith(`${d.replace(/\/$/, '')}/`);
    expect(
      persistent.filter((d) => under(dirname(audit), d) || under(audit, d)),
      `audit.file ${audit} (config/connector.example.json) is under none of the image's VOLUMEs (${volumes.join(', ')}) nor the runbook's -v mounts (${mounts.join(', ')}): it lives in the container's writable layer and goes with \`docker rm\``,
    ).to.not.deep.equal([]);
  });
});
