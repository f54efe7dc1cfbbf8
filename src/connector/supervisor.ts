/**
 * Keeps one tunnel up: dial, run, and on loss wait (Backoff) and dial again, until stopped or the
 * cloud says something permanent (revoked, unknown connector). Its state is a discriminated union that
 * status pages, readiness and metrics read; every change is also emitted as an event.
 */
import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from '../common/clock.js';
import { Episodes } from '../common/episodes.js';
import { UemlinkError, messageOf } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { MuxSession, SessionClose } from '../protocol/session.js';
import type { Backoff } from './backoff.js';
import type { Connected } from './tunnel-client.js';
import { TunnelError } from './tunnel-client.js';

export type TunnelState =
  | { state: 'idle'; since: number }
  | { state: 'connecting'; since: number; attempt: number }
  | { state: 'connected'; since: number; sessionId: string; epoch: number; remoteAddress: string }
  | { state: 'disconnected'; since: number; retryAt: number }
  /** The cloud refused us for good (revoked, unknown): only pairing again helps. */
  | { state: 'refused'; since: number }
  | { state: 'stopped'; since: number };

export interface LastError {
  code: string;
  message: string;
  at: number;
}

export interface SupervisorEvents {
  state: [state: TunnelState];
  session: [session: MuxSession, connected: Connected];
}

export interface SupervisorOptions {
  /** One dial; `signal` aborts it (stop() during a dial that would otherwise wait on a stuck proxy). */
  connect: (signal: AbortSignal) => Promise<Connected>;
  backoff: Backoff;
  clock: Clock;
  logger: Logger;
  /** Extra wait after being replaced by another process with the same identity. */
  replacedDelayMs?: number;
  /** How often a dial failing the same way again is said (with the count since): default 10 min. */
  failureWindowMs?: number;
}

/** How often the same dial failure is said again while it lasts. */
export const DIAL_FAILURE_WINDOW_MS = 10 * 60_000;

/**
 * What makes two dial failures "the same": the code and the reason with its numbers taken out. The
 * code alone is not enough: a name not found, a refused connection, an untrusted certificate and a
 * proxy refusing the credentials are all TUNNEL_DIAL_FAILED, and a change among them must be said
 * at once. Numbers (addresses, ports, milliseconds) are left out so that one cause stays one kind.
 */
function dialFailureKind(err: UemlinkError): string {
  return `${err.code}: ${err.message.replace(/\d+/g, '#').slice(0, 160)}`;
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  private _state: TunnelState;
  private _lastError: LastError | undefined;
  private _reconnects = 0;
  private current: Connected | undefined;
  private stopping = false;
  private wakeTimer: TimerHandle | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private dialing: AbortController | undefined;
  /**
   * Dial failures as episodes: an unreachable cloud is redialled every ~30 s (backoff cap 60 s,
   * full jitter), and a warning each time was ~2,900 identical lines a day that pushed the first
   * one, which says when it began, out of `journalctl -n`. The same failure (by code) is said
   * again every `failureWindowMs` with how often it recurred; a different code is said at once.
   */
  private readonly dialFailures: Episodes;

  constructor(private readonly o: SupervisorOptions) {
    super();
    this.dialFailures = new Episodes(o.logger, o.clock, o.failureWindowMs ?? DIAL_FAILURE_WINDOW_MS);
    this._state = { state: 'idle', since: o.clock.now() };
  }

  get state(): TunnelState {
    return this._state;
  }
  get lastError(): LastError | undefined {
    return this._lastError;
  }
  /** Sessions re-established after the first one. */
  get reconnects(): number {
    return this._reconnects;
  }
  get session(): MuxSession | undefined {
    return this.current?.session;
  }

  start(): void {
    if (this.loop) return;
    this.stopping = false;
    this.loop = this.run().finally(() => {
      this.loop = undefined;
    });
  }

  /** Skips the current wait and dials now (an admin clicked "reconnect", or pairing changed). */
  reconnectNow(): void {
    this.wake?.();
  }

  /** Drains the current session (GOAWAY, in-flight streams finish up to `drainMs`) and stops. */
  async stop(drainMs: number): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.dialing?.abort();
    const c = this.current;
    if (c && c.session.state !== 'closed') await c.session.drain(drainMs, 'connector shutting down');
    await this.loop;
    this.set({ state: 'stopped', since: this.o.clock.now() });
  }

  private set(s: TunnelState): void {
    this._state = s;
    this.emit('state', s);
  }

  private async run(): Promise<void> {
    const { clock, logger, backoff } = this.o;
    let everConnected = false;
    while (!this.stopping) {
      this.set({ state: 'connecting', since: clock.now(), attempt: backoff.attempts + 1 });
      let c: Connected;
      try {
        this.dialing = new AbortController();
        c = await this.o.connect(this.dialing.signal);
      } catch (e) {
        const err = e instanceof UemlinkError ? e : new UemlinkError('TUNNEL_DIAL_FAILED', messageOf(e), { retryable: true });
        this._lastError = { code: err.code, message: err.message, at: clock.now() };
        // stop() came during the dial: its wake-up found no wait to end, so do not start one.
        if (this.stopping) break;
        if (!err.retryable) {
          logger.error(err.code.startsWith('CONFIG_') ? 'the connector cannot connect until its configuration is fixed' : 'the cloud refused this connector; pair it again', { code: err.code, reason: err.message });
          this.set({ state: 'refused', since: clock.now() });
          return;
        }
        const delay = backoff.next(clock.now(), err instanceof TunnelError ? err.retryAfterMs : undefined);
        this.dialFailures.failed('tunnel', dialFailureKind(err), 'tunnel connection failed', { code: err.code, reason: err.message, retryInMs: delay });
        logger.debug('tunnel dial failed', { code: err.code, reason: err.message, retryInMs: delay });
        this.set({ state: 'disconnected', since: clock.now(), retryAt: clock.now() + delay });
        await this.waitOrWake(delay);
        continue;
      }
      if (this.stopping) {
        c.session.close(1001, 'connector shutting down');
        break;
      }
      this.current = c;
      if (everConnected) this._reconnects++;
      everConnected = true;
      backoff.connected();
      this.dialFailures.succeeded('tunnel', 'tunnel dials succeed again', {});
      const since = clock.now();
      logger.info('tunnel connected', {
        connectorId: c.welcome.connectorId,
        epoch: c.welcome.epoch,
        remote: c.remoteAddress,
        ...(c.tls ? { tls: c.tls.protocol, tlsResumed: c.tls.resumed } : {}),
      });
      this.set({ state: 'connected', since, sessionId: c.welcome.sessionId, epoch: c.welcome.epoch, remoteAddress: c.remoteAddress });
      this.emit('session', c.session, c);
      // The session may have closed already: ws hands over messages synchronously, and a frame it
      // refused could come in the same read as WELCOME, before this listener (it then stayed
      // "connected" for ever, and stop() waited for it).
      const info = await (c.closed ?? new Promise<SessionClose>((resolve) => c.session.once('close', resolve)));
      this.current = undefined;
      backoff.disconnected(clock.now(), since);
      if (this.stopping) break;
      const err = info.error;
      this._lastError = { code: err.code, message: err.message, at: clock.now() };
      if (!err.retryable) {
        logger.error('the cloud ended this connector\'s tunnel for good; pair it again', { code: err.code, reason: err.message });
        this.set({ state: 'refused', since: clock.now() });
        return;
      }
      let floor = info.goAway?.retryAfterMs;
      if (err.code === 'TUNNEL_REPLACED') {
        // Either a stale session the cloud cleaned up, or two processes share this identity.
        logger.warn('another session with this connector identity replaced ours (is the state dir copied to another host?)');
        floor = Math.max(floor ?? 0, this.o.replacedDelayMs ?? 30_000);
      }
      const delay = backoff.next(clock.now(), floor);
      logger.warn('tunnel lost', { code: err.code, reason: err.message, retryInMs: delay });
      this.set({ state: 'disconnected', since: clock.now(), retryAt: clock.now() + delay });
      await this.waitOrWake(delay);
    }
  }

  private waitOrWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        if (this.wakeTimer !== undefined) this.o.clock.clearTimeout(this.wakeTimer);
        this.wakeTimer = undefined;
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      this.wakeTimer = this.o.clock.setTimeout(done, ms);
    });
  }
}
