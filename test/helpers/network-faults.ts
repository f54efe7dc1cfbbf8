/**
 * Loopback stand-ins for network conditions the fault proxy does not model (written in the
 * adverse-network review), and a reader of the connector's local status page.
 *
 * - `blackHole()`: a port whose SYNs are dropped without an answer, as a host that vanished or a
 *   firewall that drops: a listener with a backlog of 1 in a child process that is then stopped
 *   (SIGSTOP), its accept queue filled. connect() to it neither succeeds nor fails (Linux retries
 *   the SYN for ~130 s), on loopback, with no iptables.
 * - `silentProxy()`: accepts TCP, reads what it is sent, never answers (a stuck proxy, or one whose
 *   own connection to the cloud hangs). `answering()` answers the CONNECT with a status of choice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Connector } from './procs.js';

export interface BlackHole {
  port: number;
  close(): Promise<void>;
}

export async function blackHole(): Promise<BlackHole> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['-e', "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>console.log(s.address().port))"],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  process.kill(child.pid!, 'SIGSTOP');
  // Fill the accept queue (backlog 1): from now on the kernel drops SYNs silently.
  const fill: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    fill.push(s);
  }
  await new Promise((r) => setTimeout(r, 300));
  const onExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', onExit);
  return {
    port,
    async close() {
      for (const s of fill) s.destroy();
      process.off('exit', onExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((r) => {
        child.once('exit', () => r());
        child.kill('SIGKILL');
      });
    },
  };
}

export interface FakeProxy {
  url: string;
  /** Connections accepted so far. */
  accepted: number;
  /** CONNECT request lines received. */
  connects: string[];
  close(): Promise<void>;
}

/** A proxy that reads the CONNECT and then never answers (and never closes). */
export function silentProxy(): Promise<FakeProxy> {
  return fakeProxy(() => undefined);
}

/** A proxy that answers every CONNECT with `status reason` and a small HTML body, then closes. */
export function answeringProxy(status: number, reason: string): Promise<FakeProxy> {
  return fakeProxy(() => {
    const body = `<html><body>${status} ${reason}</body></html>`;
    return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/html\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
  });
}

async function fakeProxy(answer: () => string | undefined): Promise<FakeProxy> {
  const sockets = new Set<Socket>();
  const p: FakeProxy = { url: '', accepted: 0, connects: [], close: async () => {} };
  const server: Server = createServer((s) => {
    p.accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let head = '';
    s.on('data', (d: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      p.connects.push(head.split('\r\n')[0]!);
      const a = answer();
      if (a !== undefined) s.end(a);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  p.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  p.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(() => r()));
  };
  return p;
}

/** The connector's GET /api/status (its local page, from its config's health.listen). */
export async function statusOf(c: Connector): Promise<any> {
  const cfg = JSON.parse(readFileSync(c.configFile, 'utf8')) as { health: { listen: string } };
  const r = await fetch(`http://${cfg.health.listen}/api/status`);
  return r.json();
}

/** Rewrites keys of the connector's config (after pairing, before start). */
export function patchConfig(c: Connector, patch: Record<string, unknown>): void {
  const cfg = JSON.parse(readFileSync(c.configFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(c.configFile, JSON.stringify({ ...cfg, ...patch }, null, 2));
}
