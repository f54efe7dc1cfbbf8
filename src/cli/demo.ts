/**
 * `uemlink demo` (npm run demo): the whole product on loopback in one command — a simulated
 * Workspace ONE server, the cloud relay, a connector paired with a real pairing token over HTTP and
 * connected through a real tunnel — then one relayed device search, and instructions to try more.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createApiKey } from '../cloud/api-keys.js';
import { loadCloudConfig } from '../cloud/config.js';
import { CloudServer } from '../cloud/server.js';
import { systemClock } from '../common/clock.js';
import { RecentProblems, createLogger } from '../common/log.js';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { loadConnectorConfig } from '../connector/config.js';
import { runConnector } from '../connector/app.js';
import { pairConnector } from '../connector/pair.js';
import { ConnectorStateStore } from '../connector/state.js';
import { startSimulator } from '../uem/simulator/server.js';
import { action, becomeDaemon, onTerminate, wholeNumber } from './common.js';

const MARKER = '.uemlink-demo';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** `preferred` if free, else (or for 0) a free port the system picks. */
async function pickPort(preferred: number): Promise<number> {
  if (preferred !== 0 && (await portFree(preferred))) return preferred;
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function writeJson(file: string, v: unknown, mode = 0o600): void {
  writeFileSync(file, `${JSON.stringify(v, null, 2)}\n`, { mode });
}

export function demoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the cloud relay, a simulated Workspace ONE server and a paired connector on loopback')
    .option('--dir <dir>', 'working directory (recreated each run)', join(tmpdir(), 'uemlink-demo'))
    .option('--cloud-port <port>', 'port of the cloud relay', '9443')
    .option('--page-port <port>', 'port of the connector\'s local page', '8081')
    .option('--devices <n>', 'simulated devices', '200')
    .action(
      action(async (opts: { dir: string; cloudPort: string; pagePort: string; devices: string }) => {
        becomeDaemon(); // from its first line: a stdout lost while it starts must not end it
        const devices = wholeNumber('--devices', opts.devices, 0, 1_000_000)!;
        const wantCloudPort = wholeNumber('--cloud-port', opts.cloudPort, 0, 65535)!;
        const wantPagePort = wholeNumber('--page-port', opts.pagePort, 0, 65535)!;
        // Absolute: the connector's config resolves its paths against its own directory.
        const dir = resolve(opts.dir);
        if (existsSync(dir)) {
          if (!existsSync(join(dir, MARKER))) throw new Error(`${dir} exists and is not a demo directory; choose another with --dir`);
          rmSync(dir, { recursive: true, force: true });
        }
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        writeFileSync(join(dir, MARKER), '');
        const logFile = join(dir, 'demo.log');
        const logStream = createWriteStream(logFile, { flags: 'a', mode: 0o600 });
        const log = (component: string) => createLogger({ component, stream: logStream, level: 'debug' });
        const say = (s: string): void => void process.stdout.write(`${s}\n`);

        // 1. The on-premises UEM.
        const sim = await startSimulator({ vendor: 'workspace-one', listen: { host: '127.0.0.1', port: 0 }, stateDir: join(dir, 'uem'), devices, logger: log('uem-simulator') });

        // 2. The cloud relay.
        const cloudPort = await pickPort(wantCloudPort);
        mkdirSync(join(dir, 'cloud'), { mode: 0o700 });
        writeFileSync(join(dir, 'cloud', 'admin.token'), `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
        writeJson(join(dir, 'cloud', 'cloud.json'), { listen: `127.0.0.1:${cloudPort}`, publicUrl: `http://127.0.0.1:${cloudPort}`, dataDir: './data', adminTokenFile: 'admin.token', tunnel: { heartbeatSeconds: 15 } });
        const cloudCfg = loadCloudConfig(join(dir, 'cloud', 'cloud.json'));
        const cloud = await CloudServer.start(cloudCfg, { logger: log('cloud') });

        // 3. The connector, as an admin would configure it: credentials in 0600 files next to it.
        const cdir = join(dir, 'connector');
        mkdirSync(cdir, { mode: 0o700 });
        writeFileSync(join(cdir, 'uem.password'), sim.credentials.password, { mode: 0o600 });
        writeFileSync(join(cdir, 'uem.apikey'), sim.credentials.apiKey, { mode: 0o600 });
        const pagePort = await pickPort(wantPagePort);
        writeJson(join(cdir, 'connector.json'), {
          stateDir: './state',
          health: { listen: `127.0.0.1:${pagePort}` },
          targets: [
            {
              id: 'ws1',
              baseUrl: `${sim.baseUrl}`,
              auth: { type: 'basic', username: sim.credentials.username, passwordFile: 'uem.password', apiKeyFile: 'uem.apikey', apiKeyHeader: 'aw-tenant-code' },
              tls: { caFile: sim.caFile },
              healthPath: '/system/info',
            },
          ],
        });
        const connCfg = loadConnectorConfig(join(cdir, 'connector.json'));
        const token = await cloud.pairing.createToken({ tenant: 'demo', ttlSeconds: 600 });
        const paired = await pairConnector(connCfg, new ConnectorStateStore(connCfg.stateDir), token.token);
        const recent = new RecentProblems(50);
        const connLog = createLogger({ component: 'connector', stream: logStream, level: 'debug', recent });
        const connector = await runConnector(connCfg, connLog, recent);
        const deadline = Date.now() + 15_000;
        while (!cloud.registry.get(paired.connectorId) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        if (!cloud.registry.get(paired.connectorId)) throw new Error(`the connector did not connect; see ${logFile}`);

        // 4. A tenant API key for trying the relay by hand.
        const key = await createApiKey(cloud.store, 'demo', 'demo', systemClock);
        writeFileSync(join(dir, 'tenant.key'), `${key.key}\n`, { mode: 0o600 });

        // 5. One relayed device search, through the tunnel, with the credentials only the connector holds.
        const t0 = Date.now();
        const res = await cloud.relay.fetch('demo', 'ws1', '/mdm/devices/search?page=0&pagesize=5', { headers: { accept: 'application/json;version=2' } });
        const body = (await res.json()) as { Total?: number; Devices?: Array<{ DeviceFriendlyName?: string; Platform?: string }> };
        const ms = Date.now() - t0;

        say('');
        say('uemlink demo is running on loopback');
        say(`  cloud relay         http://127.0.0.1:${cloudPort}`);
        say(`  connector           ${paired.connectorId} (tenant demo), tunnel connected`);
        say(`  simulated UEM       ${sim.baseUrl} (Workspace ONE, ${devices} devices)`);
        say(`  connector page      http://127.0.0.1:${connector.page.port}/  (admin password in ${join(cdir, 'state', 'admin-password')})`);
        say('');
        say(`relayed device search: HTTP ${res.status} in ${ms} ms, ${body.Total ?? 0} devices in total; first ${body.Devices?.length ?? 0}:`);
        for (const d of body.Devices ?? []) say(`  - ${d.DeviceFriendlyName} (${d.Platform})`);
        say('');
        say('try it yourself (the tenant API key is in a 0600 file, not on your screen):');
        say(`  curl -s -H "Authorization: Bearer $(cat ${join(dir, 'tenant.key')})" \\`);
        say(`    "http://127.0.0.1:${cloudPort}/api/v1/relay/demo/ws1/mdm/devices/search?page=0&pagesize=3"`);
        say(`  curl -s -H "Authorization: Bearer $(cat ${join(dir, 'cloud', 'admin.token')})" http://127.0.0.1:${cloudPort}/api/v1/connectors`);
        say('');
        say(`logs: ${logFile}    stop: Ctrl-C`);

        onTerminate(async () => {
          await connector.shutdown();
          await cloud.shutdown();
          await sim.close();
          logStream.end();
        }, () => say('stopping…'));
      }),
    );
}
