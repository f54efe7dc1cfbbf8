/**
 * Adverse-network review: a wall-clock step (NTP) while a heartbeat PING is in flight.
 *
 * The session times its PING with clock.now() (Date.now(), session.ts ping()/handle('pong')), not a
 * monotonic clock. A step back of an hour between PING and PONG makes the round-trip time −3,600 s,
 * which the connector shows as `tunnel.rttMs` and exports as uemlink_tunnel_rtt_seconds until the
 * next heartbeat (15 s); a step forward makes it +3,600 s, and the window auto-tuning, which calls a
 * stream "fast" when it consumed half its window within 4 × RTT, then grows every active stream's
 * window towards 16 MiB (up to the session's 64 MiB budget) whatever the reader's speed.
 *
 * In-process (a MuxSession pair over the tests' memory transport) with a clock of the test's own
 * whose wall time can be stepped; timers stay real.
 */
import { expect } from 'chai';
import { systemClock, type Clock } from '../../src/common/clock.js';
import { sessionPair, waitFor, type Pair } from '../helpers/sessions.js';

describe('network faults (found in review): wall-clock steps and the tunnel heartbeat', function () {
  this.timeout(10_000);
  let p: Pair | undefined;
  afterEach(() => {
    p?.cloud.close();
    p?.connector.close();
    p = undefined;
  });

  for (const stepMs of [-3_600_000, 3_600_000]) {
    it(`a step of ${stepMs > 0 ? '+' : ''}${stepMs / 1000} s while a PING is in flight does not make the round-trip time ${stepMs > 0 ? 'an hour' : 'negative'}`, async () => {
      let offset = 0;
      const clock: Clock = { ...systemClock, now: () => Date.now() + offset };
      p = sessionPair({ heartbeatMs: 300, clock });
      const pair = p;
      await waitFor(() => pair.cloud.rttMs !== undefined, 2000, 'a first round trip');
      const before = pair.cloud.rttMs!;
      // Hold the connector's answers: the cloud's next PING (within 300 ms) waits for its PONG.
      pair.connectorT.stalled = true;
      await new Promise((r) => setTimeout(r, 350));
      offset = stepMs; // NTP steps the wall clock
      pair.connectorT.resume();
      await waitFor(() => pair.cloud.rttMs !== before, 2000, 'the PONG');
      const rtt = pair.cloud.rttMs!;
      process.stdout.write(`      rtt before ${before} ms, after the step ${rtt} ms\n`);
      expect(rtt, 'round-trip time after the step (ms)').to.be.within(0, 5000);
    });
  }
});
