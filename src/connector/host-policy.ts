/**
 * Which hosts the cloud may make the connector reach (cloudManagedTargets.allowedHosts): exact host
 * names, "*.domain" wildcards (subdomains only, not the domain itself), IP addresses and CIDR blocks.
 * CIDR rules match IP-literal hosts; a host name is never resolved to decide (DNS can change between
 * the check and the connection).
 */
import { BlockList, isIP } from 'node:net';

const HOSTNAME_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export function isHostPattern(p: string): boolean {
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

export function hostAllowed(hostIn: string, patterns: readonly string[]): boolean {
  const host = stripBrackets(hostIn).toLowerCase().replace(/\.$/, '');
  const ipVersion = isIP(host);
  for (const raw of patterns) {
    const p = raw.toLowerCase().replace(/\.$/, '');
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
