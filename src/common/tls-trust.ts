/**
 * TLS trust for "the system CAs plus these": Node replaces the system roots (its bundled ones and
 * NODE_EXTRA_CA_CERTS) when `ca` is set, so they are added back, and the result is a SecureContext (building one parses the ~140 system
 * roots: milliseconds of CPU, not to be paid per connection).
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { splitPemBundle } from './pki.js';

let extra: string[] | undefined;

/**
 * The certificates of NODE_EXTRA_CA_CERTS: Node adds them to its default roots at start, and an
 * explicit `ca` drops them with the rest, so a corporate CA an admin added that way (for an https://
 * proxy, say) stopped counting as soon as cloud.caFile or a target's CA was set.
 */
function extraCaCerts(): string[] {
  if (extra === undefined) {
    extra = [];
    const file = process.env.NODE_EXTRA_CA_CERTS;
    if (file) {
      try {
        extra = splitPemBundle(readFileSync(file, 'utf8'));
      } catch {
        // unreadable: Node warned about it at start, and trusts none of it either
      }
    }
  }
  return extra;
}

/** A new context trusting the system CAs and `ca` (cache it: see trustContext). */
export function withSystemRoots(ca: readonly string[]): SecureContext {
  return createSecureContext({ ca: [...rootCertificates, ...extraCaCerts(), ...ca] });
}

const byPems = new Map<string, SecureContext>();

/**
 * withSystemRoots, built once per set of CAs whatever array holds them: the tunnel passes a fresh
 * array on every redial, and a simulator of thousands of connectors redialled thousands of times
 * in a reconnect storm. A process sees one or two sets; the oldest beyond 8 is forgotten.
 */
export function trustContext(ca: readonly string[]): SecureContext {
  const key = ca.join('\n');
  let ctx = byPems.get(key);
  if (!ctx) {
    ctx = withSystemRoots(ca);
    byPems.set(key, ctx);
    if (byPems.size > 8) byPems.delete(byPems.keys().next().value!);
  }
  return ctx;
}
