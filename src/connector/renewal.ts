/**
 * Certificate renewal over the live tunnel (docs/protocol.md §9.1): a new key and CSR, the cloud's
 * new certificate, both stored atomically, without interrupting traffic (the current session goes
 * on; the next dial signs with the new key, and the cloud accepts the previous certificate until
 * then). Its own job, apart from the daemon: it has its own timers, its own retry and its own state
 * (the renewal in flight, the answer awaited), and reads the tunnel only through the session it is
 * given.
 */
import { X509Certificate } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import type { Clock, TimerHandle } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import { createCsr, generateRsaKeyPair } from '../common/pki.js';
import type { ControlMessage } from '../protocol/control.js';
import type { MuxSession } from '../protocol/session.js';
import type { ConnectorStateStore, Identity } from './state.js';

/** How long the cloud has to answer a `cert.renew`. */
const ANSWER_TIMEOUT_MS = 60_000;
/** A session that lasts looks at the certificate again this often. */
const CHECK_EVERY_MS = 12 * 3600_000;

export interface RenewerOptions {
  clock: Clock;
  logger: Logger;
  state: ConnectorStateStore;
  /** The identity the daemon uses now. */
  identity(): Identity | undefined;
  /** A renewal was stored: the identity as state.json now has it (undefined: it cannot be read back). */
  renewed(identity: Identity | undefined): void;
  /** The supervisor's current session, if connected. */
  session(): MuxSession | undefined;
  /** Renew when fewer days than this are left (`certificateRenewDays`). */
  renewDays: number;
  /** Retry of a failed renewal within a session (default 1 min doubling up to 30 min). */
  retry?: { baseMs: number; capMs: number };
}

type Answer = { certificate: string; caCertificate: string };

export class CertificateRenewer {
  private renewing: Promise<void> | undefined;
  /** The answer the renewal in flight waits for (a `cert.renewed` or `cert.renew-failed`). */
  private awaited: { resolve(v: Answer): void; reject(e: Error): void } | undefined;
  private checkTimer: TimerHandle | undefined;
  /** The retry of a renewal, while the session it belongs to is open. */
  private retry: { timer: TimerHandle; session: MuxSession } | undefined;
  private failures = 0;
  private stopped = false;

  constructor(private readonly o: RenewerOptions) {}

  /** A new session, before it reads its first frame. */
  attach(session: MuxSession): void {
    // "A new session starts over": its first retry waits the base delay, not the longest of the
    // sessions before it.
    this.failures = 0;
    session.once('close', () => {
      if (this.retry?.session !== session) return;
      this.o.clock.clearTimeout(this.retry.timer);
      this.retry = undefined;
    });
  }

  /** The session is up: renew if due, and look again twice a day while it lasts. */
  connected(): void {
    this.maybeRenew();
    this.checkTimer ??= this.o.clock.setInterval(() => this.maybeRenew(), CHECK_EVERY_MS);
  }

  /** The cloud's renewal messages, on the session that carried them. */
  onControl(session: MuxSession, msg: Extract<ControlMessage, { type: 'cert.renew-requested' | 'cert.renewed' | 'cert.renew-failed' }>): Promise<void> {
    switch (msg.type) {
      case 'cert.renew-requested':
        return this.renewOver(session, msg.reason ?? 'asked by the cloud');
      case 'cert.renewed':
        this.awaited?.resolve({ certificate: msg.certificate, caCertificate: msg.caCertificate });
        return Promise.resolve();
      case 'cert.renew-failed':
        this.awaited?.reject(new Error(`the cloud refused the renewal: ${msg.message ?? '(no reason given)'}`));
        return Promise.resolve();
    }
  }

  /** Days the certificate has left, by the daemon's clock. */
  daysLeft(): number | undefined {
    const id = this.o.identity();
    if (!id) return undefined;
    return (Date.parse(new X509Certificate(id.certificate).validTo) - this.o.clock.now()) / 86_400_000;
  }

  stop(): void {
    this.stopped = true;
    if (this.checkTimer !== undefined) this.o.clock.clearInterval(this.checkTimer);
    if (this.retry) this.o.clock.clearTimeout(this.retry.timer);
    this.checkTimer = undefined;
    this.retry = undefined;
  }

  private maybeRenew(): void {
    const left = this.daysLeft();
    const session = this.o.session();
    // Not connected: the next connection looks again.
    if (left !== undefined && left < this.o.renewDays && session?.state === 'open') {
      void this.renewOver(session, `the certificate expires in ${Math.floor(left)} days`);
    }
  }

  /**
   * A renewal over `session`: one the cloud asked for (its CA was rotated, or its renewal window is
   * wider than ours), or our own when the certificate nears its end. A failure (the cloud's disk
   * full, a renewal minutes ago) is retried here, with backoff, for as long as that session lasts:
   * the cloud asks only once per session, and our own check runs only at each connection and every
   * 12 hours. A new session starts over.
   */
  async renewOver(session: MuxSession, reason: string): Promise<void> {
    // Already renewing (the cloud asked while our own check started one): the one that started it
    // handles its failure. Both arming a retry left one timer orphaned and counted failures twice.
    if (this.renewing) {
      await this.renewing.catch(() => {});
      return;
    }
    if (this.retry) this.o.clock.clearTimeout(this.retry.timer);
    this.retry = undefined;
    try {
      await this.renew(reason, session);
      this.failures = 0;
    } catch (err) {
      if (this.stopped || session.state !== 'open') return;
      const { baseMs, capMs } = this.o.retry ?? { baseMs: 60_000, capMs: 30 * 60_000 };
      // Jittered over the upper half: a renewal is one connector's business, not a storm to spread.
      const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(this.failures++, 20));
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      this.o.logger.warn('certificate renewal failed; retrying', { err, retryInMs: delay });
      const timer = this.o.clock.setTimeout(() => {
        this.retry = undefined;
        if (!this.stopped && session.state === 'open') void this.renewOver(session, reason);
      }, delay);
      this.retry = { timer, session };
    }
  }

  /**
   * One renewal over `session` (one at a time: a second call joins the first). A request from the
   * cloud passes the session that carried it: the cloud asks right after WELCOME, and when both
   * frames arrive in one read the request is handled before the supervisor has recorded the new
   * session (a renewal onto a rotated CA was then lost until the next reconnect).
   */
  renew(reason: string, session: MuxSession | undefined = this.o.session()): Promise<void> {
    this.renewing ??= (async () => {
      const id = this.o.identity();
      if (!session || !id) throw new Error('not connected');
      this.o.logger.info('renewing the connector certificate', { reason });
      const keys = generateRsaKeyPair(2048);
      const csr = createCsr(keys.privateKeyPem, { CN: osHostname().slice(0, 64) || 'connector' });
      const issued = await this.ask(session, csr);
      const { keyFile: _k, privateKeyPem: _p, ...stored } = id;
      await this.o.state.save({ ...stored, certificate: issued.certificate, caCertificate: issued.caCertificate }, keys.privateKeyPem, { renewal: { of: id } });
      this.o.renewed(await this.o.state.identity());
      this.o.logger.info('connector certificate renewed', { notAfter: new Date(new X509Certificate(issued.certificate).validTo).toISOString() });
    })().finally(() => {
      this.renewing = undefined;
      this.awaited = undefined;
    });
    return this.renewing;
  }

  /** Sends `cert.renew` and waits for the answer, which can only come over the same session. */
  private ask(session: MuxSession, csr: string): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      // When the session closes first the renewal has failed now, not at the timeout (which held
      // off the next session's own renewal for that long).
      const onClose = (): void => this.awaited?.reject(new Error('the tunnel closed before the cloud answered the renewal'));
      const t = this.o.clock.setTimeout(() => this.awaited?.reject(new Error(`the cloud did not answer the renewal within ${ANSWER_TIMEOUT_MS / 1000} s`)), ANSWER_TIMEOUT_MS);
      const settle = (): void => {
        this.o.clock.clearTimeout(t);
        session.off('close', onClose);
      };
      this.awaited = {
        resolve: (v) => {
          settle();
          resolve(v);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      };
      if (session.state === 'closed') return onClose();
      session.once('close', onClose);
      session.sendControl({ type: 'cert.renew', csr });
    });
  }
}
