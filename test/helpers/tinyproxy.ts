/**
 * A real corporate proxy for tests: Debian's tinyproxy on 127.0.0.1 with Basic authentication,
 * started and stopped by the test (CI installs the package).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, sleep, tempDir } from './procs.js';

export const TINYPROXY = '/usr/bin/tinyproxy';

export interface Tinyproxy {
  port: number;
  user: string;
  password: string;
  /** http://127.0.0.1:PORT (no credentials). */
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  log(): string;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export function tinyproxyAvailable(): boolean {
  return existsSync(TINYPROXY);
}

export async function startTinyproxy(opts: { user?: string; password?: string } = {}): Promise<Tinyproxy> {
  const dir = tempDir('uemlink-tinyproxy-');
  chmodSync(dir, 0o777); // tinyproxy drops to "nobody" and writes its log here
  const port = await freePort();
  const user = opts.user ?? 'proxyuser';
  const password = opts.password ?? 'proxy-Pa55word';
  const conf = join(dir, 'tinyproxy.conf');
  const logFile = join(dir, 'tinyproxy.log');
  writeFileSync(
    conf,
    [
      ...(process.getuid?.() === 0 ? ['User nobody', 'Group nogroup'] : []),
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 600',
      'MaxClients 200',
      'Allow 127.0.0.1',
      `BasicAuth ${user} ${password}`,
      'DisableViaHeader Yes',
      'LogLevel Info',
      `LogFile "${logFile}"`,
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const p: Tinyproxy = {
    port,
    user,
    password,
    url: `http://127.0.0.1:${port}`,
    async start() {
      child = spawn(TINYPROXY, ['-d', '-c', conf], { stdio: 'ignore' });
      for (let i = 0; i < 100; i++) {
        if (await accepts(port)) return;
        await sleep(50);
      }
      throw new Error('tinyproxy did not start');
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const c = child;
      await new Promise<void>((r) => {
        c.once('exit', () => r());
        c.kill('SIGKILL');
      });
    },
    log() {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
  };
  await p.start();
  process.on('exit', () => child?.kill('SIGKILL'));
  return p;
}
