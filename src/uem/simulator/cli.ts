/** `uemlink simulate-uem`: runs a simulated on-premises UEM server for demos, tests and benchmarks. */
import { request } from 'node:https';
import { Option, type Command } from 'commander';
import { parseHostPort } from '../../common/config.js';
import { UemlinkError } from '../../common/errors.js';
import { createLogger } from '../../common/log.js';
import { action, becomeDaemon, onTerminate, wholeNumber } from '../../cli/common.js';
import { CONTROL_PATH } from './faults.js';
import { startSimulator, type RunningSimulator } from './server.js';
import { SIMULATOR_VENDORS, type SimulatorVendor } from './state.js';

interface SimulateUemOptions {
  vendor: SimulatorVendor;
  listen: string;
  state: string;
  devices?: string;
  seed?: string;
  tokenTtl?: string;
  quotaPerMinute?: string;
  faults?: string;
}


/**
 * Sets the fault modes of a running simulator through its own control endpoint, so `--faults` is
 * checked by exactly the rules of `PUT /_simulator/faults`. Resolves with what the simulator applied.
 */
function putFaults(sim: RunningSimulator, json: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${sim.url}${CONTROL_PATH}/faults`,
      {
        method: 'PUT',
        ca: sim.caPem,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), 'x-simulator-control': sim.credentials.controlToken },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body: { message?: unknown } | undefined;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message?: unknown };
          } catch {
            body = undefined;
          }
          if (res.statusCode === 200) resolve(body);
          else reject(new UemlinkError('USAGE', `--faults: ${typeof body?.message === 'string' ? body.message : `the simulator answered HTTP ${res.statusCode}`}`));
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(json);
  });
}

export function simulateUemCommand(program: Command): void {
  program
    .command('simulate-uem')
    .description('run a simulated UEM server (HTTPS) with a seeded fleet; prints where its CA and credentials are')
    .addOption(new Option('--vendor <vendor>', 'which UEM to simulate').choices(SIMULATOR_VENDORS).makeOptionMandatory())
    .requiredOption('--listen <host:port>', 'address to listen on, e.g. 127.0.0.1:8443 (port 0 picks a free one)')
    .requiredOption('--state <dir>', 'directory for the CA, server certificate and credentials (created 0700, reused)')
    .option('--devices <n>', 'number of simulated devices (default 200)')
    .option('--seed <n>', 'seed of the generated data (default 1)')
    .option('--token-ttl <seconds>', 'lifetime of OAuth tokens (default 3600)')
    .option('--quota-per-minute <n>', 'answer 429 beyond this many API requests per minute (default: no quota)')
    .option(
      '--faults <json>',
      'start with fault modes set, e.g. \'{"latencyMs":200,"truncatePages":true}\' (keys: latencyMs, serverErrors, rateLimit, truncatePages, flapDevices, authExpired); change them later with PUT /_simulator/faults',
    )
    .action(
      action(async (opts: SimulateUemOptions) => {
        becomeDaemon(); // from its first line: a stdout lost while it starts must not end it
        const listen = parseHostPort(opts.listen);
        if (!listen) throw new UemlinkError('USAGE', `--listen: must be "HOST:PORT" (IPv6 as "[::1]:PORT"), not "${opts.listen}"`);
        const devices = wholeNumber('--devices', opts.devices, 0, 1_000_000);
        const seed = wholeNumber('--seed', opts.seed, 0, 0xffffffff);
        const tokenTtlSeconds = wholeNumber('--token-ttl', opts.tokenTtl, 1, 7 * 86_400);
        const quotaPerMinute = wholeNumber('--quota-per-minute', opts.quotaPerMinute, 1, 10_000_000);
        if (opts.faults !== undefined) {
          // Checked before anything starts: '[]' or 'null' passed the JSON parse and failed only
          // after the simulator had started and logged where it listens.
          let parsed: unknown;
          try {
            parsed = JSON.parse(opts.faults);
          } catch {
            parsed = undefined;
          }
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UemlinkError('USAGE', '--faults: must be a JSON object, e.g. \'{"serverErrors":3}\'');
        }
        const logger = createLogger({ component: 'uem-simulator' });
        const sim = await startSimulator({
          vendor: opts.vendor,
          listen,
          stateDir: opts.state,
          logger,
          ...(devices === undefined ? {} : { devices }),
          ...(seed === undefined ? {} : { seed }),
          ...(tokenTtlSeconds === undefined ? {} : { tokenTtlSeconds }),
          ...(quotaPerMinute === undefined ? {} : { quotaPerMinute }),
        });
        let faults: unknown;
        if (opts.faults !== undefined) {
          try {
            faults = await putFaults(sim, opts.faults);
          } catch (e) {
            await sim.close();
            throw e;
          }
        }
        // Where things are, never the secrets themselves: they stay in the 0600 credentials file.
        process.stderr.write(
          `${opts.vendor} UEM simulator listening on ${sim.url} (API ${sim.baseUrl}${sim.tokenUrl ? `, token endpoint ${sim.tokenUrl}` : ', no OAuth2: basic credentials only'})\n` +
            `  CA certificate to trust: ${sim.caFile}\n` +
            `  credentials:             ${sim.credentialsFile}\n` +
            `  fault control:           GET/PUT ${sim.url}${CONTROL_PATH}/faults with header x-simulator-control: <"controlToken" in ${sim.credentialsFile}>\n` +
            (faults === undefined ? '' : `  faults:                  ${JSON.stringify(faults)}\n`),
        );
        onTerminate(() => sim.close(), (m) => logger.info(m));
      }),
    );
}
