/**
 * A network namespace of the test's own, joined to the host by a veth pair on a private /30: a
 * "remote" address that is not loopback (so proxies apply) without touching any real network.
 * Needs root (CAP_NET_ADMIN); `available()` says whether this machine allows it.
 */
import { execFileSync } from 'node:child_process';

export interface Netns {
  name: string;
  hostIp: string;
  nsIp: string;
  /** Prefix for spawning a command inside the namespace. */
  wrap: string[];
  destroy(): void;
}

let seq = 0;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

export function netnsAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = `uemprobe${process.pid}`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return true;
  } catch {
    return false;
  }
}

export function createNetns(): Netns {
  const n = (process.pid % 200) + 1;
  const k = ++seq;
  const name = `uemlink${process.pid}x${k}`;
  const host = `vuh${process.pid % 100000}${k}`;
  const peer = `vun${process.pid % 100000}${k}`;
  const base = `10.${200 + (k % 50)}.${n}`;
  const hostIp = `${base}.1`;
  const nsIp = `${base}.2`;
  ip('netns', 'add', name);
  try {
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
    ip('link', 'set', peer, 'netns', name);
    ip('addr', 'add', `${hostIp}/30`, 'dev', host);
    ip('link', 'set', host, 'up');
    ip('netns', 'exec', name, 'ip', 'addr', 'add', `${nsIp}/30`, 'dev', peer);
    ip('netns', 'exec', name, 'ip', 'link', 'set', peer, 'up');
    ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (e) {
    try {
      ip('netns', 'del', name);
    } catch {
      /* best effort */
    }
    throw e;
  }
  return {
    name,
    hostIp,
    nsIp,
    wrap: ['ip', 'netns', 'exec', name],
    destroy() {
      try {
        ip('link', 'del', host);
      } catch {
        /* gone with the namespace */
      }
      try {
        ip('netns', 'del', name);
      } catch {
        /* already gone */
      }
    },
  };
}
