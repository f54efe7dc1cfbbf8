/**
 * Faults of the processes and of the tunnel, under steady relay load (8 clients, GETs, slow GETs and
 * POSTs): kill -9 and SIGTERM of each side with a restart, a silent half-open cut found by heartbeats,
 * a cut after N bytes of large responses, dropped and trickling connections, a half-close.
 */
import { expect } from 'chai';
import { HEARTBEAT_S, startLab, type Lab, type ReqSpec } from './lab.js';
import { sleep, until, type LogLine } from '../helpers/procs.js';

describe('faults: processes and the tunnel (real processes under load)', function () {
  this.timeout(120_000);
  let lab: Lab;

  before(async function () {
    this.timeout(60_000);
    lab = await startLab();
  });
  after(async () => {
    await lab?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && lab) process.stderr.write(lab.logs());
  });

  const since = (logs: LogLine[], from: number): LogLine[] => logs.slice(from);

  it('kill -9 of the cloud, then a restart', async () => {
    await lab.scenario('cloud kill -9 + restart', {
      allowed: ['net:*', 'aborted', 'no_connector'],
      fault: async () => {
        // A connector's new target list is written within 100 ms of its first connection (not at
        // the next 5 s presence batch): a cloud killed this soon after must still know the targets
        // once restarted, and answer 503 no_connector, never 404 unknown_target.
        await sleep(500);
        lab.cloud.proc.kill('SIGKILL');
        await lab.cloud.proc.wait();
        await sleep(1500); // the outage
        await lab.cloud.restart();
        await lab.waitConnected();
      },
    });
  });

  it('kill -9 of the connector, then a restart', async () => {
    await lab.scenario('connector kill -9 + restart', {
      // In flight: lost with the tunnel (a GET's single retry finds no other connector).
      allowed: ['connector_lost', 'connector_error', 'no_connector'],
      fault: async () => {
        lab.conn.proc.kill('SIGKILL');
        await lab.conn.proc.wait();
        await sleep(1500);
        await lab.conn.start();
        await lab.waitConnected();
      },
    });
  });

  it('SIGTERM of the cloud drains (in-flight requests finish), then a restart', async () => {
    const r = await lab.scenario('cloud SIGTERM (drain) + restart', {
      // Nothing in flight is lost: only new requests are turned away (draining, refused connections).
      allowed: ['net:*', 'draining', 'no_connector'],
      fault: async () => {
        await sleep(200);
        lab.cloud.proc.kill('SIGTERM');
        expect(await lab.cloud.proc.wait(15_000), 'the cloud exits 0 after draining').to.equal(0);
        await lab.cloud.restart();
        await lab.waitConnected();
      },
    });
    expect(r.outcomes.filter((o) => o.spec.tag === 'slow' && o.kind === 'ok').length, 'slow requests answered').to.be.greaterThan(0);
  });

  it('SIGTERM of the connector drains (in-flight requests finish), then a restart', async () => {
    await lab.scenario('connector SIGTERM (drain) + restart', {
      allowed: ['no_connector'],
      fault: async () => {
        await sleep(200);
        lab.conn.proc.kill('SIGTERM');
        expect(await lab.conn.proc.wait(15_000), 'the connector exits 0 after draining').to.equal(0);
        expect(lab.conn.proc.hasLog((l) => l.level === 'error'), 'no error logged by the connector').to.equal(false);
        await lab.conn.start();
        await lab.waitConnected();
      },
    });
  });

  it('a silent half-open cut is found by heartbeats on both sides within three intervals (two silent ones); the connector reconnects', async () => {
    let detectConnector = 0;
    let detectCloud = 0;
    await lab.scenario('tunnel silent cut (half-open)', {
      allowed: ['connector_lost', 'connector_error', 'no_connector', 'upstream_timeout'],
      fault: async () => {
        const c0 = lab.conn.proc.logs.length;
        const k0 = lab.cloud.proc.logs.length;
        const t0 = Date.now();
        // Existing connections stop forwarding (no FIN, no RST); new ones pass.
        lab.tunnel.set({ kind: 'stall' }, { newConnections: false });
        await until(() => since(lab.conn.proc.logs, c0).some((l) => l.message === 'tunnel lost'), 10_000, 'the connector to notice');
        detectConnector = Date.now() - t0;
        const lost = since(lab.conn.proc.logs, c0).find((l) => l.message === 'tunnel lost')!;
        expect(lost.code).to.equal('TUNNEL_HEARTBEAT_TIMEOUT');
        await until(() => since(lab.cloud.proc.logs, k0).some((l) => l.message === 'connector disconnected'), 10_000, 'the cloud to notice');
        detectCloud = Date.now() - t0;
        const gone = since(lab.cloud.proc.logs, k0).find((l) => l.message === 'connector disconnected')!;
        // The cloud's heartbeat ends it, or, when the connector (whose heartbeat fired a moment
        // earlier) is back first on a busy machine, its new session replaces the dead one (4001).
        // Either way the dead session is gone within the bound below.
        expect(`${String(gone.code)} ${String(gone.reason)}`).to.match(/4009|heartbeat|4001 a newer session/i);
        await lab.waitConnected();
      },
    });
    const t = lab.tunnel.counters;
    expect(t.stalled).to.be.greaterThan(0);
    // Three intervals (two whole ones without a byte, after the last), plus scheduling slack on a
    // loaded 2-core machine.
    const bound = 3 * HEARTBEAT_S * 1000 + 1500;
    expect(detectConnector, 'connector detection (ms)').to.be.below(bound);
    expect(detectCloud, 'cloud detection (ms)').to.be.below(bound);
    process.stdout.write(`      half-open cut detected by the connector after ${detectConnector} ms, by the cloud after ${detectCloud} ms (heartbeat ${HEARTBEAT_S} s)\n`);
  });

  const bigMix = (n: number): ReqSpec =>
    n % 3 === 0 ? { method: 'GET', path: 'acme/uem/load/big?bytes=2000000', tag: 'big' } : n % 3 === 1 ? { method: 'POST', path: 'acme/uem/load/orders', tag: 'post' } : { method: 'GET', path: 'acme/uem/load/small', tag: 'get' };

  for (const how of ['rst', 'fin'] as const) {
    it(`a tunnel cut (${how.toUpperCase()}) after N bytes of large responses: the client sees an abort, never a short 200`, async () => {
      const r = await lab.scenario(`tunnel cut after 300 KB (${how})`, {
        pick: bigMix,
        // `net:*`: an abort that came before the answer's head left the cloud (see uem.test.ts).
        allowed: ['aborted', 'net:*', 'connector_lost', 'connector_error', 'no_connector'],
        fault: async () => {
          const cuts = lab.tunnel.counters.cuts;
          // Connector → cloud is where response bodies flow.
          lab.tunnel.set({ kind: 'cut', afterBytes: 300_000, how, direction: 'up' }, { newConnections: false });
          await until(() => lab.tunnel.counters.cuts > cuts, 10_000, 'the cut');
          await lab.waitConnected();
        },
      });
      expect(r.outcomes.filter((o) => o.spec.tag === 'big' && o.kind === 'ok').length, 'large responses complete after the cut').to.be.greaterThan(0);
      // The cut hit requests in flight: they ended with an abort (mid-body) or a clear error (before
      // the head); which of the two depends on where the 300 KB fell.
      const hit = Object.entries(r.t.errors).filter(([c]) => c === 'aborted' || c === 'connector_lost' || c.startsWith('net:')).reduce((n, [, v]) => n + v, 0);
      expect(hit, 'requests ended by the cut').to.be.greaterThan(0);
    });
  }

  it('the path to the cloud refuses new connections for a while (connections reset)', async () => {
    await lab.scenario('tunnel dropped + refused 3 s', {
      allowed: ['connector_lost', 'connector_error', 'no_connector'],
      fault: async () => {
        lab.tunnel.set({ kind: 'drop' });
        lab.tunnel.resetAll();
        await sleep(3000);
        expect(lab.tunnel.counters.dropped, 'reconnection attempts refused').to.be.greaterThan(0);
        lab.tunnel.set({ kind: 'pass' });
        await lab.waitConnected();
      },
    });
  });

  it('a half-close of the tunnel (FIN towards the connector): it reconnects', async () => {
    await lab.scenario('tunnel half-close', {
      allowed: ['connector_lost', 'connector_error', 'no_connector', 'upstream_timeout'],
      fault: async () => {
        const c0 = lab.conn.proc.logs.length;
        lab.tunnel.set({ kind: 'halfClose' }, { newConnections: false });
        await until(() => since(lab.conn.proc.logs, c0).some((l) => l.message === 'tunnel lost'), 10_000, 'the connector to notice');
        await lab.waitConnected();
      },
    });
  });

  it('a tunnel slowed to a trickle: every request still ends in time', async () => {
    await lab.scenario('tunnel trickle 8 KB/100 ms', {
      // Slow but alive: answers, or timeouts; heartbeats keep flowing so the tunnel may survive.
      allowed: ['upstream_timeout', 'connector_lost', 'connector_error', 'no_connector', 'aborted'],
      fault: async () => {
        lab.tunnel.set({ kind: 'trickle', bytes: 8 * 1024, everyMs: 100 });
        await sleep(5000);
        lab.tunnel.set({ kind: 'pass' });
      },
    });
  });
});
