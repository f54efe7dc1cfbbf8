/**
 * Running the services as an admin does (found in review): the systemd units and the container as
 * the runbook uses them.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT, unitSettings } from '../helpers/install.js';

const UNITS = ['uemlink-connector.service', 'uemlink-cloud.service'] as const;
const unitText = (u: string): string => readFileSync(join(ROOT, 'systemd', u), 'utf8');

describe('install review: systemd units', function () {
  this.timeout(30_000);

  for (const unit of UNITS) {
    it(`${unit}: \`systemctl reload\` reopens the log files (ExecReload= sends SIGHUP to the main process only)`, () => {
      // docs/runbook.md: SIGHUP reopens the log files; `systemctl reload` (what logrotate rules and
      // config management call) is refused without ExecReload= ("Job type reload is not applicable").
      const s = unitSettings(unitText(unit));
      expect(s.get('ExecReload') ?? '(none)').to.match(/kill -(s )?HUP \$MAINPID/);
    });
  }

  it('uemlink-cloud.service: the advice for listening on 443 also turns PrivateUsers= off (a capability held in the service\'s own user namespace does not let it bind 443 on the host: EACCES)', () => {
    const text = unitText('uemlink-cloud.service');
    expect(unitSettings(text).get('PrivateUsers'), 'the unit as shipped keeps its own user namespace').to.equal('yes');
    const advice = text
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .join(' ');
    expect(advice).to.contain('AmbientCapabilities=CAP_NET_BIND_SERVICE').and.contain('PrivateUsers=no');
  });
});

describe('install review: the container as the runbook runs it', () => {
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
