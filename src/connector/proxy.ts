/**
 * The corporate proxy between the connector and the cloud: from config (proxy.url) or the usual
 * environment (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, either case). Loopback is never proxied. Only
 * the cloud connection goes through it; the UEM is reached directly on the local network.
 */
import type { Agent } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { isLoopbackHost } from '../common/config.js';
import { trustContext } from '../common/tls-trust.js';
import { secrets } from '../common/redact.js';

export interface ProxyConfig {
  url: string;
  noProxy: string[];
}

function env(name: string): string | undefined {
  return process.env[name] ?? process.env[name.toLowerCase()];
}

/** A NO_PROXY entry without its port: "[v6]:port", "[v6]", "host:port"; a bare IPv6 address as it is. */
function entryHost(raw: string): string {
  const e = raw.trim().toLowerCase();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(e);
  if (bracketed) return bracketed[1]!;
  if (isIP(e) === 6) return e; // its last group is not a port
  return e.replace(/:\d+$/, '');
}

/** An IP address in one spelling (IPv6 groups expanded), for comparing. */
function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1); // WHATWG's IPv6 serializer: one spelling per address
}

/**
 * NO_PROXY semantics as curl has them: "*", exact hosts, ".domain" or "domain" suffixes, IP addresses
 * (IPv6 bare or in brackets) and CIDR blocks; ports ignored.
 */
export function bypassesProxy(host: string, noProxy: string[]): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (isLoopbackHost(h)) return true;
  const hIp = isIP(h) ? canonicalIp(h) : undefined;
  for (const raw of noProxy) {
    const e = entryHost(raw);
    if (!e) continue;
    if (e === '*') return true;
    if (isIP(e)) {
      if (hIp !== undefined && canonicalIp(e) === hIp) return true;
      continue;
    }
    if (e.includes('/')) {
      if (hIp !== undefined && inCidr(hIp, e)) return true;
      continue;
    }
    const d = e.startsWith('.') ? e.slice(1) : e.startsWith('*.') ? e.slice(2) : e;
    if (h === d || h.endsWith(`.${d}`)) return true;
  }
  return false;
}

/** Is the address `ip` inside `cidr` ("10.0.0.0/8", "fd00::/8")? False for anything unparsable. */
function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (!base || !Number.isInteger(bits) || isIP(base) === 0 || isIP(base) !== isIP(ip)) return false;
  const blocks = new BlockList();
  try {
    blocks.addSubnet(base, bits, isIP(base) === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return false;
  }
  return blocks.check(ip, isIP(ip) === 4 ? 'ipv4' : 'ipv6');
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
 * the traffic). `ca` (cloud.caFile) is trusted for an https:// proxy's own certificate on top of the
 * system CAs, as everywhere else: given as `ca` alone it replaced them, and a proxy with a public
 * certificate failed (SELF_SIGNED_CERT_IN_CHAIN) as soon as cloud.caFile was set.
 */
export function proxyAgent(proxyUrl: string, ca?: string[]): Agent {
  return new BoundedProxyAgent(proxyUrl, { keepAlive: false, ...(ca ? { secureContext: trustContext(ca) } : {}) }) as unknown as Agent;
}

/**
 * https-proxy-agent waits for the proxy's answer to CONNECT with nothing tied to the request: a
 * dial given up (its deadline, a stop) left the socket to a proxy that never answers open for
 * good, one per attempt. Here a request closed or aborted before the answer destroys that socket (through
 * the `signal` of net.connect, or of tls.connect for an https:// proxy, read when the socket is made).
 */
class BoundedProxyAgent extends HttpsProxyAgent<string> {
  override async connect(req: Parameters<HttpsProxyAgent<string>['connect']>[0], opts: Parameters<HttpsProxyAgent<string>['connect']>[1]): ReturnType<HttpsProxyAgent<string>['connect']> {
    const ac = new AbortController();
    const onClose = (): void => ac.abort();
    // 'abort': a request aborted before it has a socket emits no 'close' (ws aborts on a deadline).
    req.once('close', onClose);
    req.once('abort', onClose);
    req.once('proxyConnect', () => {
      req.off('close', onClose);
      req.off('abort', onClose);
    });
    (this.connectOpts as { signal?: AbortSignal }).signal = ac.signal;
    return super.connect(req, opts);
  }
}

/** The proxy's address without credentials, for messages. */
export function proxyLabel(proxyUrl: string): string {
  const u = new URL(proxyUrl);
  return `${u.protocol}//${u.host}`;
}
