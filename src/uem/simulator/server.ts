/**
 * Runs a simulated UEM server over HTTPS: picks the vendor's app, keeps a CA, a server certificate and
 * the API credentials in a private state directory (reused across restarts, so a client configured
 * once keeps working), and listens. Tests, the demo and benchmarks start it in-process; the CLI
 * (`uemlink simulate-uem`) wraps it.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import type { Clock } from '../../common/clock.js';
import type { HostPort } from '../../common/config.js';
import { UemlinkError, messageOf } from '../../common/errors.js';
import { ensurePrivateDir, writePrivateFile } from '../../common/fs-secure.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { createTestPki, generateRsaKeyPair, issueCertificate } from '../../common/pki.js';
import { secrets } from '../../common/redact.js';
import { SIMULATOR_VENDORS, type SimulatorCredentials, type SimulatorState, type SimulatorVendor } from './state.js';
import type { WorkspaceOneState } from './workspace-one.js';
import { VENDOR_SIMULATORS, type VendorSimulator } from './vendors.js';

export const FILES = {
  ca: 'ca.pem',
  caKey: 'ca.key',
  cert: 'server.pem',
  key: 'server.key',
  credentials: 'credentials.json',
} as const;

/** Names the server certificate always covers; a specific listen host is added to them. */
const LOCAL_NAMES = ['localhost', '127.0.0.1', '::1'];

export interface StartSimulatorOptions {
  vendor: SimulatorVendor;
  listen: HostPort;
  stateDir: string;
  devices?: number;
  seed?: number;
  /** Fixed credentials (any subset); the rest come from credentials.json or are generated. */
  credentials?: Partial<SimulatorCredentials>;
  tokenTtlSeconds?: number;
  /** Enforced API requests per minute; off when absent. */
  quotaPerMinute?: number;
  /** Drives token expiry, quota windows, timestamps; tests pass a fake one. */
  clock?: Clock;
  logger?: Logger;
}

/** credentials.json: what a client needs to call the simulator. */
export interface SimulatorCredentialsFile extends SimulatorCredentials {
  tokenUrl: string;
  baseUrl: string;
}

export interface RunningSimulator<S extends SimulatorState = SimulatorState> {
  vendor: SimulatorVendor;
  /** Origin, e.g. https://127.0.0.1:8443. */
  url: string;
  /** Where the REST API lives, e.g. https://127.0.0.1:8443/API. */
  baseUrl: string;
  tokenUrl: string;
  port: number;
  /** The CA certificate a client must trust (PEM), and its file. */
  caPem: string;
  caFile: string;
  credentialsFile: string;
  credentials: SimulatorCredentialsFile;
  state: S;
  close(): Promise<void>;
}

export function startSimulator(opts: StartSimulatorOptions & { vendor: 'workspace-one' }): Promise<RunningSimulator<WorkspaceOneState>>;
export function startSimulator(opts: StartSimulatorOptions): Promise<RunningSimulator>;
export async function startSimulator(opts: StartSimulatorOptions): Promise<RunningSimulator> {
  if (!(SIMULATOR_VENDORS as readonly string[]).includes(opts.vendor)) {
    throw new UemlinkError('USAGE', `unknown UEM vendor "${String(opts.vendor)}" (known: ${SIMULATOR_VENDORS.join(', ')})`);
  }
  const logger = opts.logger ?? silentLogger();
  await ensurePrivateDir(opts.stateDir);
  const names = serverNames(opts.listen.host);
  const pki = await loadOrCreatePki(opts.stateDir, names);
  if (pki.created !== 'none') logger.info(pki.created === 'all' ? 'created the simulator CA and server certificate' : 'issued a new server certificate', { stateDir: opts.stateDir });
  const creds = await loadOrCreateCredentials(opts.stateDir, opts.credentials ?? {});
  for (const s of [creds.password, creds.apiKey, creds.clientSecret, creds.controlToken]) secrets.add(s);

  const { state, app, apiBase, tokenPath, deviceCount } = createVendor(opts, creds, logger);
  state.onRequest((r) => logger.debug('uem simulator request', { method: r.method, path: r.path, status: r.status, auth: r.auth, durationMs: Math.round(r.durationMs) }));
  const server = createServer({ key: pki.keyPem, cert: pki.certPem }, app);
  const port = await listen(server, opts.listen);

  const url = `https://${urlHost(opts.listen.host)}:${port}`;
  const credentials: SimulatorCredentialsFile = { ...creds, tokenUrl: tokenPath ? `${url}${tokenPath}` : '', baseUrl: `${url}${apiBase}` };
  const credentialsFile = join(opts.stateDir, FILES.credentials);
  await writePrivateFile(credentialsFile, `${JSON.stringify(credentials, null, 2)}\n`, 'simulator credentials');
  logger.info('uem simulator listening', { vendor: opts.vendor, url, caFile: join(opts.stateDir, FILES.ca), credentialsFile, devices: deviceCount });

  let closing: Promise<void> | undefined;
  return {
    vendor: opts.vendor,
    url,
    baseUrl: credentials.baseUrl,
    tokenUrl: credentials.tokenUrl,
    port,
    caPem: pki.caPem,
    caFile: join(opts.stateDir, FILES.ca),
    credentialsFile,
    credentials,
    state,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections (Node's default agent keeps them) would hold close() open.
        server.closeAllConnections();
      }).then(() => {
        logger.info('uem simulator stopped', { url });
      });
      return closing;
    },
  };
}

function createVendor(opts: StartSimulatorOptions, credentials: SimulatorCredentials, logger: Logger): VendorSimulator {
  return VENDOR_SIMULATORS[opts.vendor]({
    credentials,
    logger,
    ...(opts.devices === undefined ? {} : { devices: opts.devices }),
    ...(opts.seed === undefined ? {} : { seed: opts.seed }),
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    ...(opts.tokenTtlSeconds === undefined ? {} : { tokenTtlSeconds: opts.tokenTtlSeconds }),
    ...(opts.quotaPerMinute === undefined ? {} : { quotaPerMinute: opts.quotaPerMinute }),
  });
}

function serverNames(host: string): string[] {
  const wildcard = host === '' || host === '0.0.0.0' || host === '::';
  return wildcard || LOCAL_NAMES.includes(host) ? [...LOCAL_NAMES] : [...LOCAL_NAMES, host];
}

function urlHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return isIP(host) === 6 ? `[${host}]` : host;
}

function listen(server: Server, at: HostPort): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(new UemlinkError('INVALID_INPUT', `the UEM simulator cannot listen on ${at.host}:${at.port}: ${messageOf(e)}`, { cause: e }));
    server.once('error', onError);
    server.listen(at.port, at.host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

// ---- state files -------------------------------------------------------------------------------

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UemlinkError('STATE_UNREADABLE', `cannot read ${file}: ${messageOf(e)}`, { cause: e });
  }
}

interface Pki {
  caPem: string;
  certPem: string;
  keyPem: string;
  created: 'none' | 'server' | 'all';
}

/**
 * Reuses ca.pem/ca.key and server.pem/server.key. A missing CA makes a new CA and certificate; a
 * server certificate that is missing, not from this CA, expiring within a day or not covering
 * `names` is re-issued by the existing CA, so clients that trust ca.pem keep working.
 */
async function loadOrCreatePki(dir: string, names: string[]): Promise<Pki> {
  const f = (k: keyof typeof FILES): string => join(dir, FILES[k]);
  const caPem = await readIfExists(f('ca'));
  const caKey = await readIfExists(f('caKey'));
  if (!caPem || !caKey) {
    const p = createTestPki(names, { caName: 'uemlink UEM simulator CA' });
    await writePrivateFile(f('caKey'), p.caKeyPem, 'simulator CA key');
    await writePrivateFile(f('key'), p.keyPem, 'simulator server key');
    await writePrivateFile(f('cert'), p.certPem, 'simulator server certificate');
    await writePrivateFile(f('ca'), p.caCertPem, 'simulator CA certificate');
    return { caPem: p.caCertPem, certPem: p.certPem, keyPem: p.keyPem, created: 'all' };
  }
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(caPem);
  } catch (e) {
    throw new UemlinkError('STATE_CORRUPT', `${f('ca')} is not a PEM certificate (${messageOf(e)}); delete it and ${FILES.caKey} to create a new CA`);
  }
  const certPem = await readIfExists(f('cert'));
  const keyPem = await readIfExists(f('key'));
  if (certPem && keyPem && serverCertUsable(certPem, ca, names)) return { caPem, certPem, keyPem, created: 'none' };

  const kp = generateRsaKeyPair(2048);
  const cert = issueCertificate({
    subject: { CN: names[0]!, O: 'uemlink' },
    publicKeyPem: kp.publicKeyPem,
    issuerCertPem: caPem,
    signingKeyPem: caKey,
    days: 365,
    serverNames: names,
    serverAuth: true,
  });
  await writePrivateFile(f('key'), kp.privateKeyPem, 'simulator server key');
  await writePrivateFile(f('cert'), cert, 'simulator server certificate');
  return { caPem, certPem: cert, keyPem: kp.privateKeyPem, created: 'server' };
}

function serverCertUsable(pem: string, ca: X509Certificate, names: string[]): boolean {
  try {
    const c = new X509Certificate(pem);
    if (!c.verify(ca.publicKey)) return false;
    if (Date.parse(c.validTo) - Date.now() < 86_400_000) return false;
    return names.every((n) => (isIP(n) ? c.checkIP(n) !== undefined : c.checkHost(n) !== undefined));
  } catch {
    return false;
  }
}

const storedCredentials = z.object({
  username: z.string().min(1),
  password: z.string().min(1),
  apiKey: z.string().min(1),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  controlToken: z.string().min(1).default(() => randomBytes(18).toString('base64url')),
});

/** credentials.json's secrets when present (URLs are rewritten after listening), else new random ones. */
async function loadOrCreateCredentials(dir: string, given: Partial<SimulatorCredentials>): Promise<SimulatorCredentials> {
  const file = join(dir, FILES.credentials);
  const text = await readIfExists(file);
  let base: SimulatorCredentials;
  if (text === undefined) {
    base = {
      username: 'uemlink-api',
      password: randomBytes(18).toString('base64url'),
      // The vendor's REST API keys are 32 random bytes in base64 (44 characters).
      apiKey: randomBytes(32).toString('base64'),
      clientId: randomBytes(16).toString('hex'),
      clientSecret: randomBytes(32).toString('hex').toUpperCase(),
      controlToken: randomBytes(18).toString('base64url'),
    };
  } else {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new UemlinkError('STATE_CORRUPT', `${file} is not valid JSON; delete it to generate new credentials`);
    }
    const r = storedCredentials.safeParse(raw);
    if (!r.success) throw new UemlinkError('STATE_CORRUPT', `${file}: ${r.error.issues[0]!.path.join('.') || '(top level)'}: ${r.error.issues[0]!.message}; delete it to generate new credentials`);
    base = r.data;
  }
  const out = { ...base };
  for (const k of Object.keys(storedCredentials.shape) as Array<keyof SimulatorCredentials>) {
    const v = given[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
