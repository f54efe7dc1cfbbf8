/**
 * The corporate proxy between the connector and the cloud: from config (proxy.url) or the usual
 * environment (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, either case). Loopback is never proxied. Only
 * the cloud connection goes through it; the UEM is reached directly on the local network.
 */
import type { Agent } from 'node:http';
import { isIP } from 'node:net';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { isLoopbackHost } from '../common/config.js';
import { secrets } from '../common/redact.js';

export interface ProxyConfig {
  url: string;
  noProxy: string[];
}

function env(name: string): string | undefined {
  return process.env[name] ?? process.env[name.toLowerCase()];
}

/** NO_PROXY semantics as curl has them: "*", exact hosts, ".domain" or "domain" suffixes, IPs; ports ignored. */
export function bypassesProxy(host: string, noProxy: string[]): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (isLoopbackHost(h)) return true;
  for (const raw of noProxy) {
    const e = raw.trim().toLowerCase().replace(/:\d+$/, '');
    if (!e) continue;
    if (e === '*') return true;
    if (isIP(e) && e === h) return true;
    const d = e.startsWith('.') ? e.slice(1) : e.startsWith('*.') ? e.slice(2) : e;
    if (h === d || h.endsWith(`.${d}`)) return true;
  }
  return false;
}

/** The proxy URL to use for `targetUrl`, or undefined for a direct connection. */
export function proxyFor(targetUrl: string, cfg: ProxyConfig | undefined): string | undefined {
  const u = new URL(targetUrl);
  const secure = u.protocol === 'https:' || u.protocol === 'wss:';
  const proxy = cfg?.url ?? (secure ? env('HTTPS_PROXY') : env('HTTP_PROXY'));
  if (!proxy) return undefined;
  const noProxy = cfg ? cfg.noProxy : (env('NO_PROXY') ?? '').split(',');
  if (bypassesProxy(u.hostname, noProxy)) return undefined;
  const p = new URL(proxy);
  if (p.password) secrets.add(decodeURIComponent(p.password));
  return proxy;
}

/**
 * An agent that tunnels through the proxy with CONNECT (also for plain ws://, so the proxy never sees
 * the traffic). `ca` also applies to an https:// proxy's own certificate.
 */
export function proxyAgent(proxyUrl: string, ca?: string[]): Agent {
  return new HttpsProxyAgent(proxyUrl, { keepAlive: false, ...(ca ? { ca } : {}) }) as unknown as Agent;
}

/** The proxy's address without credentials, for messages. */
export function proxyLabel(proxyUrl: string): string {
  const u = new URL(proxyUrl);
  return `${u.protocol}//${u.host}`;
}
