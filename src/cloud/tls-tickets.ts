/**
 * The key that seals the cloud's TLS session tickets, so that connectors reconnecting after a
 * network blip, a restart or a deploy resume their TLS session instead of a full handshake: the
 * cloud skips its certificate signature (with RSA-2048 ~10 % of its CPU in a reconnect storm of
 * 10,000 connectors, docs/performance.md) and the connector the certificate chain check.
 *
 * Node seals tickets with one 48-byte key per server. It is kept in dataDir/tls-ticket.key (0600)
 * so that tickets outlive a restart, and replaced every TICKET_LIFETIME_MS (7 days, the longest
 * ticket lifetime TLS 1.3 allows): a ticket sealed with an older key is refused and its connector
 * makes one full handshake, nothing else. Whoever steals the key can impersonate the cloud to a
 * connector that presents a ticket sealed with it, as with the TLS private key beside it, so it is
 * kept like one, and it is replaced with the certificate: a new certificate (after a compromise, or
 * an expiry) ends every session made under the old one. TLS 1.3 resumption still runs an (EC)DHE
 * exchange (psk_dhe_ke), so the key does not decrypt recorded traffic.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../common/clock.js';
import { writePrivateFile } from '../common/fs-secure.js';
import type { Logger } from '../common/log.js';

export const TICKET_KEY_FILE = 'tls-ticket.key';
export const TICKET_LIFETIME_MS = 7 * 86_400_000;
const KEY_BYTES = 48;
const CHECK_EVERY_MS = 3_600_000;

interface Stored {
  key: Buffer;
  createdAtMs: number;
  /** SHA-256 of the certificate the key's tickets were made under. */
  cert: string;
}

const certId = (pem: string): string => createHash('sha256').update(pem).digest('hex');

/** The stored key, or why there is none to use (missing, unreadable, torn: all mean "make one"). */
async function readStored(file: string): Promise<Stored | string> {
  let text: string;
  try {
    // A key others could read (restored from a backup without its mode, say) may be known to them,
    // and its holder can resume sessions as the cloud: replaced, not just re-protected.
    if (((await stat(file)).mode & 0o044) !== 0) return 'readable by group or others';
    text = await readFile(file, 'utf8');
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `unreadable (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  try {
    const j = JSON.parse(text) as { key?: unknown; createdAt?: unknown; cert?: unknown };
    const key = typeof j.key === 'string' ? Buffer.from(j.key, 'base64') : undefined;
    const createdAtMs = typeof j.createdAt === 'string' ? Date.parse(j.createdAt) : NaN;
    if (key?.length === KEY_BYTES && Number.isFinite(createdAtMs)) return { key, createdAtMs, cert: typeof j.cert === 'string' ? j.cert : '' };
  } catch {
    /* fall through */
  }
  return 'not a ticket key file';
}

export class TicketKeys {
  private timer: TimerHandle | undefined;

  private constructor(
    private readonly file: string,
    private current: Stored,
    private readonly cert: string,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /**
   * The key in dataDir for the certificate `certPem`, or a new one when there is none, it cannot
   * be read, it is due, or it was made under another certificate. Losing it costs one full
   * handshake per connector, so neither a bad file nor a failed write is a reason to stop: the key
   * then lives in memory until the next start or rotation.
   */
  static async load(dataDir: string, certPem: string, clock: Clock, logger: Logger): Promise<TicketKeys> {
    const file = join(dataDir, TICKET_KEY_FILE);
    const cert = certId(certPem);
    const s = await readStored(file);
    const t = new TicketKeys(file, typeof s === 'string' ? { key: Buffer.alloc(0), createdAtMs: 0, cert } : s, cert, clock, logger);
    if (typeof s === 'string') {
      if (s !== 'missing') logger.warn('replacing the TLS session ticket key', { file, reason: s });
    } else if (s.cert !== cert) {
      logger.info('replacing the TLS session ticket key', { file, reason: 'the TLS certificate changed' });
    } else if (!t.due()) return t;
    try {
      await t.replace();
    } catch (err) {
      t.current = { key: randomBytes(KEY_BYTES), createdAtMs: clock.now(), cert };
      logger.warn('cannot store the TLS session ticket key; tickets will not outlive this process', { err });
    }
    return t;
  }

  get key(): Buffer {
    return this.current.key;
  }

  /** Seconds a ticket may be used, for the server's sessionTimeout. */
  static get lifetimeSeconds(): number {
    return TICKET_LIFETIME_MS / 1000;
  }

  private due(): boolean {
    const age = this.clock.now() - this.current.createdAtMs;
    return age >= TICKET_LIFETIME_MS || age < -86_400_000; // a key from the future: the clock was wrong
  }

  private async replace(): Promise<void> {
    const next: Stored = { key: randomBytes(KEY_BYTES), createdAtMs: this.clock.now(), cert: this.cert };
    const text = JSON.stringify({ createdAt: new Date(next.createdAtMs).toISOString(), cert: next.cert, key: next.key.toString('base64') });
    await writePrivateFile(this.file, `${text}\n`, 'TLS session ticket key');
    this.current = next;
  }

  /** Checks hourly and hands a new key to `apply` (server.setTicketKeys) once the current one is due. */
  rotate(apply: (key: Buffer) => void): void {
    this.timer = this.clock.setInterval(() => {
      if (!this.due()) return;
      this.replace().then(
        () => {
          apply(this.current.key);
          this.logger.info('rotated the TLS session ticket key', { file: this.file });
        },
        // The old key stays in use (and on disk); the next check tries again.
        (err: unknown) => this.logger.error('cannot rotate the TLS session ticket key', { err }),
      );
    }, CHECK_EVERY_MS);
    (this.timer as { unref?: () => void }).unref?.();
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearInterval(this.timer);
    this.timer = undefined;
  }
}
