/** `uemlink connector ...` */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { UemlinkError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { secrets } from '../common/redact.js';
import { loadConnectorConfig } from '../connector/config.js';
import { ConnectorDaemon } from '../connector/daemon.js';
import { pairConnector } from '../connector/pair.js';
import { ConnectorStateStore } from '../connector/state.js';
import { action, onTerminate } from './common.js';

/** The pairing token: --token, --token-file, or UEMLINK_PAIRING_TOKEN (argv is visible to `ps`). */
async function readToken(opts: { token?: string; tokenFile?: string }): Promise<string> {
  if (opts.token && opts.tokenFile) throw new UemlinkError('USAGE', 'give --token or --token-file, not both');
  if (opts.tokenFile) {
    try {
      const t = (await readFile(opts.tokenFile, 'utf8')).trim();
      secrets.add(t);
      if (!t) throw new UemlinkError('USAGE', `--token-file ${opts.tokenFile} is empty`);
      return t;
    } catch (e) {
      if (e instanceof UemlinkError) throw e;
      throw new UemlinkError('USAGE', `--token-file ${opts.tokenFile} cannot be read: ${(e as Error).message}`);
    }
  }
  const t = opts.token ?? process.env.UEMLINK_PAIRING_TOKEN;
  if (!t) throw new UemlinkError('USAGE', 'a pairing token is required: --token-file FILE, --token TOKEN or UEMLINK_PAIRING_TOKEN');
  secrets.add(t.trim());
  return t;
}

export function connectorCommands(program: Command): void {
  const connector = program.command('connector').description('the on-premises connector');

  connector
    .command('pair')
    .description('redeem a pairing token and store this connector\'s identity; prints the connector id')
    .requiredOption('-c, --config <file>', 'connector config file (JSON)')
    .option('--token <token>', 'pairing token (prefer --token-file: argv is visible to other users)')
    .option('--token-file <file>', 'file holding the pairing token')
    .option('--force', 'pair again even if already paired (the old identity is replaced)')
    .action(
      action(async (opts: { config: string; token?: string; tokenFile?: string; force?: boolean }) => {
        const cfg = loadConnectorConfig(opts.config);
        const token = await readToken(opts);
        const r = await pairConnector(cfg, new ConnectorStateStore(cfg.stateDir), token, { force: opts.force === true });
        process.stdout.write(`${r.connectorId}\n`);
        process.stderr.write(`paired with ${r.cloudUrl} as ${r.connectorId} (tenant ${r.tenant}, group ${r.group})\n`);
      }),
    );

  connector
    .command('run')
    .description('run the connector daemon')
    .requiredOption('-c, --config <file>', 'connector config file (JSON)')
    .action(
      action(async (opts: { config: string }) => {
        const cfg = loadConnectorConfig(opts.config);
        const logger = createLogger({ component: 'connector', level: cfg.logLevel });
        const daemon = await ConnectorDaemon.start(cfg, { logger });
        onTerminate(() => daemon.shutdown(), (m) => logger.info(m));
      }),
    );
}
