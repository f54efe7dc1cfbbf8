/**
 * Redaction applied to everything that leaves the process as text: logs, status, support bundles.
 * Three layers, because any one alone leaks:
 *  1. keys that name a secret (password, token, authorization, ...) lose their value;
 *  2. every secret value the process loaded (config files, pairing tokens) is registered and scrubbed
 *     wherever it appears, even inside an error message from a library;
 *  3. shapes that are secrets whatever their key: pairing tokens, Bearer/Basic credentials, PEM
 *     private keys, passwords in URLs.
 */

export const REDACTED = '[REDACTED]';

const SECRET_KEY_RE =
  /^(?:.*(?:password|passwd|secret|token|apikey|api[-_]key|privatekey|private[-_]key|credential|cookie|authorization|signature|nonce|csrf).*|auth|key|pass|pwd|value)$/i;
/** Keys that look sensitive but carry no secret and are needed to diagnose. */
const SAFE_KEYS = new Set(['tokenUrl', 'expiresAt', 'tokenType', 'apiKeyHeader', 'keyFile', 'passwordFile', 'valueFile', 'clientSecretFile', 'apiKeyFile', 'adminTokenFile', 'tokenFile', 'credentialsFile']);

const PATTERNS: Array<[RegExp, string]> = [
  // The cloud's own credentials have a shape, so they are scrubbed by it rather than registered
  // one by one: a cloud that minted 10,000 pairing tokens (bulk pairing) held 30,000 strings that
  // every log line was searched for.
  [/ulpt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, `ulpt1.${REDACTED}`],
  [/ulak1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, `ulak1.${REDACTED}`],
  [/\b(Bearer|Basic|Digest)\s+[A-Za-z0-9._~+/=-]{4,}/gi, `$1 ${REDACTED}`],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, `[REDACTED PRIVATE KEY]`],
  // user:password@host, the password up to the authority's last "@" (a raw "@" in a password left
  // its tail visible), the user possibly empty.
  [/(\b[a-z][a-z0-9+.-]*:\/\/)([^/\s:@]*):([^/\s]*)@([^/\s@]*)/gi, `$1$2:${REDACTED}@$4`],
  [/\b(access_token|refresh_token|id_token|client_secret|password|apikey|api_key)=([^&\s"']+)/gi, `$1=${REDACTED}`],
];

class SecretRegistry {
  private values = new Set<string>();
  private sorted: string[] = [];
  /** Changes whenever the set of secrets does, so caches of redacted text know to start over. */
  generation = 0;

  /** Registers a secret value so it is scrubbed from all output. Short values are ignored (too noisy). */
  add(value: string | undefined | null): void {
    if (!value || value.length < 6 || this.values.has(value)) return;
    this.values.add(value);
    // Also as it appears percent-encoded (a query string, a URL) or JSON-escaped (a body, a log line).
    for (const form of [encodeURIComponent(value), JSON.stringify(value).slice(1, -1)]) this.values.add(form);
    this.generation++;
    // Longest first, so a secret containing another is scrubbed whole.
    this.sorted = [...this.values].sort((a, b) => b.length - a.length);
  }

  scrub(s: string): string {
    let out = s;
    for (const v of this.sorted) if (out.includes(v)) out = out.split(v).join(REDACTED);
    return out;
  }

  /** How many strings are searched for (each secret in up to three forms). */
  get size(): number {
    return this.values.size;
  }

  /** For tests: forget everything. */
  clear(): void {
    this.generation++;
    this.values.clear();
    this.sorted = [];
  }
}

export const secrets = new SecretRegistry();

export function isSecretKey(key: string): boolean {
  return !SAFE_KEYS.has(key) && SECRET_KEY_RE.test(key);
}

export function redactString(s: string): string {
  let out = secrets.scrub(s);
  for (const [re, rep] of PATTERNS) out = out.replace(re, rep);
  return out;
}

/**
 * Returns a redacted deep copy of a JSON-like value. Errors become {name, code, message}.
 * Cycles and very deep structures are cut rather than followed.
 */
export function redact<T>(value: T, depth = 0, ancestors = new WeakSet<object>()): T {
  if (typeof value === 'string') return redactString(value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (depth > 12) return '[…]' as T;
  // Only a real cycle (an object inside itself) is cut; the same object twice side by side is fine.
  if (ancestors.has(value)) return '[circular]' as T;
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]` as T;
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown };
    const o: Record<string, unknown> = { name: e.name, message: redactString(e.message) };
    if (e.code !== undefined) o.code = e.code;
    return o as T;
  }
  ancestors.add(value);
  try {
    if (Array.isArray(value)) {
      // Header lists: [name, value] pairs whose name is sensitive.
      if (value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string' && isSecretKey(value[0])) {
        return [value[0], REDACTED] as T;
      }
      return value.map((v) => redact(v, depth + 1, ancestors)) as T;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (isSecretKey(k) && typeof v === 'string' && v !== '') out[k] = REDACTED;
      else if (isSecretKey(k) && Array.isArray(v)) out[k] = v.map((x) => (typeof x === 'string' ? REDACTED : redact(x, depth + 1, ancestors)));
      else out[k] = redact(v, depth + 1, ancestors); // objects recurse: `auth: {type, password}` keeps its type
    }
    return out as T;
  } finally {
    ancestors.delete(value);
  }
}
