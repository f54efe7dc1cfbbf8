/** `uemlink connector ...` */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { UemlinkError, fileProblem } from '../common/errors.js';
import { parseHostPort, resolveFrom } from '../common/config.js';
import { writePrivateFile } from '../common/fs-secure.js';
import { RecentProblems, createLogger, reopenLogFiles, silentLogger } from '../common/log.js';
import { secrets } from '../common/redact.js';
import { diagnoseOffline, runConnector } from '../connector/app.js';
import { loadConnectorConfig, type ConnectorConfig } from '../connector/config.js';
import { formatDiagnosis } from '../connector/diagnose.js';
import { requestJson } from '../connector/http-json.js';
import { systemFacts, type ConnectorStatus } from '../connector/status.js';
import { buildSupportBundle } from '../connector/support-bundle.js';
import { pairConnector } from '../connector/pair.js';
import { ConnectorStateStore } from '../connector/state.js';
import { action, becomeDaemon, logMissingNodeFlags, onHangup, onTerminate, uninterrupted } from './common.js';

/** A --token-file value that is probably a pasted token: ulpt…, or long with no path separator. */
function looksLikeToken(v: string): boolean {
  return /^ulpt/i.test(v) || (v.length > 40 && !v.includes('/'));
}

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
      const code = (e as NodeJS.ErrnoException).code;
      // Pairing runs as the service user (docs/runbook.md): a token left in root's home is not readable by it.
      const hint = code === 'EACCES' ? `; put it where user ${userInfo().username} can read it, or pass it in UEMLINK_PAIRING_TOKEN` : '';
      // A token pasted where its file was meant (one character off, so redaction by shape misses
      // it) must not be echoed: a name that looks like one is not repeated.
      const named = looksLikeToken(opts.tokenFile) ? '(a value that looks like a pairing token, not a file name)' : opts.tokenFile;
      // Never the message itself: it holds the path, which may be the pasted token.
      const why = fileProblem(e, code ?? 'cannot be read');
      throw new UemlinkError('USAGE', `--token-file ${named} cannot be read: ${why}${hint}`);
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
    .option('--token-file <file>', 'file holding the pairing token (without either flag: the UEMLINK_PAIRING_TOKEN environment variable)')
    .option('--force', 'pair again even if already paired (the old identity is replaced)')
    .action(
      action(async (opts: { config: string; token?: string; tokenFile?: string; force?: boolean }) => {
        // The token (a flag) first: a usage error is exit 2 whatever the config, not 78.
        const token = await readToken(opts);
        const cfg = loadConnectorConfig(opts.config);
        const r = await uninterrupted('finishing the pairing (stopped now, the token would be used up and this connector left unpaired)', () =>
          pairConnector(cfg, new ConnectorStateStore(cfg.stateDir), token, { force: opts.force === true }),
        );
        process.stdout.write(`${r.connectorId}\n`);
        const replaced = !r.replaced
          ? ''
          : r.replaced.revoked
            ? `the previous identity ${r.replaced.connectorId} is revoked in the cloud\n`
            : `warning: the cloud did not retire the previous identity ${r.replaced.connectorId} (${r.replaced.reason}): revoke it there (DELETE /api/v1/connectors/${r.replaced.connectorId})\n`;
        // A shell's HTTPS_PROXY is not the service's: paired here, the service would dial directly and fail.
        const proxy = r.proxyFromEnvironment
          ? `warning: pairing went through the proxy ${r.proxyFromEnvironment} from this shell's environment (HTTPS_PROXY or HTTP_PROXY), which the service does not see: set proxy.url in ${opts.config} for the tunnel\n`
          : '';
        process.stderr.write(
          `paired with ${r.cloudUrl} as ${r.connectorId} (tenant ${r.tenant}, group ${r.group})\n` +
            replaced +
            proxy +
            'next: a running connector takes up this identity within seconds; otherwise start it (systemctl start uemlink-connector), then check it with `uemlink connector status`\n',
        );
      }),
    );

  connector
    .command('run')
    .description('run the connector daemon and its local page')
    .requiredOption('-c, --config <file>', 'connector config file (JSON)')
    .action(
      action(async (opts: { config: string }) => {
        becomeDaemon();
        const cfg = loadConnectorConfig(opts.config);
        const recent = new RecentProblems(50);
        const logger = createLogger({ component: 'connector', level: cfg.logLevel, recent, ...(cfg.logFile ? { file: { path: cfg.logFile } } : {}) });
        logMissingNodeFlags((m, meta) => logger.info(m, meta));
        // Signals are handled from the first moment: the tunnel may be up before the local page is, and
        // a SIGTERM in that window must still drain rather than kill the process mid-stream.
        const starting = runConnector(cfg, logger, recent);
        onTerminate(async () => (await starting).shutdown(), (m) => logger.info(m));
        onHangup(() => {
          reopenLogFiles();
          void starting.then((c) => c.daemon.reopenFiles(), () => {});
        }, (m) => logger.info(m));
        await starting;
      }),
    );

  connector
    .command('status')
    .description("print the running connector's status (from its local page); exit 1 when not ready")
    .requiredOption('-c, --config <file>', 'connector config file (JSON)')
    .option('--json', 'print /api/status as JSON')
    .action(
      action(async (opts: { config: string; json?: boolean }) => {
        const status = await fetchStatus(pageOf(opts.config));
        process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, opts.config));
        process.exitCode = status.ready ? 0 : 1;
      }),
    );

  connector
    .command('diagnose')
    .description('check every step to the cloud and to each UEM, with hints; exit 0 only if all pass')
    .requiredOption('-c, --config <file>', 'connector config file (JSON)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { config: string; json?: boolean }) => {
        const cfg = loadConnectorConfig(opts.config);
        const d = await diagnoseOffline(cfg, silentLogger());
        process.stdout.write(opts.json ? `${JSON.stringify(d, null, 2)}\n` : `${formatDiagnosis(d)}\n`);
        process.exitCode = d.ok ? 0 : 1;
      }),
    );

  connector
    .command('support-bundle')
    .description('write a .tar.gz for support staff: status, diagnostics, redacted config, recent logs')
    .requiredOption('-c, --config <file>', 'connector config file (JSON)')
    .requiredOption('-o, --output <file>', 'where to write the bundle')
    .action(
      action(async (opts: { config: string; output: string }) => {
        let cfg: ConnectorConfig;
        try {
          cfg = loadConnectorConfig(opts.config);
        } catch (e) {
          // A bundle is asked for when something is wrong, a bad edit of the config included: made
          // anyway, with the error, the config as it is and the running connector's status.
          if (!(e instanceof UemlinkError) || e.code !== 'CONFIG_INVALID') throw e;
          const raw = rawConfig(opts.config);
          const stateDir = typeof raw?.stateDir === 'string' ? resolveFrom(opts.config, raw.stateDir) : undefined;
          const buf = await buildSupportBundle({
            configFile: opts.config,
            configError: e.message,
            // pageOf throws at once for a health section it cannot read: inside the promise, so that
            // the bundle is still made.
            status: await Promise.resolve().then(() => fetchStatus(pageOf(opts.config))).catch((err: unknown) => ({ error: `the running connector's status is unavailable: ${(err as Error).message}` })),
            diagnosis: { error: `not run: the config is invalid: ${e.message}` },
            ...(stateDir ? { system: await systemFacts(stateDir), auditFile: typeof (raw?.audit as { file?: unknown })?.file === 'string' ? resolveFrom(opts.config, (raw!.audit as { file: string }).file) : `${stateDir}/audit.log` } : {}),
            ...(typeof raw?.logFile === 'string' ? { logFile: resolveFrom(opts.config, raw.logFile) } : {}),
          });
          await writePrivateFile(opts.output, buf, 'support bundle');
          process.stderr.write(`wrote ${opts.output} (${buf.length} bytes); the config is invalid (${e.message}): the bundle says so\n`);
          return;
        }
        const status = await fetchStatus(cfg).catch((e: unknown) => ({ error: `the running connector's status is unavailable: ${(e as Error).message}` }));
        const diagnosis = await diagnoseOffline(cfg, silentLogger()).catch((e: unknown) => ({ error: (e as Error).message }));
        const buf = await buildSupportBundle({
          configFile: cfg.file,
          status,
          diagnosis,
          auditFile: cfg.audit.file,
          system: await systemFacts(cfg.stateDir),
          ...(cfg.logFile ? { logFile: cfg.logFile } : {}),
        });
        await writePrivateFile(opts.output, buf, 'support bundle');
        process.stderr.write(`wrote ${opts.output} (${buf.length} bytes)\n`);
      }),
    );
}

/** What `status` needs of the config: where the local page listens, and its certificate. */
type PageAddress = { health: { listen: { host: string; port: number }; tls?: { cert: string } | undefined } };

/** The config file as JSON, or undefined. */
function rawConfig(file: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The local page's address from the config; from a config that does not validate (a typo in an
 * unrelated key), from its `health` section alone, with a warning: `status` and `support-bundle`
 * are what one runs after a bad edit, and they only need that.
 */
function pageOf(file: string): PageAddress {
  try {
    return loadConnectorConfig(file);
  } catch (e) {
    if (!(e instanceof UemlinkError) || e.code !== 'CONFIG_INVALID') throw e;
    const health = (rawConfig(file)?.health ?? {}) as { listen?: unknown; tls?: { certFile?: unknown } };
    const listen = parseHostPort(typeof health.listen === 'string' ? health.listen : '127.0.0.1:8081');
    if (!listen) throw e;
    let tls: { cert: string } | undefined;
    if (health.tls && typeof health.tls.certFile === 'string') {
      try {
        tls = { cert: readFileSync(resolveFrom(file, health.tls.certFile), 'utf8') };
      } catch {
        throw e;
      }
    }
    process.stderr.write(`uemlink: warning: ${e.message}; reading the running connector's status at the health.listen the file names\n`);
    return { health: { listen, tls } };
  }
}

/** GET /api/status from the running connector's local page. */
async function fetchStatus(cfg: PageAddress): Promise<ConnectorStatus> {
  const { host, port } = cfg.health.listen;
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const url = `${cfg.health.tls ? 'https' : 'http'}://${h.includes(':') ? `[${h}]` : h}:${port}/api/status`;
  try {
    // The page's own certificate, pinned: it may come from a CA and name the host, not loopback.
    const res = await requestJson(url, { method: 'GET', timeoutMs: 10_000, ...(cfg.health.tls ? { pinnedCertPem: cfg.health.tls.cert } : {}) });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    return res.body as ConnectorStatus;
  } catch (e) {
    throw new UemlinkError('NOT_FOUND', `cannot read the connector's status at ${url} (is it running?): ${(e as Error).message}`);
  }
}

function formatStatus(s: ConnectorStatus, configFile: string): string {
  const lines: string[] = [];
  const t = s.tunnel;
  lines.push(`connector  ${s.paired ? `${s.connectorId} (tenant ${s.tenant}, group ${s.group})` : 'not paired'}  version ${s.version}`);
  lines.push(`ready      ${s.ready ? 'yes' : `no — ${s.notReadyReason}`}`);
  lines.push(`tunnel     ${t.state}${t.since ? ` since ${t.since}` : ''}${t.rttMs !== null ? `, rtt ${t.rttMs} ms` : ''}${t.protocol !== null ? `, protocol ${t.protocol}` : ''}, ${t.reconnects} reconnects`);
  if (t.lastError) lines.push(`last error ${t.lastError.code}: ${t.lastError.message} (${t.lastError.at})`);
  for (const x of s.targets) {
    const cert = x.tls ? `, certificate until ${x.tls.notAfter.slice(0, 10)}${x.tls.expiringSoon ? ' (EXPIRES SOON)' : ''}` : '';
    const reach =
      x.reachable === null
        ? 'not checked yet'
        : !x.reachable
          ? `UNREACHABLE: ${x.error?.message ?? ''}`
          : x.checkStatus === 401 || x.checkStatus === 403
            ? `CREDENTIALS REJECTED (health check HTTP ${x.checkStatus}, ${x.latencyMs} ms)`
            : `reachable (${x.latencyMs} ms, HTTP ${x.lastStatus})`;
    lines.push(`target     ${x.id}  ${x.baseUrl}  ${reach}${cert}`);
  }
  for (const p of s.pendingTargets) lines.push(`pending    cloud-managed target ${p.id} → ${p.baseUrl}: approve or reject it on the local page`);
  // What to do, not only what is wrong.
  if (!s.ready) {
    const revoked = t.lastError?.code === 'TUNNEL_REVOKED';
    const next = !s.paired
      ? `pair it: uemlink connector pair --config ${configFile} --token-file FILE (a token from the cloud), or paste the pairing string on the local page`
      : revoked
        ? `pair it again with a new token (connector pair --force, or "Pair again" on the local page); \`uemlink connector diagnose --config ${configFile}\` checks the rest`
        : `uemlink connector diagnose --config ${configFile} checks each step to the cloud and to each UEM, with hints`;
    lines.push(`next       ${next}`);
  }
  return `${lines.join('\n')}\n`;
}
