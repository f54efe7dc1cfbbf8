/**
 * The `uemlink` CLI as an admin scripting it meets it (found in a review): pipes closed early,
 * secrets in usage errors, tokens spent on pairings that could not be stored, a second daemon,
 * bundles and demo paths. The real CLI in temp dirs, on loopback.
 */
import { expect } from 'chai';
import { ConnectorCA } from '../../src/cloud/ca.js';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, cli, freePort, makeConnector, sleep, startCloud, tempDir, until, type Cloud, type Connector } from '../helpers/procs.js';

/** Runs the CLI with its stdout closed by the reader at once (`uemlink … | true`). */
function runWithClosedStdout(args: string[], opts: { uid?: number; gid?: number } = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    p.stdout.destroy();
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`uemlink ${args.join(' ')} did not finish; stderr: ${stderr}`));
    }, 30_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stderr });
    });
  });
}


describe('CLI edges (found in review)', function () {
  this.timeout(90_000);

  describe('with a cloud', () => {
    let cloud: Cloud;
    const connectors: Connector[] = [];
    before(async () => {
      cloud = await startCloud();
    });
    after(async () => {
      for (const c of connectors) await c.proc?.stop();
      await cloud?.proc.stop();
    });

    async function token(): Promise<string> {
      const t = await cli(['cloud', 'token', 'create', '--config', cloud.configFile, '--tenant', 'acme']);
      expect(t.code, t.stderr).to.equal(0);
      return t.stdout.trim();
    }

    it('Ctrl-C while the pairing is under way does not stop it half-way (token used up, identity not saved): it is said, and the pairing completes', async () => {
      // The cloud's answer is held up 1.5 s by a forwarder, so the interrupt lands while the
      // cloud has taken the token and the connector has not yet saved what it got.
      let received!: () => void;
      const arrived = new Promise<void>((r) => (received = r));
      const slow = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          received();
          void sleep(1500)
            .then(() => fetch(`${cloud.url}${req.url}`, { method: req.method ?? 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat(chunks) }))
            .then(async (r) => {
              res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
              res.end(Buffer.from(await r.arrayBuffer()));
            });
        });
      });
      await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
      try {
        const c = await makeConnector({ config: { cloudUrl: `http://127.0.0.1:${(slow.address() as AddressInfo).port}` } });
        const tokenFile = join(c.dir, 'pair.token');
        writeFileSync(tokenFile, await token(), { mode: 0o600 });
        const p = spawn(process.execPath, [CLI, 'connector', 'pair', '--config', c.configFile, '--token-file', tokenFile], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
        await arrived;
        p.kill('SIGINT');
        const code = await exited;
        expect(code, stderr).to.equal(0);
        expect(stderr).to.contain('uemlink: SIGINT: finishing the pairing');
        expect(stdout.trim()).to.match(/^cn_/);
        expect(existsSync(join(c.dir, 'state', 'state.json')), 'the identity was saved').to.equal(true);
      } finally {
        slow.close();
      }
    });

    it('a typo in the flag name (--tokne=TOKEN) does not print the pairing token on stderr', async () => {
      const c = await makeConnector();
      const tok = await token();
      const r = await cli(['connector', 'pair', '--config', c.configFile, `--tokne=${tok}`]);
      expect(r.code).to.equal(2);
      const secret = tok.split('.')[3]!;
      expect(r.stderr, 'the usage error must not carry the token').to.not.contain(secret);
    });

    it('a pairing token pasted with a typo where a file is expected (--token-file) is not printed on stderr', async () => {
      const c = await makeConnector();
      const tok = await token();
      const typo = tok.replace(/^ulpt1\./, 'ulpt1,'); // one wrong character: no longer the token's shape
      const r = await cli(['connector', 'pair', '--config', c.configFile, '--token-file', typo]);
      expect(r.code).to.equal(2);
      expect(r.stderr, 'the error message carries the pasted token').to.not.contain(tok.split('.')[3]!);
    });

    it('pair into a state dir it cannot write fails without using up the token', async () => {
      const dir = tempDir('uemlink-review-pair-');
      chmodSync(dir, 0o755);
      mkdirSync(join(dir, 'state'), { mode: 0o755 });
      const asRoot = process.getuid?.() === 0;
      if (!asRoot) chmodSync(join(dir, 'state'), 0o555); // root writes anywhere: run as nobody instead
      const configFile = join(dir, 'connector.json');
      writeFileSync(configFile, JSON.stringify({ stateDir: './state', health: { listen: `127.0.0.1:${await freePort()}` }, targets: [] }), { mode: 0o644 });
      const tok = await token();
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, tok, { mode: 0o644 });

      const r = await cli(['connector', 'pair', '--config', configFile, '--token-file', tokenFile], asRoot ? { uid: 65534 } : {});
      expect(r.code, r.stderr).to.not.equal(0);
      expect(r.stderr).to.contain(join(dir, 'state')).and.contain('the pairing token was not used');

      // The admin fixes the permissions and runs the same command again: the token must still work.
      const c = await makeConnector();
      const again = await c.pair(tok);
      expect(again.code, `the first, failed attempt used up the token: ${again.stderr}`).to.equal(0);
    });

    it('a second `connector run` on the same config does not knock the running connector off its tunnel', async () => {
      const c = await makeConnector();
      connectors.push(c);
      const p = await c.pair(await token());
      expect(p.code, p.stderr).to.equal(0);
      await c.start();
      await c.proc.waitLog((l) => l.message === 'tunnel connected', 15_000, 'the tunnel');
      await c.proc.waitLog((l) => l.message === 'local page listening', 15_000, 'the local page');

      const second = await cli(['connector', 'run', '--config', c.configFile], { timeoutMs: 20_000 });
      expect(second.code, 'the second instance must stop').to.equal(1);
      expect(second.stderr).to.match(/another connector \(pid \d+ on .*\) is running with .*state/).and.contain('systemctl stop uemlink-connector');
      await sleep(1000);
      const lost = c.proc.logs.filter((l) => l.message === 'tunnel lost' || l.code === 'TUNNEL_REPLACED');
      expect(lost, 'the running connector lost its tunnel to a second instance that then failed').to.deep.equal([]);
    });
  });

  it('`cloud ca status | true` (reader gone) exits without an EPIPE stack trace', async () => {
    const dir = tempDir('uemlink-review-epipe-');
    const cfg = join(dir, 'cloud.json');
    writeFileSync(cfg, JSON.stringify({ listen: '127.0.0.1:1', publicUrl: 'http://127.0.0.1:1', dataDir: './data', adminToken: 'a-local-admin-token-1234' }));
    await ConnectorCA.loadOrCreate(join(dir, 'data')); // a CA to list, as the cloud's first start makes it
    const r = await runWithClosedStdout(['cloud', 'ca', 'status', '--config', cfg]);
    expect(r.stderr).to.not.match(/EPIPE|Unhandled 'error' event|node:events/);
  });

  it('`connector run | head -1` (reader gone) does not crash the daemon with an EPIPE stack trace', async () => {
    const c = await makeConnector(); // unpaired: no cloud needed
    const p = spawn(process.execPath, [CLI, 'connector', 'run', '--config', c.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    // head -1: read one line, then go away.
    await new Promise<void>((resolve) => {
      let buf = '';
      p.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n')) {
          p.stdout.destroy();
          resolve();
        }
      });
    });
    const code = await Promise.race([exited, sleep(5000).then(() => 'running' as const)]);
    if (code === 'running') {
      p.kill('SIGKILL');
      await exited;
    }
    expect(stderr).to.not.match(/EPIPE|Unhandled 'error' event/);
  });

  it('support-bundle with a typo in health.listen still writes the bundle (the runbook: made anyway, with the error)', async () => {
    const dir = tempDir('uemlink-review-bundle-');
    const cfg = join(dir, 'connector.json');
    writeFileSync(cfg, JSON.stringify({ stateDir: './state', health: { listen: '127.0.0.1:808111' }, targets: [] }));
    const out = join(dir, 'bundle.tar.gz');
    const r = await cli(['connector', 'support-bundle', '--config', cfg, '-o', out]);
    expect(r.code, r.stderr).to.equal(0);
    expect(existsSync(out)).to.equal(true);
  });

  it('support-bundle over an existing file leaves it 0600 (docs/api.md: "writes a .tar.gz (0600)")', async () => {
    const c = await makeConnector();
    const out = join(c.dir, 'bundle.tar.gz');
    writeFileSync(out, '', { mode: 0o644 });
    chmodSync(out, 0o644);
    const r = await cli(['connector', 'support-bundle', '--config', c.configFile, '-o', out]);
    expect(r.code, r.stderr).to.equal(0);
    expect((statSync(out).mode & 0o777).toString(8)).to.equal('600');
  });

  it('demo --dir with a relative path starts (it is resolved against the working directory)', async () => {
    const cwd = tempDir('uemlink-review-demo-');
    const p = spawn(process.execPath, [CLI, 'demo', '--dir', 'demo', '--cloud-port', '0', '--page-port', '0', '--devices', '5'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let code: number | null | undefined;
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => p.on('exit', (c) => ((code = c), resolve())));
    try {
      await until(() => code !== undefined || stdout.includes('uemlink demo is running'), 60_000, 'the demo to start or exit');
      expect(code, `the demo exited ${code}: ${stderr}`).to.equal(undefined);
    } finally {
      if (code === undefined) {
        p.kill('SIGINT');
        await Promise.race([exited, sleep(15_000)]);
        if (code === undefined) p.kill('SIGKILL');
      }
    }
  });

  it('flags are checked before the config (usage is exit 2 whatever the config), --help lists the exit codes, a short admin token from the environment is named as such', async () => {
    const ttl = await cli(['cloud', 'token', 'create', '-c', '/nonexistent/cloud.json', '--tenant', 'acme', '--ttl', 'abc']);
    expect(ttl.code).to.equal(2);
    expect(ttl.stderr).to.contain('--ttl: must be a whole number from 60 to 604800, not "abc"');
    for (const [flag, value, says] of [['--tenant', 'BAD tenant', '--tenant: '], ['--group', 'a/b', '--group: must be 1-63']] as const) {
      const r = await cli(['cloud', 'token', 'create', '-c', '/nonexistent/cloud.json', '--tenant', flag === '--tenant' ? value : 'acme', ...(flag === '--group' ? ['--group', value] : [])]);
      expect(r.code, `${flag} ${value} with a config that cannot be read`).to.equal(2);
      expect(r.stderr).to.contain(says);
    }
    const both = await cli(['connector', 'pair', '-c', '/nonexistent/connector.json', '--token', 'x', '--token-file', 'y']);
    expect(both.code).to.equal(2);
    expect(both.stderr).to.contain('give --token or --token-file, not both');
    const help = await cli(['--help']);
    expect(help.stdout).to.contain('Exit codes: 0 success, 1 failure (said on stderr), 2 usage error, 78 configuration error');
    const dir = tempDir('uemlink-review-env-');
    const cfg = join(dir, 'cloud.json');
    writeFileSync(cfg, JSON.stringify({ listen: '127.0.0.1:1', publicUrl: 'http://127.0.0.1:1', dataDir: './data' }));
    const short = await cli(['cloud', 'run', '-c', cfg], { env: { UEMLINK_ADMIN_TOKEN: 'too-short' } });
    expect(short.code).to.equal(78);
    expect(short.stderr).to.contain('cloud.json: adminToken (from UEMLINK_ADMIN_TOKEN): must be at least 16 characters').and.not.contain('too-short');
  });

  it("`help NAME` for no such command says so (with a guess) and exits 2 at every level; `help NAME` for a real one is its help, exit 0", async () => {
    const bogus = await cli(['help', 'bogus']);
    expect(bogus.code).to.equal(2);
    expect(bogus.stderr).to.contain("error: unknown command 'bogus'").and.contain('Usage: uemlink [options] [command]');
    const typo = await cli(['connector', 'help', 'pari']);
    expect(typo.code).to.equal(2);
    expect(typo.stderr).to.contain("error: unknown command 'pari'\n(Did you mean pair?)");
    const deep = await cli(['cloud', 'token', 'help', 'crate']);
    expect(deep.code).to.equal(2);
    expect(deep.stderr).to.contain("unknown command 'crate'").and.contain('(Did you mean create?)');
    const real = await cli(['connector', 'help', 'pair']);
    expect(real.code).to.equal(0);
    expect(real.stdout).to.contain('Usage: uemlink connector pair [options]');
    const top = await cli(['help']);
    expect(top.code).to.equal(0);
    expect(top.stdout).to.contain('help [command]').and.contain('Exit codes:');
  });

  it('diagnose with a target secret that cannot be read (a systemd credential while the service is stopped) reports it as a failed check and checks the rest, exit 1 not 78', async () => {
    const c = await makeConnector({
      config: {
        targets: [
          { id: 'ws1', baseUrl: 'https://127.0.0.1:1/API', auth: { type: 'basic', username: 'u', passwordFile: '/run/credentials/uemlink-connector.service/ws1-password' } },
          { id: 'ws2', baseUrl: 'https://127.0.0.1:1/API', auth: { type: 'none' } },
        ],
      },
    });
    const r = await cli(['connector', 'diagnose', '--config', c.configFile, '--json']);
    expect(r.code, r.stderr).to.equal(1);
    const d = JSON.parse(r.stdout) as { checks: Array<{ id: string; status: string; detail: string; hint?: string }> };
    const ws1 = d.checks.find((x) => x.id === 'target.ws1.config');
    expect(ws1).to.include({ status: 'fail' });
    expect(ws1!.detail).to.contain('/run/credentials/uemlink-connector.service/ws1-password');
    expect(ws1!.hint).to.contain('exists only while the service runs');
    expect(d.checks.map((x) => x.id), 'the other target is still checked').to.include('target.ws2.tcp');
    expect(d.checks[0]!.id).to.equal('identity');
  });

  it('diagnose --json with a corrupt state file answers JSON with the Pairing check failed, naming the file', async () => {
    const c = await makeConnector();
    mkdirSync(join(c.dir, 'state'), { mode: 0o700 });
    const stateFile = join(c.dir, 'state', 'state.json');
    writeFileSync(stateFile, '{"version": 1, "identity": {', { mode: 0o600 });
    const r = await cli(['connector', 'diagnose', '--config', c.configFile, '--json']);
    expect(r.code).to.equal(1);
    const d = JSON.parse(r.stdout) as { ok: boolean; checks: Array<{ id: string; status: string; detail: string }> };
    expect(d.ok).to.equal(false);
    expect(d.checks[0]).to.include({ id: 'identity', status: 'fail' });
    expect(d.checks[0]!.detail).to.contain(stateFile);
  });

  it("simulate-uem --faults that is JSON but not an object ('[]', 'null') is a usage error before anything starts or logs", async () => {
    for (const faults of ['[]', 'null', '3']) {
      const r = await cli(['simulate-uem', '--vendor', 'hexnode', '--listen', '127.0.0.1:0', '--state', tempDir('uemlink-sim-'), '--faults', faults]);
      expect(r.code, faults).to.equal(2);
      expect(r.stdout, 'nothing logged: it never started').to.equal('');
      expect(r.stderr).to.contain('--faults: must be a JSON object');
    }
  });

  it('cloud ca rotate pointed at an empty dataDir refuses instead of creating a CA (as ca status does)', async () => {
    const dir = tempDir('uemlink-review-ca-');
    const cfg = join(dir, 'cloud.json');
    writeFileSync(cfg, JSON.stringify({ listen: '127.0.0.1:1', publicUrl: 'http://127.0.0.1:1', dataDir: './mistyped-data', adminToken: 'a-local-admin-token-1234' }));
    const status = await cli(['cloud', 'ca', 'status', '--config', cfg]);
    expect(status.code).to.equal(1); // "there is no connector CA in …; check dataDir"
    const r = await cli(['cloud', 'ca', 'rotate', '--config', cfg]);
    expect(r.code, 'rotating a CA that does not exist must fail').to.not.equal(0);
    expect(existsSync(join(dir, 'mistyped-data', 'ca.key')), 'a new CA root was created in the wrong place').to.equal(false);
  });
});
