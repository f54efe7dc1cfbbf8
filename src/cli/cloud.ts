/** `uemlink cloud ...` */
import type { Command } from 'commander';
import { UemlinkError } from '../common/errors.js';
import { createLogger, reopenLogFiles } from '../common/log.js';
import { loadCloudConfig } from '../cloud/config.js';
import { X509Certificate } from 'node:crypto';
import { ConnectorCA } from '../cloud/ca.js';
import { checkTokenRequest, createPairingToken, MAX_TOKEN_TTL_S } from '../cloud/pairing.js';
import { CloudServer } from '../cloud/server.js';
import { openCloudStore } from '../cloud/state.js';
import { action, becomeDaemon, logMissingNodeFlags, onHangup, onTerminate, wholeNumber } from './common.js';

/** The API's field names in a validation message, as the flags an admin typed. */
const FLAG_OF: Record<string, string> = { tenant: '--tenant', group: '--group', ttlSeconds: '--ttl' };

/** A bad flag value is a usage error (exit 2) that names the flag, not a failure (exit 1). */
function asUsage(e: unknown): never {
  if (e instanceof UemlinkError && e.code === 'INVALID_INPUT') {
    const m = /^(\w+): /.exec(e.message);
    const flag = m ? FLAG_OF[m[1]!] : undefined;
    throw new UemlinkError('USAGE', flag ? `${flag}: ${e.message.slice(m![0].length)}` : e.message);
  }
  throw e;
}

export function cloudCommands(program: Command): void {
  const cloud = program.command('cloud').description('the cloud relay: pairing, tunnels, relay API');

  cloud
    .command('run')
    .description('run the cloud relay')
    .requiredOption('-c, --config <file>', 'cloud config file (JSON)')
    .action(
      action(async (opts: { config: string }) => {
        becomeDaemon();
        const cfg = loadCloudConfig(opts.config);
        const logger = createLogger({ component: 'cloud', level: cfg.logLevel });
        logMissingNodeFlags((m, meta) => logger.info(m, meta));
        const starting = CloudServer.start(cfg, { logger });
        onTerminate(async () => (await starting).shutdown(), (m) => logger.info(m)); // see connector run
        onHangup(() => {
          reopenLogFiles();
          void starting.then((c) => c.reopenFiles(), () => {});
        }, (m) => logger.info(m));
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
        // Read-only: pointed at an empty or mistyped dataDir, a status command must not create a CA.
        const { ca: cas } = await ConnectorCA.loadOrCreate(cfg.dataDir, { create: false });
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
    .option('--ttl <seconds>', 'lifetime in seconds, 60 to 604800 (default 3600)')
    .action(
      action(async (opts: { config: string; tenant: string; group: string; ttl?: string }) => {
        // Flags first: a script's usage error is exit 2 whatever the config, not 78.
        const ttlSeconds = wholeNumber('--ttl', opts.ttl, 60, MAX_TOKEN_TTL_S);
        try {
          checkTokenRequest({ tenant: opts.tenant, group: opts.group, ttlSeconds });
        } catch (e) {
          asUsage(e);
        }
        const cfg = loadCloudConfig(opts.config);
        const store = openCloudStore(cfg.dataDir);
        const t = await createPairingToken(store, cfg.publicUrl, { tenant: opts.tenant, group: opts.group, ttlSeconds }).catch(asUsage);
        process.stdout.write(`${t.token}\n`);
        process.stderr.write(`token for tenant ${t.tenant}, group ${t.group}, expires ${t.expiresAt}\n`);
      }),
    );
}
