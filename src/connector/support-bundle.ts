/**
 * Support bundles: one .tar.gz with what support staff need to tell what is wrong — status,
 * diagnostics, the redacted config, recent logs and the audit log's tail, versions and system facts.
 * Every text that goes in is redacted (secret keys, every secret value the process loaded, and the
 * shapes of tokens, keys and credentials), so a bundle can be mailed.
 */
import { open as fsOpen, readFile } from 'node:fs/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { redact, redactString } from '../common/redact.js';
import { VERSION } from '../common/version.js';
import { formatDiagnosis, type Diagnosis } from './diagnose.js';
import type { ConnectorStatus, SystemFacts } from './status.js';

export interface BundleInput {
  configFile: string;
  /** Why the config does not validate, when it does not: then it is left out (see redactedConfig). */
  configError?: string;
  status: ConnectorStatus | { error: string };
  diagnosis: Diagnosis | { error: string };
  logFile?: string;
  auditFile?: string;
  system?: SystemFacts;
}

/** The last `maxLines` lines of a file, reading at most the last 4 MiB (logs can be large). */
export async function tail(file: string, maxLines: number): Promise<string> {
  const fh = await fsOpen(file, 'r');
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, 4 * 1024 * 1024);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n');
    if (len < size) lines.shift(); // a partial first line
    return lines.slice(-maxLines - 1).join('\n');
  } finally {
    await fh.close();
  }
}

async function redactedConfig(file: string, configError?: string): Promise<string> {
  // Left out too: a secret under a misspelt key ("passwrd") is neither named as one nor loaded.
  if (configError !== undefined) return `(${file} does not validate, so it is left out of the bundle: a secret under a misspelt key cannot be told apart. The error: ${configError})\n`;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return `(cannot read ${file}: ${(e as Error).message})\n`;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Left out: its secrets cannot be told apart in text that does not parse (a value in single
    // quotes, say, and one the running daemon never loaded, so not a registered secret either).
    // Nor is the parser's message given: it quotes the text around the error.
    return `(${file} is not valid JSON, so it is left out of the bundle: it may hold secrets. The connector refuses to start with it; \`uemlink connector\` commands name the problem.)\n`;
  }
  return `${JSON.stringify(redact(parsed), null, 2)}\n`;
}

export async function buildSupportBundle(input: BundleInput): Promise<Buffer> {
  const pack = tar.pack();
  const now = new Date();
  const files: Array<[string, string]> = [];
  const add = (name: string, text: string): void => void files.push([name, redactString(text)]);

  add(
    'README.txt',
    [
      `uemlink connector support bundle, made ${now.toISOString()}`,
      '',
      'status.json        what the local page shows (/api/status)',
      'diagnostics.txt    every check from this host to the cloud and each UEM, with hints (also .json)',
      'config.json        the connector config, secrets redacted',
      'logs/connector.log the last lines of the daemon log (when logFile is set)',
      'logs/audit.log     the last relayed calls',
      'versions.json      software versions',
      '',
      'Secrets (passwords, keys, tokens, client secrets) are redacted from every file.',
      '',
    ].join('\n'),
  );
  add('status.json', `${JSON.stringify(redact(input.status), null, 2)}\n`);
  add('diagnostics.json', `${JSON.stringify(redact(input.diagnosis), null, 2)}\n`);
  add('diagnostics.txt', 'checks' in input.diagnosis ? `${formatDiagnosis(input.diagnosis)}\n` : `${input.diagnosis.error}\n`);
  add('config.json', await redactedConfig(input.configFile, input.configError));
  for (const [name, file] of [
    ['logs/connector.log', input.logFile],
    ['logs/audit.log', input.auditFile],
  ] as const) {
    if (!file) continue;
    try {
      add(name, await tail(file, 2000));
    } catch (e) {
      add(name, `(cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})\n`);
    }
  }
  add('versions.json', `${JSON.stringify({ uemlink: VERSION, node: process.version, openssl: process.versions.openssl, platform: `${process.platform} ${process.arch}` }, null, 2)}\n`);
  if (input.system) add('system.json', `${JSON.stringify(input.system, null, 2)}\n`);

  for (const [name, text] of files) pack.entry({ name: `uemlink-support/${name}`, mode: 0o600, mtime: now }, text);
  pack.finalize();
  const gz = pack.pipe(createGzip());
  const chunks: Buffer[] = [];
  for await (const c of gz) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
