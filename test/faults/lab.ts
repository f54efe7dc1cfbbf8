/**
 * The fault suite's bench: a real cloud and a real paired connector (both started through the CLI),
 * the connector's tunnel going through a FaultProxy of ours, a UEM of the test's own that records
 * what it executed, a bounded load generator, and the report every scenario adds a row to.
 *
 * What a scenario counts, per request: sent; answered by the UEM (a complete 2xx that carries the
 * request's own id back); answered with an error code (`x-uemlink-error` / JSON `error`, the UEM's
 * own non-2xx as `uem_<status>`, a transfer the client saw aborted as `aborted`, a connection that
 * failed before any answer as `net:<errno>`); hung (no answer head within the relay timeout + 5 s, or
 * a body idle that long); answered twice (an answer carrying another request's id); POSTs the UEM
 * executed more than once; and truncated bodies delivered as complete 200s. Pass: the last four are 0.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { ADMIN_TOKEN, connectorEntry, makeConnector, sleep, startCloud, tempDir, until, type Cloud, type Connector } from '../helpers/procs.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import type { createTestPki } from '../../src/common/pki.js';

/** The relay deadline used by every lab (cloud `relay.timeoutSeconds`). */
export const RELAY_TIMEOUT_MS = 5000;
/** A request with no answer (or a body idle) for this long is hung. */
export const HUNG_AFTER_MS = RELAY_TIMEOUT_MS + 5000;
/** Heartbeat of both sides (`tunnel.heartbeatSeconds`): a silent peer is dropped within two. */
export const HEARTBEAT_S = 1;

// ---------------------------------------------------------------------------------------------
// The UEM under load: answers by path, echoes the request id, records every POST it executes.

export interface LoadUem {
  up: Upstream;
  /** POST executions per request id. */
  posts: Map<string, number>;
  /** Requests received per request id (any method). */
  seen: Map<string, number>;
  /** Called for paths under /secure: return false to answer 401 (OAuth2 scenarios). */
  authorize: (req: IncomingMessage) => boolean;
}

function idOf(req: IncomingMessage): string {
  const v = req.headers['x-fault-id'];
  return typeof v === 'string' ? v : '';
}

export async function startLoadUem(pki?: ReturnType<typeof createTestPki>): Promise<LoadUem> {
  const u: LoadUem = { up: undefined as unknown as Upstream, posts: new Map(), seen: new Map(), authorize: () => true };
  u.up = await startUpstream({
    ...(pki ? { pki } : {}),
    handler: async (req, res) => {
      const id = idOf(req);
      u.seen.set(id, (u.seen.get(id) ?? 0) + 1);
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const url = new URL(req.url ?? '/', 'https://uem.invalid');
      let path = url.pathname;
      if (path.startsWith('/secure/')) {
        if (!u.authorize(req)) {
          const b = '{"errorCode":1005,"message":"token rejected"}';
          res.writeHead(401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b), 'x-fault-id': id });
          res.end(b);
          return;
        }
        path = path.slice('/secure'.length);
      }
      if (req.method === 'POST') u.posts.set(id, (u.posts.get(id) ?? 0) + 1);
      if (path === '/load/big') {
        // Streamed without Content-Length (chunked): only the terminating chunk says it is complete.
        const total = Number(url.searchParams.get('bytes') ?? 1_000_000);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-fault-id': id, 'x-fault-len': String(total) });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        let sent = 0;
        while (sent < total && !res.destroyed) {
          const n = Math.min(chunk.length, total - sent);
          sent += n;
          if (!res.write(chunk.subarray(0, n))) {
            await new Promise<void>((r) => {
              const go = (): void => {
                res.off('drain', go);
                res.off('close', go);
                r();
              };
              res.on('drain', go);
              res.on('close', go);
            });
          }
        }
        res.end();
        return;
      }
      const delay = path === '/load/slow' ? Number(url.searchParams.get('ms') ?? 400) : Math.floor(Math.random() * 15);
      if (delay > 0) await sleep(delay);
      const body = JSON.stringify({ id, method: req.method, path, got: Buffer.concat(chunks).length });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-fault-id': id, 'x-fault-len': String(Buffer.byteLength(body)) });
      res.end(body);
    },
  });
  return u;
}

// ---------------------------------------------------------------------------------------------
// Load generator.

export interface ReqSpec {
  method: 'GET' | 'POST';
  /** Relay path after /api/v1/relay/ (tenant/target/path…). */
  path: string;
  /** A tag for per-kind checks ("good", "fault", …). */
  tag: string;
}

export interface Outcome {
  id: string;
  spec: ReqSpec;
  /** ok = a complete 2xx from the UEM with our id. */
  kind: 'ok' | 'error' | 'uem' | 'aborted' | 'net' | 'hung';
  code: string;
  status?: number;
  startedAt: number;
  endedAt: number;
  /** The answer carried another request's id. */
  dup?: boolean;
  /** A 2xx that ended cleanly but shorter than the UEM said it sent. */
  truncated?: boolean;
}

export class Load {
  readonly outcomes: Outcome[] = [];
  private stopped = false;
  private workers: Promise<void>[] = [];
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private n = 0;

  constructor(
    private readonly o: {
      url: () => string;
      pick: (n: number) => ReqSpec;
      concurrency?: number;
      /** Pause between two requests of one worker. */
      pauseMs?: number;
    },
  ) {}

  start(): this {
    const c = this.o.concurrency ?? 8;
    for (let w = 0; w < c; w++) this.workers.push(this.worker());
    return this;
  }

  /** Stops issuing requests and waits for those in flight (each ends by itself within HUNG_AFTER_MS). */
  async stop(): Promise<Outcome[]> {
    this.stopped = true;
    await Promise.all(this.workers);
    this.agent.destroy();
    return this.outcomes;
  }

  private async worker(): Promise<void> {
    while (!this.stopped) {
      const o = await this.one(this.o.pick(this.n++));
      this.outcomes.push(o);
      // A refused connection fails in microseconds: back off so an outage is not a busy loop.
      await sleep(o.kind === 'net' ? 150 : (this.o.pauseMs ?? 10));
    }
  }

  one(spec: ReqSpec): Promise<Outcome> {
    const id = randomUUID();
    const startedAt = Date.now();
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      let responses = 0;
      const done = (o: Omit<Outcome, 'id' | 'spec' | 'startedAt' | 'endedAt'>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(hung);
        resolve({ id, spec, startedAt, endedAt: Date.now(), ...o });
      };
      const onHung = (): void => {
        done({ kind: 'hung', code: 'hung' });
        req.destroy();
      };
      let hung = setTimeout(onHung, HUNG_AFTER_MS);
      const body = spec.method === 'POST' ? JSON.stringify({ id, order: 'create' }) : undefined;
      const req = httpRequest(`${this.o.url()}/api/v1/relay/${spec.path}${spec.path.includes('?') ? '&' : '?'}rid=${id}`, {
        method: spec.method,
        agent: this.agent,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          'x-fault-id': id,
          ...(body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}),
        },
      });
      req.on('error', (e: NodeJS.ErrnoException) => done({ kind: 'net', code: `net:${e.code ?? e.message}` }));
      req.on('response', (res) => {
        if (++responses > 1) {
          done({ kind: 'error', code: 'second_response', dup: true });
          return;
        }
        const status = res.statusCode ?? 0;
        const relayError = res.headers['x-uemlink-error'];
        const expected = Number(res.headers['x-fault-len'] ?? NaN);
        const echoed = res.headers['x-fault-id'];
        const parts: Buffer[] = [];
        let got = 0;
        res.on('data', (c: Buffer) => {
          got += c.length;
          if (parts.length < 4) parts.push(c);
          clearTimeout(hung);
          hung = setTimeout(onHung, HUNG_AFTER_MS);
        });
        res.on('error', () => {});
        res.on('end', () => {
          const dup = echoed !== undefined && echoed !== id;
          if (typeof relayError === 'string') {
            let code = relayError;
            try {
              code = (JSON.parse(Buffer.concat(parts).toString()) as { error?: string }).error ?? relayError;
            } catch {
              /* keep the header's */
            }
            return done({ kind: 'error', code, status, dup });
          }
          const truncated = status >= 200 && status < 300 && Number.isFinite(expected) && got !== expected;
          if (status >= 200 && status < 300) return done({ kind: truncated ? 'error' : 'ok', code: truncated ? 'truncated' : 'ok', status, dup, truncated });
          // The UEM's own error answer (or the cloud's bare one, e.g. 400 from Node's parser).
          return done({ kind: 'uem', code: `uem_${status}`, status, dup });
        });
        res.on('close', () => {
          // Closed before 'end': the client saw the transfer abort (never a complete answer).
          if (!res.complete) done({ kind: 'aborted', code: 'aborted', status });
        });
      });
      req.end(body);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Tally and report.

export interface Tally {
  scenario: string;
  sent: number;
  uemAnswered: number;
  errors: Record<string, number>;
  hung: number;
  dup: number;
  postDup: number;
  truncated: number;
  seconds: number;
  notes: string[];
  pass?: boolean;
}

export function tally(scenario: string, outcomes: Outcome[], uem: LoadUem | undefined, seconds: number): Tally {
  const errors: Record<string, number> = {};
  let ok = 0;
  for (const o of outcomes) {
    if (o.kind === 'ok') ok++;
    else errors[o.code] = (errors[o.code] ?? 0) + 1;
  }
  const mine = new Set(outcomes.map((o) => o.id));
  let postDup = 0;
  if (uem) for (const [id, n] of uem.posts) if (mine.has(id) && n > 1) postDup++;
  return {
    scenario,
    sent: outcomes.length,
    uemAnswered: ok,
    errors,
    hung: outcomes.filter((o) => o.kind === 'hung').length,
    dup: outcomes.filter((o) => o.dup).length,
    postDup,
    truncated: outcomes.filter((o) => o.truncated).length,
    seconds,
    notes: [],
  };
}

const rows: Tally[] = [];

export function record(t: Tally): void {
  rows.push(t);
}

function fmtErrors(e: Record<string, number>): string {
  const k = Object.keys(e).sort();
  return k.length === 0 ? '-' : k.map((c) => `${c}:${e[c]}`).join(' ');
}

export function formatTable(ts: Tally[]): string {
  const head = ['scenario', 'sent', 'UEM answered', 'errors by code', 'hung', 'dup', 'POST dup', 'truncated', 'pass'];
  const body = ts.map((t) => [t.scenario, String(t.sent), String(t.uemAnswered), fmtErrors(t.errors), String(t.hung), String(t.dup), String(t.postDup), String(t.truncated), t.pass === false ? 'FAIL' : 'ok']);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
  return [line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

// One report for the whole run, whichever fault files ran (a root-level hook: runs once, last).
after(function () {
  if (rows.length === 0) return;
  process.stdout.write(`\nFault injection under relay load (relay timeout ${RELAY_TIMEOUT_MS / 1000} s, hung = no answer within ${HUNG_AFTER_MS / 1000} s)\n${formatTable(rows)}\n`);
  for (const r of rows) for (const n of r.notes) process.stdout.write(`  ${r.scenario}: ${n}\n`);
  try {
    const dir = join(process.cwd(), 'test-results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'faults.json'), `${JSON.stringify({ generatedAt: new Date().toISOString(), relayTimeoutMs: RELAY_TIMEOUT_MS, hungAfterMs: HUNG_AFTER_MS, scenarios: rows }, null, 2)}\n`);
  } catch (e) {
    process.stdout.write(`(could not write test-results/faults.json: ${(e as Error).message})\n`);
  }
});

// ---------------------------------------------------------------------------------------------
// The lab: cloud, tunnel proxy, paired connector.

export interface Lab {
  cloud: Cloud;
  /** Between the connector and the cloud. */
  tunnel: FaultProxy;
  conn: Connector;
  connectorId: string;
  uem: LoadUem;
  /** Default mix on the healthy target: GETs, slow GETs and POSTs. */
  mix(n: number): ReqSpec;
  load(pick?: (n: number) => ReqSpec, concurrency?: number): Load;
  /** A relayed GET answered 200 by the UEM: the whole path works again. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  waitConnected(timeoutMs?: number): Promise<void>;
  /** Runs one scenario under load and records its row; asserts the universal pass conditions. */
  scenario(name: string, s: ScenarioSpec): Promise<{ t: Tally; outcomes: Outcome[]; recoveredAt: number }>;
  logs(): string;
  stop(): Promise<void>;
}

export interface ScenarioSpec {
  pick?: (n: number) => ReqSpec;
  concurrency?: number;
  warmupMs?: number;
  fault: (load: Load) => Promise<void>;
  /** Wait for a relayed 200 after the fault (default true). */
  recover?: boolean;
  /** Load time after recovery. */
  afterMs?: number;
  /** Error codes that may occur (`net:*` allows any connection error); anything else fails. */
  allowed?: string[];
}

export interface LabOptions {
  targets?: (uem: LoadUem) => unknown[];
  connector?: Record<string, unknown>;
  cloud?: Record<string, unknown>;
  /** The connector's cloud URL (default: the tunnel proxy). */
  cloudUrl?: (cloud: Cloud, tunnel: FaultProxy) => string;
  connectorDir?: string;
  uem?: LoadUem;
  files?: Record<string, string>;
}

export async function startLab(o: LabOptions = {}): Promise<Lab> {
  const cloud = await startCloud({
    extra: {
      logLevel: 'info',
      relay: { timeoutSeconds: RELAY_TIMEOUT_MS / 1000 },
      tunnel: { heartbeatSeconds: HEARTBEAT_S },
      drainTimeoutSeconds: 10,
      ...o.cloud,
    },
  });
  const tunnel = await FaultProxy.start(cloud.port);
  const uem = o.uem ?? (await startLoadUem());
  const dir = o.connectorDir ?? tempDir('uemlink-fault-conn-');
  for (const [n, v] of Object.entries(o.files ?? {})) writeFileSync(join(dir, n), v, { mode: 0o600 });
  const targets = o.targets?.(uem) ?? [];
  const conn = await makeConnector({
    dir,
    config: {
      logLevel: 'info',
      cloudUrl: o.cloudUrl ? o.cloudUrl(cloud, tunnel) : tunnel.url,
      targets: [{ id: 'uem', baseUrl: uem.up.baseUrl, auth: { type: 'none' }, tls: { ca: uem.up.caPem }, timeoutMs: 3000 }, ...targets],
      tunnel: { heartbeatSeconds: HEARTBEAT_S },
      drainTimeoutSeconds: 10,
      health: { checkIntervalSeconds: 0 },
      ...o.connector,
    },
  });
  const t = await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' });
  const r = await conn.pair(t.body.token as string);
  if (r.code !== 0) throw new Error(`pairing failed: ${r.stderr}`);
  const connectorId = r.stdout.trim();
  await conn.start();

  const lab: Lab = {
    cloud,
    tunnel,
    conn,
    connectorId,
    uem,
    mix(n) {
      const k = n % 8;
      if (k === 0 || k === 4) return { method: 'POST', path: 'acme/uem/load/orders', tag: 'post' };
      if (k === 6) return { method: 'GET', path: 'acme/uem/load/slow?ms=400', tag: 'slow' };
      return { method: 'GET', path: 'acme/uem/load/small', tag: 'get' };
    },
    load(pick, concurrency) {
      return new Load({ url: () => cloud.url, pick: pick ?? lab.mix, ...(concurrency ? { concurrency } : {}) });
    },
    async waitConnected(timeoutMs = 20_000) {
      await until(async () => (await connectorEntry(cloud, connectorId))?.connected, timeoutMs, 'the connector to be connected');
    },
    async waitHealthy(timeoutMs = 30_000) {
      const probe = new Load({ url: () => cloud.url, pick: () => ({ method: 'GET', path: 'acme/uem/load/small', tag: 'probe' }) });
      await until(async () => (await probe.one({ method: 'GET', path: 'acme/uem/load/small', tag: 'probe' })).kind === 'ok', timeoutMs, 'a relayed request to succeed again');
    },
    async scenario(name, s) {
      const started = Date.now();
      const load = lab.load(s.pick, s.concurrency).start();
      let recoveredAt = 0;
      let failure: unknown;
      try {
        await sleep(s.warmupMs ?? 1000);
        await s.fault(load);
        if (s.recover !== false) await lab.waitHealthy();
        recoveredAt = Date.now();
        await sleep(s.afterMs ?? 1500);
      } catch (e) {
        failure = e;
      }
      const outcomes = await load.stop();
      const t = tally(name, outcomes, uem, Math.round((Date.now() - started) / 100) / 10);
      t.pass = failure === undefined && t.hung === 0 && t.dup === 0 && t.postDup === 0 && t.truncated === 0;
      record(t);
      if (failure) throw failure;
      expect(t.sent, 'requests sent').to.be.greaterThan(10);
      expect(t.hung, `${name}: hung requests`).to.equal(0);
      expect(t.dup, `${name}: answered twice / another request's answer`).to.equal(0);
      expect(t.postDup, `${name}: POSTs executed twice by the UEM`).to.equal(0);
      expect(t.truncated, `${name}: truncated bodies delivered as complete 200s`).to.equal(0);
      if (s.allowed) {
        const allowed = s.allowed;
        const unexpected = Object.keys(t.errors).filter((c) => !allowed.includes(c) && !(c.startsWith('net:') && allowed.includes('net:*')));
        expect(unexpected, `${name}: unexpected outcomes ${JSON.stringify(t.errors)}`).to.deep.equal([]);
      }
      if (s.recover !== false) {
        const after = outcomes.filter((x) => x.startedAt >= recoveredAt && x.kind === 'ok').length;
        expect(after, `${name}: requests answered by the UEM after recovery`).to.be.greaterThan(0);
      }
      return { t, outcomes, recoveredAt };
    },
    logs() {
      return `--- cloud ---\n${cloud.proc.raw.slice(-4000)}${cloud.proc.stderr}\n--- connector ---\n${conn.proc?.raw.slice(-6000) ?? ''}${conn.proc?.stderr ?? ''}\n`;
    },
    async stop() {
      await conn.proc?.stop();
      await cloud.proc.stop();
      await tunnel.close();
      if (!o.uem) await uem.up.close();
    },
  };
  await lab.waitConnected();
  return lab;
}

/** Makes a directory and returns it (for state-file scenarios). */
export function ensureDir(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}
