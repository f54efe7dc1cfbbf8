/**
 * Real processes on loopback for end-to-end tests: the `uemlink` CLI as users run it, with JSON log
 * lines captured, free ports, temp dirs and guaranteed cleanup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requestJson } from '../../src/connector/http-json.js';
import { NODE_FLAGS } from '../../src/common/v8-tuning.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export function tempDir(prefix = 'uemlink-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const start = Date.now();
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${String(lastErr)})` : ''}`);
    await sleep(50);
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion. */
export function cli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string; /** run as this user and group id (root only) */ uid?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid }) });
    live.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`uemlink ${args.join(' ')} did not finish in time; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      live.delete(p);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface LogLine {
  level: string;
  message: string;
  [k: string]: unknown;
}

/** A long-running `uemlink` process with its output captured. */
export class Proc {
  readonly logs: LogLine[] = [];
  raw = '';
  stderr = '';
  private exited: Promise<number | null>;
  exitCode: number | null | undefined;

  /** `wrap` prefixes the command, e.g. ['ip', 'netns', 'exec', NS] to run inside a namespace. */
  constructor(readonly args: string[], env: Record<string, string> = {}, wrap: string[] = []) {
    const [cmd, ...pre] = wrap.length > 0 ? wrap : [process.execPath];
    // The daemons as launched in production: with the node flags bin/uemlink and the image pass.
    const argv = wrap.length > 0 ? [...pre, process.execPath, ...NODE_FLAGS, CLI, ...args] : [...NODE_FLAGS, CLI, ...args];
    this.child = spawn(cmd!, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.child);
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      this.raw += d.toString();
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 'raw', message: line });
        }
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        live.delete(this.child);
        this.exitCode = code;
        resolve(code);
      }),
    );
  }
  readonly child: ChildProcess;

  get pid(): number {
    return this.child.pid!;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.exitCode === undefined) this.child.kill(signal);
  }

  wait(timeoutMs = 20_000): Promise<number | null> {
    return Promise.race([this.exited, sleep(timeoutMs).then(() => Promise.reject(new Error(`process ${this.args.join(' ')} did not exit within ${timeoutMs} ms`)))]);
  }

  async stop(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.kill('SIGKILL');
    await this.exited;
  }

  hasLog(pred: (l: LogLine) => boolean): boolean {
    return this.logs.some(pred);
  }

  waitLog(pred: (l: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> {
    return until(() => this.logs.find(pred), timeoutMs, `${what} in the log of ${this.args.slice(0, 2).join(' ')}`);
  }
}

export interface Cloud {
  proc: Proc;
  port: number;
  url: string;
  dir: string;
  configFile: string;
  api(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any; headers: Headers }>;
  restart(): Promise<void>;
}

export async function startCloud(
  opts: { dir?: string; port?: number; extra?: Record<string, unknown>; env?: Record<string, string>; host?: string; wrap?: string[]; scheme?: 'http' | 'https'; ca?: string } = {},
): Promise<Cloud> {
  const dir = opts.dir ?? tempDir('uemlink-cloud-');
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort());
  const url = `${opts.scheme ?? 'http'}://${host}:${port}`;
  const configFile = join(dir, 'cloud.json');
  writeFileSync(
    configFile,
    JSON.stringify({ listen: `${host}:${port}`, publicUrl: url, dataDir: './data', adminToken: ADMIN_TOKEN, logLevel: 'debug', ...opts.extra }, null, 2),
  );
  const cloud: Cloud = {
    proc: undefined as unknown as Proc,
    port,
    url,
    dir,
    configFile,
    async api(method, path, body, token = ADMIN_TOKEN) {
      if (opts.ca) {
        const r = await requestJson(`${url}${path}`, { method, ca: [opts.ca], headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { body }) });
        return { status: r.status, body: r.body, headers: new Headers() };
      }
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* keep text */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async restart() {
      cloud.proc = new Proc(['cloud', 'run', '--config', configFile], opts.env, opts.wrap);
      await until(
        async () => {
          if (cloud.proc.exitCode !== undefined) throw new Error(`cloud exited: ${cloud.proc.stderr}`);
          return (await httpGetStatus(`${url}/healthz`, opts.ca)) === 200;
        },
        15_000,
        'the cloud to listen',
      );
    },
  };
  await cloud.restart();
  return cloud;
}

export interface Connector {
  proc: Proc;
  dir: string;
  configFile: string;
  start(): Promise<void>;
  pair(token: string, extraArgs?: string[]): Promise<RunResult>;
}

export async function makeConnector(opts: { dir?: string; config?: Record<string, unknown>; env?: Record<string, string> } = {}): Promise<Connector> {
  const dir = opts.dir ?? tempDir('uemlink-connector-');
  const configFile = join(dir, 'connector.json');
  writeFileSync(
    configFile,
    JSON.stringify(
      {
        stateDir: './state',
        logLevel: 'debug',
        targets: [],
        ...opts.config,
        // A free port for the local page unless the test chose one; other health keys merge in.
        health: { listen: `127.0.0.1:${await freePort()}`, ...(opts.config?.health as Record<string, unknown> | undefined) },
      },
      null,
      2,
    ),
  );
  const c: Connector = {
    proc: undefined as unknown as Proc,
    dir,
    configFile,
    async start() {
      c.proc = new Proc(['connector', 'run', '--config', configFile], opts.env);
    },
    pair(token, extraArgs = []) {
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, token, { mode: 0o600 });
      return cli(['connector', 'pair', '--config', configFile, '--token-file', tokenFile, ...extraArgs], opts.env ? { env: opts.env } : {});
    },
  };
  return c;
}

/** Status code of a GET (trusting `ca` for https), 0 when unreachable. */
export async function httpGetStatus(url: string, ca?: string): Promise<number> {
  try {
    return (await requestJson(url, { method: 'GET', timeoutMs: 3000, ...(ca ? { ca: [ca] } : {}) })).status;
  } catch {
    return 0;
  }
}

export async function connectorEntry(cloud: Cloud, id: string): Promise<any> {
  const r = await cloud.api('GET', '/api/v1/connectors');
  return (r.body.connectors as Array<{ id: string }>).find((c) => c.id === id);
}
