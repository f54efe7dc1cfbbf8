/**
 * Time-handling review: wall-clock steps (NTP, VM resume), skew between connector and cloud.
 * Each test states the scenario an operator meets and what should happen.
 */
import { expect } from 'chai';
import { systemClock, type Clock } from '../../src/common/clock.js';
import { FailureLimiter } from '../../src/common/rate-limit.js';
import { Backoff } from '../../src/connector/backoff.js';
import { SessionStore } from '../../src/cloud/console/session.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { connectAs, offsetClock, pairInproc, startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { until } from '../helpers/procs.js';
import { capturingLogger } from '../helpers/logs.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('wall-clock steps and skew (found in review)', function () {
  describe('connector reconnect backoff (src/connector/backoff.ts)', () => {
    it('a backwards clock step during a long outage does not collapse the redial ceiling to 1 s for the size of the step', () => {
      let now = Date.UTC(2026, 0, 10, 12, 0, 0);
      const b = new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000, random: () => 0.999 });
      // The cloud has been unreachable for 20 minutes; the connector redials about once a minute.
      let last = 0;
      for (let i = 0; i < 30; i++) {
        last = b.next(now);
        now += last;
      }
      expect(last, 'sanity: the delay has grown to the cap').to.be.above(50_000);
      // NTP steps this host's clock back one hour (it had run fast); the outage goes on.
      now -= HOUR;
      const delays: number[] = [];
      for (let i = 0; i < 5; i++) {
        const d = b.next(now);
        delays.push(d);
        now += d;
      }
      // Real time since the outage began is ~20 minutes: the ceiling should still be 60 s.
      expect(Math.min(...delays), `delays after the step: ${delays.join(', ')} ms`).to.be.above(30_000);
    });
  });

  describe('failure limiter (src/common/rate-limit.ts: pairing per address/tenant, admin token, local page password)', () => {
    it('a backwards clock step does not stretch a one-minute lockout into the size of the step', () => {
      let now = Date.UTC(2026, 0, 10, 12, 0, 0);
      const clock: Clock = { ...systemClock, now: () => now };
      const l = new FailureLimiter(5, 60_000, clock);
      for (let i = 0; i < 5; i++) l.fail('10.0.0.7');
      expect(l.retryAfter('10.0.0.7'), 'sanity: locked out').to.be.above(0);
      // 10 s later NTP steps the clock back one hour; then 2 real minutes pass.
      now += 10_000;
      now -= HOUR;
      now += 2 * MIN;
      const wait = l.retryAfter('10.0.0.7');
      expect(wait, `still locked out for ${Math.round(wait / 1000)} s ("wait a minute and try again")`).to.equal(0);
    });
  });

  describe('console sessions (src/cloud/console/session.ts)', () => {
    it('an unused session ends after 8 idle hours even when the clock was stepped back meanwhile', () => {
      let now = Date.UTC(2026, 0, 10, 12, 0, 0);
      const clock: Clock = { ...systemClock, now: () => now };
      const store = new SessionStore(clock);
      const { id } = store.create('192.0.2.1');
      // The admin walks away. The cloud's clock is stepped back a day (it had been set a day
      // ahead); then 9 real hours pass without the session being used.
      now -= 24 * HOUR;
      now += 9 * HOUR;
      expect(store.get(id), 'session still valid after 9 idle hours').to.equal(undefined);
    });
  });

  describe('connector certificate validity and cloud clock corrections (src/common/pki.ts, src/cloud/ca.ts, tunnel-server)', function () {
    this.timeout(60_000);
    let cloud: CloudServer | undefined;
    afterEach(async () => {
      await cloud?.shutdown();
      cloud = undefined;
    });

    it('a connector paired shortly before NTP steps the cloud clock back 10 minutes is not refused for good', async () => {
      const clock = offsetClock();
      cloud = await startInprocCloud({ clock });
      const id = await pairInproc(cloud);
      // The cloud's clock ran 10 minutes fast; NTP corrects it right after the pairing.
      clock.advance(-10 * MIN);
      let outcome: string;
      try {
        const c = await connectAs(cloud, id);
        c.session.close(1000, 'done');
        outcome = 'connected';
      } catch (e) {
        const err = e as { code?: string; retryable?: boolean; message: string };
        outcome = err.retryable ? `retryable ${err.code}` : `PERMANENT ${err.code}: ${err.message}`;
      }
      // Either the connector gets in, or it is told to come back: a permanent AUTH_FAILED makes the
      // supervisor stop for good ("pair it again"), which a new pairing would not fix either.
      expect(outcome.startsWith('PERMANENT'), outcome).to.equal(false);
    });

    it('a step back beyond the certificates\' one-hour backdating: refused as CLOCK_SKEW, retryable, with a wait until the certificate is valid', async () => {
      const clock = offsetClock();
      cloud = await startInprocCloud({ clock });
      const id = await pairInproc(cloud);
      clock.advance(-2 * HOUR); // the cloud ran 2 h fast when it paired the connector
      const err = (await connectAs(cloud, id).then(
        (c) => {
          c.session.close(1000, 'done');
          return undefined;
        },
        (e: unknown) => e,
      )) as { code?: string; retryable?: boolean; retryAfterMs?: number; message: string } | undefined;
      expect(err?.code, err?.message).to.equal('TUNNEL_CLOCK_SKEW');
      expect(err?.retryable, 'retried, not "pair it again"').to.equal(true);
      expect(err?.message).to.match(/not valid before/);
      // Another connector's key cannot use this path: a wrong signature is still AUTH_FAILED.
      const other = await pairInproc(cloud);
      const forged = { ...id, privateKeyPem: other.privateKeyPem };
      const bad = (await connectAs(cloud, forged).then(
        () => undefined,
        (e: unknown) => e,
      )) as { code?: string } | undefined;
      expect(bad?.code).to.equal('TUNNEL_AUTH_FAILED');
    });

    it('a renewal done while the cloud clock was 2 h fast does not block later renewals once NTP corrects it', async () => {
      const clock = offsetClock();
      // 10-day certificates: both sides want a renewal at every connection.
      cloud = await startInprocCloud({ clock, certificateDays: 10 });
      clock.advance(2 * HOUR); // the cloud's clock runs 2 h fast
      const { logger, lines } = capturingLogger();
      const { daemon, id } = await startInprocConnector(cloud, { daemon: { logger } });
      try {
        await until(() => lines.some((l) => l.message === 'connector certificate renewed'), 20_000, 'the first renewal');
        // NTP corrects the clock; 20 real minutes later the connector reconnects (a network blip).
        clock.advance(-2 * HOUR + 20 * MIN);
        const before = cloud.registry.get(id.connectorId);
        before!.session.fail('HEARTBEAT_TIMEOUT', 'test: network blip');
        await until(() => cloud!.registry.get(id.connectorId) !== undefined && cloud!.registry.get(id.connectorId) !== before, 20_000, 'reconnected');
        await until(() => lines.filter((l) => l.message === 'connector certificate renewed').length >= 2 || lines.some((l) => l.message === 'certificate renewal failed; retrying'), 20_000, 'the second renewal attempt');
        const failed = lines.find((l) => l.message === 'certificate renewal failed; retrying');
        expect(failed ? JSON.stringify(failed.err ?? failed) : 'renewed').to.equal('renewed');
      } finally {
        await daemon.shutdown();
      }
    });
  });
});
