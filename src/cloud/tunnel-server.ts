/**
 * The cloud end of tunnels: accepts WebSocket upgrades on /api/v1/tunnel, runs the handshake
 * (HELLO with a fresh nonce -> the connector's HELLO + AUTH signature -> WELCOME), then hands the
 * socket to a MuxSession registered in the SessionRegistry.
 *
 * Authentication rests on the WebSocket itself, not on mutual TLS, so TLS-inspecting proxies in the
 * customer network do not break it: the connector signs our nonce and the exact bytes of its HELLO
 * with the key whose certificate we issued at pairing.
 */
import type { ControlMessage } from '../protocol/control.js';
import { X509Certificate, randomBytes, randomUUID, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import { MAX_CSR_CHARS } from '../common/pki.js';
import { GoAwayCodes, type GoAwayCode } from '../protocol/codes.js';
import { decodeMessage, encodeFrame, jsonPayload } from '../protocol/frame.js';
import {
  AuthSchema,
  ConnectorHelloSchema,
  HANDSHAKE_FRAME_BYTES,
  PROTOCOL_MAX,
  PROTOCOL_MIN,
  authMessage,
  parseJson,
  type CloudHello,
  type ConnectorHello,
  type Limits,
  type Welcome,
} from '../protocol/messages.js';
import { MuxSession, attachTransport, closeReason, maxMessageSize, type SessionClose } from '../protocol/session.js';
import { createTunnelServer, type WsTransport } from '../transport/ws.js';
import type { CertFacts, ConnectorCA } from './ca.js';
import type { PresenceBook } from './presence-book.js';
import type { LiveSession, SessionRegistry } from './registry.js';
import { RetrySchedule } from './retry-schedule.js';
import { CONNECTOR_ID_RE, type CloudStore } from './state.js';

export interface TunnelServerOptions {
  store: CloudStore;
  ca: ConnectorCA;
  registry: SessionRegistry;
  book: PresenceBook;
  logger: Logger;
  clock: Clock;
  limits: Limits;
  heartbeatMs: number;
  handshakeTimeoutMs: number;
  maxPendingHandshakes: number;
  software: string;
  /** Lifetime of certificates issued on renewal. */
  certificateDays: number;
  /** Ask a connector to renew when its certificate has fewer days left (or comes from an older CA). */
  renewBeforeDays: number;
}

export interface TunnelServerEvents {
  session: [live: LiveSession];
  /** How a tunnel handshake ended: `connected`, or the refusal's code in lower case (metrics). */
  handshake: [outcome: string];
  /** CONTROL messages this server does not handle itself (target.status: managed targets). */
  control: [live: LiveSession, message: ControlMessage];
  sessionClosed: [live: LiveSession, info: SessionClose];
}

/**
 * A connector certificate as authentication uses it. Parsing a PEM (~430 µs with OpenSSL 3 on the
 * 2-core VM), its public key (~110 µs), the CA signature check and the validity dates were done on
 * every handshake, ~1 ms per connector in a reconnect storm (docs/performance.md); now once per
 * certificate and process.
 */
interface KnownCertificate {
  publicKey: KeyObject;
  facts: CertFacts;
}

/**
 * Who a refused handshake said it was (its HELLO, unauthenticated): behind NAT or a balancer the
 * address alone names nobody among thousands of connectors.
 */
function claimedBy(hello: Buffer | undefined): { connectorId?: string; software?: string } {
  if (!hello) return {};
  try {
    const h = JSON.parse(hello.toString('utf8')) as Record<string, unknown>;
    return {
      ...(typeof h.connectorId === 'string' && CONNECTOR_ID_RE.test(h.connectorId) ? { connectorId: h.connectorId } : {}),
      ...(typeof h.software === 'string' ? { software: h.software.slice(0, 64) } : {}),
    };
  } catch {
    return {};
  }
}

class Refusal extends Error {
  constructor(
    readonly code: GoAwayCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export class TunnelServer extends EventEmitter<TunnelServerEvents> {
  private readonly wss;
  private pending = 0;
  private draining = false;
  private readonly certCache = new Map<string, KnownCertificate>();
  private readonly retries: RetrySchedule;

  constructor(private readonly o: TunnelServerOptions) {
    super();
    this.wss = createTunnelServer(maxMessageSize(o.limits));
    // Floor until 3 saturated seconds are measured: about what 2 cores do over TLS.
    this.retries = new RetrySchedule({ minDelayS: 1, maxDelayS: 900, minPerS: 200 });
  }

  get pendingHandshakes(): number {
    return this.pending;
  }

  /** Takes an HTTP upgrade for the tunnel path. Storm control happens here, before any crypto. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.draining) {
      this.emit('handshake', 'draining');
      return rejectUpgrade(socket, 503, 'draining', 'this relay is shutting down; try again shortly', 1 + Math.floor(Math.random() * 4));
    }
    if (this.pending >= this.o.maxPendingHandshakes) {
      // An appointment: back when the cloud should have room (retry-schedule.ts).
      const after = this.retries.refused(this.o.clock.now(), this.pending);
      this.o.logger.debug('tunnel handshake refused: overloaded', { pending: this.pending, retryAfterS: after });
      this.emit('handshake', 'overloaded');
      return rejectUpgrade(socket, 503, 'overloaded', 'too many connectors are connecting at once; back off and retry', after);
    }
    this.pending++;
    let t: WsTransport;
    try {
      t = await this.wss.accept(req, socket, head);
    } catch (err) {
      this.pending--;
      this.o.logger.warn('tunnel upgrade failed', { err, remote: req.socket.remoteAddress });
      this.emit('handshake', 'upgrade_failed');
      return;
    }
    try {
      await this.handshake(t);
    } finally {
      this.pending--;
      // Every ending frees a place, refusals too: counting only established tunnels let a storm of
      // connectors the cloud refuses (revoked, unknown) drive the rate to 1/s and appointments to 900 s.
      this.retries.completed(this.o.clock.now());
    }
  }

  private handshake(t: WsTransport): Promise<void> {
    const o = this.o;
    const nonce = randomBytes(32);
    const hello: CloudHello = {
      protocol: { min: PROTOCOL_MIN, max: PROTOCOL_MAX },
      software: o.software,
      nonce: nonce.toString('base64url'),
      limits: o.limits,
      heartbeatMs: o.heartbeatMs,
    };
    t.send(encodeFrame({ kind: 'hello', json: jsonPayload(hello) }));

    return new Promise<void>((resolve) => {
      let helloBytes: Buffer | undefined;
      let authBytes: Buffer | undefined;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        o.clock.clearTimeout(timer);
        resolve();
      };
      const refuse = (r: Refusal): void => {
        // Each handshake is counted once: a refusal after the connector already left (it was
        // counted as abandoned) is not a second outcome. Finished before the close, whose close
        // event would otherwise count this one as abandoned too.
        const counted = done;
        finish();
        const g: Record<string, unknown> = { code: r.code, message: r.message, lastStreamId: 0 };
        if (r.retryAfterMs !== undefined) g.retryAfterMs = r.retryAfterMs;
        t.send(encodeFrame({ kind: 'goaway', json: jsonPayload(g) }));
        t.close(GoAwayCodes[r.code].close, closeReason(r.message));
        o.logger.warn('tunnel refused', { code: r.code, reason: r.message, remote: t.remoteAddress, ...claimedBy(helloBytes) });
        if (!counted) this.emit('handshake', r.code.toLowerCase());
      };
      const timer = o.clock.setTimeout(
        () => refuse(new Refusal('HANDSHAKE_TIMEOUT', `no HELLO and AUTH within ${o.handshakeTimeoutMs} ms`)),
        o.handshakeTimeoutMs,
      );
      t.setHandlers({
        message: (m) => {
          if (done || (helloBytes && authBytes)) return refuse(new Refusal('PROTOCOL_ERROR', 'frames sent before WELCOME'));
          try {
            for (const f of decodeMessage(m, Math.max(o.limits.maxFrameSize, HANDSHAKE_FRAME_BYTES))) {
              if (f.kind === 'hello' && !helloBytes) helloBytes = Buffer.from(f.json);
              else if (f.kind === 'auth' && helloBytes && !authBytes) authBytes = Buffer.from(f.json);
              else throw new Refusal('PROTOCOL_ERROR', `unexpected ${f.kind.toUpperCase()} frame during the handshake`);
            }
          } catch (e) {
            return refuse(e instanceof Refusal ? e : new Refusal('PROTOCOL_ERROR', (e as Error).message));
          }
          if (helloBytes && authBytes) {
            o.clock.clearTimeout(timer);
            this.authenticate(t, nonce, helloBytes, authBytes).then(
              () => finish(),
              (e: unknown) => refuse(e instanceof Refusal ? e : new Refusal('PROTOCOL_ERROR', (e as Error).message)),
            );
          }
        },
        drain: () => {},
        close: () => {
          // The connector left before an outcome (closed during the HELLO/AUTH exchange or while
          // its identity was checked): counted, so the outcomes add up to the upgrades.
          if (!done) this.emit('handshake', 'abandoned');
          finish();
        },
      });
    });
  }

  private async authenticate(t: WsTransport, nonce: Buffer, helloBytes: Buffer, authBytes: Buffer): Promise<void> {
    const o = this.o;
    const hello: ConnectorHello = parseJson(ConnectorHelloSchema, helloBytes, 'connector HELLO');
    if (hello.protocol < PROTOCOL_MIN || hello.protocol > PROTOCOL_MAX) {
      throw new Refusal(
        'UNSUPPORTED_VERSION',
        `connector speaks protocol ${hello.protocol}; this cloud speaks ${PROTOCOL_MIN}..${PROTOCOL_MAX}: upgrade the ${hello.protocol < PROTOCOL_MIN ? 'connector' : 'cloud'}`,
        300_000,
      );
    }
    const auth = parseJson(AuthSchema, authBytes, 'AUTH');
    let state;
    try {
      state = await o.store.read();
    } catch (err) {
      o.logger.error('cannot read the cloud state to authenticate a connector', { err });
      throw new Refusal('OVERLOADED', 'the cloud cannot check identities right now; retry shortly', 5000 + Math.floor(Math.random() * 10_000));
    }
    const rec = state.connectors[hello.connectorId];
    if (!rec) throw new Refusal('AUTH_FAILED', 'unknown connector id: it was never paired with this cloud (or its record was removed); pair it again');
    const revoked = rec.revokedAt ?? state.revokedCertificates.find((r) => r.fingerprint256 === rec.fingerprint256)?.revokedAt;
    if (revoked) throw new Refusal('REVOKED', `connector ${rec.id} was revoked at ${revoked}; pair it again to reconnect`);
    const sig = Buffer.from(auth.signature, 'base64url');
    const message = authMessage(nonce, helloBytes);
    // The current certificate, or the one before a renewal the connector may not have stored yet.
    const candidates: Array<{ pem: string; fingerprint: string }> = [{ pem: rec.certificate, fingerprint: rec.fingerprint256 }];
    if (rec.previousCertificate && rec.previousFingerprint256 && !state.revokedCertificates.some((r) => r.fingerprint256 === rec.previousFingerprint256)) {
      candidates.push({ pem: rec.previousCertificate, fingerprint: rec.previousFingerprint256 });
    }
    let verified: { cert: KnownCertificate; fingerprint: string } | undefined;
    let why: string | undefined;
    /** A certificate of this connector, with its key, that is only not valid yet by this clock. */
    let notYet: { validFromMs: number; problem: string } | undefined;
    for (const c of candidates) {
      const x = this.certificate(c.pem, c.fingerprint);
      const now = o.clock.now();
      const problem = o.ca.problem(x.facts, now);
      if (problem) {
        why ??= problem;
        if (now < x.facts.validFromMs && !o.ca.problem(x.facts, x.facts.validFromMs) && cryptoVerify('sha256', message, x.publicKey, sig)) {
          notYet ??= { validFromMs: x.facts.validFromMs, problem };
        }
        continue;
      }
      if (cryptoVerify('sha256', message, x.publicKey, sig)) {
        verified = { cert: x, fingerprint: c.fingerprint };
        break;
      }
      why ??= "signature does not match the connector's certificate (wrong key, or a replayed handshake)";
    }
    if (!verified && notYet) {
      // This cloud's clock was stepped back (NTP, it ran fast) since it issued the certificate: a
      // passing condition, not a bad identity. AUTH_FAILED is permanent, and a connector that had
      // just renewed has no older key to fall back on: it was locked out until someone re-paired it.
      const wait = Math.min(Math.max(1000, notYet.validFromMs - o.clock.now() + 1000), 600_000);
      throw new Refusal('CLOCK_SKEW', `${notYet.problem}; retrying`, wait);
    }
    if (!verified) throw new Refusal('AUTH_FAILED', why ?? 'authentication failed');
    if (!t.isOpen) return; // the connector gave up while we were checking
    // drain() began while this handshake awaited the state: its GOAWAY went to the sessions it
    // found then, and one registered now would outlive the shutdown. Send it on its way instead.
    if (this.draining) throw new Refusal('SHUTTING_DOWN', 'the relay is shutting down; retry', 1000);

    const now = o.clock.now();
    if (hello.probe) {
      // Diagnostics: the credentials work. Say so and close; the live session stays as it is.
      const welcome: Welcome = { sessionId: 'probe', epoch: 1, connectorId: rec.id, tenant: rec.tenant, group: rec.group, serverTime: new Date(now).toISOString() };
      t.send(encodeFrame({ kind: 'welcome', json: jsonPayload(welcome) }));
      // Its outcome is counted here: the handshake's handlers must not count the close as abandoned.
      t.setHandlers({ message: () => {}, drain: () => {}, close: () => {} });
      t.close(1000, 'probe ok');
      o.logger.debug('tunnel probe authenticated', { connectorId: rec.id });
      this.emit('handshake', 'probe');
      return;
    }
    const live: LiveSession = {
      connectorId: rec.id,
      tenant: rec.tenant,
      group: rec.group,
      sessionId: randomUUID(),
      epoch: o.registry.nextEpoch(rec.id, now),
      connectedAt: now,
      remoteAddress: t.remoteAddress,
      version: versionOf(hello.software),
      hostname: hello.hostname,
      targets: hello.targets,
      session: new MuxSession({ role: 'cloud', transport: t, local: o.limits, remote: hello.limits, heartbeatMs: o.heartbeatMs, clock: o.clock, version: hello.protocol }),
      authenticatedWith: verified.fingerprint,
    };
    const welcome: Welcome = {
      sessionId: live.sessionId,
      epoch: live.epoch,
      connectorId: rec.id,
      tenant: rec.tenant,
      group: rec.group,
      serverTime: new Date(now).toISOString(),
    };
    // WELCOME goes out before any frame of the session.
    t.send(encodeFrame({ kind: 'welcome', json: jsonPayload(welcome) }));
    attachTransport(live.session, t);

    const old = o.registry.add(live);
    if (old) {
      o.logger.info('connector session replaced by a newer one', { connectorId: rec.id, oldEpoch: old.epoch, epoch: live.epoch });
      old.session.fail('REPLACED', 'a newer session of this connector replaced this one');
    }
    const known = o.book.peek(rec.id)?.targets ?? rec.targets;
    const changed = known.length !== hello.targets.length || known.some((t, i) => t !== hello.targets[i]);
    o.book.note(rec.id, { lastSeen: new Date(now).toISOString(), hostname: hello.hostname, version: versionOf(hello.software), targets: hello.targets }, { soon: changed });
    this.emit('handshake', 'connected');
    o.logger.info('connector connected', {
      connectorId: rec.id,
      tenant: rec.tenant,
      group: rec.group,
      remote: t.remoteAddress,
      version: hello.software,
      epoch: live.epoch,
      ...(t.tls ? { tlsResumed: t.tls.resumed } : {}),
    });
    live.session.on('control', (msg) => this.onControl(live, msg));
    this.maybeRequestRenewal(live, verified.cert);
    live.session.once('close', (info) => {
      const current = o.registry.remove(live);
      o.book.note(rec.id, { lastSeen: new Date(o.clock.now()).toISOString() });
      o.logger.info('connector disconnected', { connectorId: rec.id, epoch: live.epoch, code: info.code, reason: info.reason, replaced: !current });
      this.emit('sessionClosed', live, info);
    });
    this.emit('session', live);
  }

  private onControl(live: LiveSession, msg: ControlMessage): void {
    if (msg.type === 'cert.renew') {
      void this.renew(live, msg.csr);
      return;
    }
    if (msg.type === 'targets') {
      live.targets = msg.targets.slice(0, 1000);
      this.o.book.note(live.connectorId, { targets: live.targets }, { soon: true });
      return;
    }
    this.emit('control', live, msg);
  }

  private certificate(pem: string, fingerprint: string): KnownCertificate {
    let c = this.certCache.get(fingerprint);
    if (!c) {
      const x = new X509Certificate(pem);
      c = { publicKey: x.publicKey, facts: this.o.ca.inspect(x) };
      if (this.certCache.size > 50_000) this.certCache.clear();
      this.certCache.set(fingerprint, c);
    }
    return c;
  }

  /** Asks the connector to renew when its certificate is close to expiry or from an older CA. */
  private maybeRequestRenewal(live: LiveSession, cert: KnownCertificate): void {
    const left = (cert.facts.validToMs - this.o.clock.now()) / 86_400_000;
    const oldCa = cert.facts.issuer !== this.o.ca.current.n;
    if (left < this.o.renewBeforeDays || oldCa) {
      live.session.sendControl({ type: 'cert.renew-requested', reason: oldCa ? 'the cloud rotated its connector CA' : `the certificate expires in ${Math.floor(left)} days` });
    }
  }

  /** Issues a renewed certificate for a connector's new key (CONTROL cert.renew). */
  private async renew(live: LiveSession, csr: unknown): Promise<void> {
    const o = this.o;
    try {
      if (typeof csr !== 'string' || csr.length > MAX_CSR_CHARS) throw new Error(`cert.renew needs a CSR of at most ${MAX_CSR_CHARS} characters`);
      // Renewals rewrite the state file and replace the previous certificate the grace relies on:
      // one per session, and none within RENEW_MIN_INTERVAL_MS of the last (a looping connector
      // must not churn either). A failed one may be retried: nothing was replaced.
      if (live.renewed) throw new Error('this session already renewed its certificate; reconnect to use it');
      let issued: { certificatePem: string; info: { fingerprint256: string; notAfter: string } } | undefined;
      await o.store.update((s) => {
        const rec = s.connectors[live.connectorId];
        if (!rec || rec.revokedAt) throw new Error('this connector is no longer paired');
        // (A renewal dated ahead of this clock, made while it ran fast, does not count: it blocked
        // renewals for the size of the correction.)
        const since = rec.renewedAt ? o.clock.now() - Date.parse(rec.renewedAt) : Infinity;
        if (since >= 0 && since < RENEW_MIN_INTERVAL_MS) {
          throw new Error(`the certificate was renewed less than ${RENEW_MIN_INTERVAL_MS / 60_000} minutes ago`);
        }
        // The grace certificate is the one the connector holds (it signed this session's handshake):
        // usually the current one, but the previous one when an earlier renewal's answer was never
        // stored (disk full, answer lost); replacing it then would lock the connector out.
        const held =
          live.authenticatedWith === rec.fingerprint256
            ? { pem: rec.certificate, fp: rec.fingerprint256 }
            : live.authenticatedWith === rec.previousFingerprint256 && rec.previousCertificate
              ? { pem: rec.previousCertificate, fp: rec.previousFingerprint256 }
              : undefined;
        if (!held) throw new Error("this session's certificate is no longer the connector's; reconnect");
        issued = o.ca.issue(csr, { connectorId: rec.id, tenant: rec.tenant, group: rec.group }, o.certificateDays);
        rec.previousCertificate = held.pem;
        rec.previousFingerprint256 = held.fp;
        rec.certificate = issued.certificatePem;
        rec.fingerprint256 = issued.info.fingerprint256;
        rec.notAfter = issued.info.notAfter;
        rec.renewedAt = new Date(o.clock.now()).toISOString();
      });
      live.renewed = true;
      live.session.sendControl({ type: 'cert.renewed', certificate: issued!.certificatePem, caCertificate: o.ca.certificatePem });
      o.logger.info('connector certificate renewed', { connectorId: live.connectorId, notAfter: issued!.info.notAfter });
    } catch (err) {
      o.logger.warn('connector certificate renewal failed', { connectorId: live.connectorId, err });
      live.session.sendControl({ type: 'cert.renew-failed', message: (err as Error).message });
    }
  }

  /** Stops taking tunnels and drains every session (GOAWAY, in-flight streams finish, close). */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    await Promise.all(this.o.registry.list().map((l) => l.session.drain(timeoutMs, 'relay shutting down')));
    this.wss.close();
  }
}

const RENEW_MIN_INTERVAL_MS = 10 * 60_000;

function rejectUpgrade(socket: Duplex, status: number, code: string, message: string, retryAfterS?: number): void {
  const body = JSON.stringify({ error: code, message });
  const lines = [
    `HTTP/1.1 ${status} ${status === 503 ? 'Service Unavailable' : 'Error'}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  if (retryAfterS !== undefined) lines.push(`Retry-After: ${retryAfterS}`);
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** "uemlink-connector/1.2.3" -> "1.2.3": the same form pairing records, so `version` never changes shape. */
function versionOf(software: string): string {
  return software.replace(/^uemlink-connector\//, '');
}
