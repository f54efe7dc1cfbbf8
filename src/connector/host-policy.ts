/**
 * Which hosts the cloud may make the connector reach (cloudManagedTargets.allowedHosts): exact host
 * names, "*.domain" wildcards (subdomains only, not the domain itself), IP addresses and CIDR blocks,
 * each optionally with a port ("uem.corp:443", "*.corp:8443", "10.0.0.0/8:443", "[fd00::/8]:443").
 * Without a port a pattern allows every port of its hosts: with one, a cloud cannot point a target at
 * another service of an allowed host (an admin API on :8443, a database speaking HTTP). CIDR rules
 * match IP-literal hosts; a host name is never resolved to decide (DNS can change between the check
 * and the connection).
 */
import { BlockList, isIP } from 'node:net';

const HOSTNAME_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** A pattern split into its host part and optional port; undefined when the port part is malformed. */
function splitPort(p: string): { host: string; port?: number } | undefined {
  let host = p;
  let port: string | undefined;
  if (p.startsWith('[')) {
    const end = p.indexOf(']');
    if (end < 0) return undefined;
    host = p.slice(1, end);
    const rest = p.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      port = rest.slice(1);
    }
  } else {
    const colon = p.lastIndexOf(':');
    // One colon: host:port. More: an IPv6 address or block, which needs brackets to take a port.
    if (colon >= 0 && p.indexOf(':') === colon) {
      host = p.slice(0, colon);
      port = p.slice(colon + 1);
    }
  }
  if (port === undefined) return { host };
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return undefined;
  return { host, port: Number(port) };
}

export function isHostPattern(raw: string): boolean {
  const split = splitPort(raw);
  if (!split) return false;
  if (split.port !== undefined && raw.startsWith('[') && !split.host.includes(':')) return false; // brackets are for IPv6
  const p = split.host;
  if (p.startsWith('*.')) return HOSTNAME_RE.test(p.slice(2));
  const slash = p.indexOf('/');
  if (slash >= 0) {
    const ip = p.slice(0, slash);
    const bits = Number(p.slice(slash + 1));
    const v = isIP(ip);
    return v !== 0 && Number.isInteger(bits) && bits >= 0 && bits <= (v === 4 ? 32 : 128) && /^\d+$/.test(p.slice(slash + 1));
  }
  return isIP(p) !== 0 || HOSTNAME_RE.test(p);
}

function stripBrackets(h: string): string {
  return h.replace(/^\[|\]$/g, '');
}

/**
 * Whether `hostIn` (on `port`, when known) matches a pattern. A pattern with a port needs the port:
 * a host checked without one (`port` undefined) matches only port-less patterns.
 */
export function hostAllowed(hostIn: string, patterns: readonly string[], port?: number): boolean {
  const host = stripBrackets(hostIn).toLowerCase().replace(/\.$/, '');
  const ipVersion = isIP(host);
  for (const whole of patterns) {
    const split = splitPort(whole);
    if (!split || (split.port !== undefined && split.port !== port)) continue;
    const p = split.host.toLowerCase().replace(/\.$/, '');
    if (p.startsWith('*.')) {
      if (ipVersion === 0 && host.endsWith(p.slice(1)) && host.length > p.length - 1) return true;
      continue;
    }
    const slash = p.indexOf('/');
    if (slash >= 0) {
      if (ipVersion === 0) continue;
      const ip = p.slice(0, slash);
      const v = isIP(ip);
      if (v !== ipVersion) continue;
      const bl = new BlockList();
      bl.addSubnet(ip, Number(p.slice(slash + 1)), v === 4 ? 'ipv4' : 'ipv6');
      if (bl.check(host, v === 4 ? 'ipv4' : 'ipv6')) return true;
      continue;
    }
    if (isIP(p) !== 0 && ipVersion !== 0) {
      const bl = new BlockList();
      bl.addAddress(p, isIP(p) === 4 ? 'ipv4' : 'ipv6');
      if (bl.check(host, ipVersion === 4 ? 'ipv4' : 'ipv6')) return true;
      continue;
    }
    if (p === host) return true;
  }
  return false;
}
