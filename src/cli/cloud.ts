/** `uemlink cloud ...` */
import type { Command } from 'commander';
import { UemlinkError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { loadCloudConfig } from '../cloud/config.js';
import { X509Certificate } from 'node:crypto';
import { ConnectorCA } from '../cloud/ca.js';
import { createPairingToken } from '../cloud/pairing.js';
import { CloudServer } from '../cloud/server.js';
import { openCloudStore } from '../cloud/state.js';
import { action, logMissingNodeFlags, onTerminate } from './common.js';

function intOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UemlinkError('USAGE', `${name}: must be a whole number of seconds, not "${v}"`);
  return Number(v);
}

export function cloudCommands(program: Command): void {
  const cloud = program.command('cloud').description('the cloud relay: pairing, tunnels, relay API');

  cloud
    .command('run')
    .description('run the cloud relay')
    .requiredOption('-c, --config <file>', 'cloud config file (JSON)')
    .action(
      action(async (opts: { config: string }) => {
        const cfg = loadCloudConfig(opts.config);
        const logger = createLogger({ component: 'cloud', level: cfg.logLevel });
        logMissingNodeFlags((m, meta) => logger.info(m, meta));
        const starting = CloudServer.start(cfg, { logger });
        onTerminate(async () => (await starting).shutdown(), (m) => logger.info(m)); // see connector run
        await starting;
      }),
    );

  const ca = cloud.command('ca').description('the connector CA (rotation without re-pairing)');
  ca.command('status')
    .description('CA generations and how many connectors hold a certificate from each')
    .requiredOption('-c, --config <file>', 'cloud config file (JSON)')
    .action(
      action(async (opts: { config: string }) => {
        const cfg = loadCloudConfig(opts.config);
        const { ca: cas } = await ConnectorCA.loadOrCreate(cfg.dataDir);
        const state = await openCloudStore(cfg.dataDir).read();
        const counts = new Map<number, number>();
        for (const c of Object.values(state.connectors)) {
          if (c.revokedAt) continue;
          const g = cas.issuerOf(new X509Certificate(c.certificate)) ?? 0;
          counts.set(g, (counts.get(g) ?? 0) + 1);
        }
        for (const g of cas.generations()) {
          process.stdout.write(`generation ${g.generation}${g.current ? ' (current, signs)' : ''}  ${g.subject}  until ${g.notAfter.slice(0, 10)}  connectors: ${counts.get(g.generation) ?? 0}\n`);
        }
      }),
    );
  ca.command('rotate')
    .description('add a new signing CA; connectors renew onto it over the tunnel at their next connection')
    .requiredOption('-c, --config <file>', 'cloud config file (JSON)')
    .action(
      action(async (opts: { config: string }) => {
        const cfg = loadCloudConfig(opts.config);
        const n = await ConnectorCA.rotate(cfg.dataDir);
        process.stdout.write(`generation ${n} created; restart the cloud relay to sign with it (older generations keep verifying)\n`);
      }),
    );

  const token = cloud.command('token').description('pairing tokens');
  token
    .command('create')
    .description('issue a pairing token; prints the token alone on stdout')
    .requiredOption('-c, --config <file>', 'cloud config file (JSON)')
    .requiredOption('--tenant <tenant>', 'tenant the connector will belong to')
    .option('--group <group>', 'connector group', 'default')
    .option('--ttl <seconds>', 'lifetime in seconds (default 3600, at most 604800)')
    .action(
      action(async (opts: { config: string; tenant: string; group: string; ttl?: string }) => {
        const cfg = loadCloudConfig(opts.config);
        const store = openCloudStore(cfg.dataDir);
        const t = await createPairingToken(store, cfg.publicUrl, { tenant: opts.tenant, group: opts.group, ttlSeconds: intOption('--ttl', opts.ttl) });
        process.stdout.write(`${t.token}\n`);
        process.stderr.write(`token for tenant ${t.tenant}, group ${t.group}, expires ${t.expiresAt}\n`);
      }),
    );
}
