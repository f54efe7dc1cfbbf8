/**
 * Adverse-network review: a UEM that answers slowly (but always within its time) under many
 * requests in flight (real processes).
 *
 * The connector holds at most `maxConcurrent` (default 64) connections to a UEM; further requests
 * wait in undici's queue, and the target's deadline (timeoutMs, capped by the cloud's time left)
 * runs from the moment the request arrived, queue included (Target.watch, target.ts). A request
 * whose deadline passes while it is still queued has never been sent; the client nevertheless gets
 * `504 upstream_timeout` "<uem>: no answer within N ms", without `x-uemlink-unsent`: the admin reads
 * a slow UEM (its own logs show nothing), the cloud does not try another connector, and a POST
 * client cannot know it is safe to send again.
 *
 * Measured with the defaults (64 connections, timeoutMs 30 s, relay 60 s), 1,000 GETs in flight and
 * a UEM answering each in 3 s: 616 × 200, 384 × 504 after 31 s, of which 320 never reached the UEM.
 */
import { expect } from 'chai';
import { startLab, type Lab, type Outcome } from './lab.js';

describe('network faults (found in review): requests that time out in the connector\'s queue to the UEM', function () {
  this.timeout(60_000);
  let lab: Lab;

  before(async function () {
    this.timeout(60_000);
    lab = await startLab({
      // 4 connections to the UEM, 3 s deadline: a UEM answering in 1 s serves ~12 of 40 in time.
      targets: (uem) => [{ id: 'q', baseUrl: uem.up.baseUrl, auth: { type: 'none' }, tls: { ca: uem.up.caPem }, timeoutMs: 3000, maxConcurrent: 4 }],
    });
  });
  after(async () => {
    await lab?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && lab) process.stderr.write(lab.logs());
  });

  it('a request that never left the connector is not reported as the UEM timing out (504 upstream_timeout without x-uemlink-unsent)', async () => {
    const load = lab.load();
    const GET = (n: number): Promise<Outcome> => load.one({ method: 'GET', path: `acme/q/load/slow?ms=1000&n=${n}`, tag: 'slow' });
    const POST = (n: number): Promise<Outcome> => load.one({ method: 'POST', path: `acme/q/load/slow?ms=1000&n=${n}`, tag: 'slow-post' });
    const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 4 === 3 ? POST(i) : GET(i))));
    await load.stop();
    const timedOut = outcomes.filter((o) => o.code === 'upstream_timeout');
    const neverSent = timedOut.filter((o) => !lab.uem.seen.has(o.id));
    const by: Record<string, number> = {};
    for (const o of outcomes) by[o.code] = (by[o.code] ?? 0) + 1;
    process.stdout.write(`      40 in flight: ${JSON.stringify(by)}; the UEM saw ${[...lab.uem.seen.keys()].filter((k) => outcomes.some((o) => o.id === k)).length}; 504 for requests it never saw: ${neverSent.length} (POSTs among them: ${neverSent.filter((o) => o.spec.method === 'POST').length})\n`);
    expect(outcomes.filter((o) => o.kind === 'ok').length, 'some answered (control)').to.be.greaterThan(4);
    expect(timedOut.length, 'some waited out their deadline in the queue (control)').to.be.greaterThan(0);
    // The UEM never saw these: they must not read as the UEM being slow (a distinct code, e.g. a 503
    // "connector busy", with x-uemlink-unsent so the cloud may try another connector and a client
    // may resend a POST).
    expect(neverSent.map((o) => `${o.spec.method} ${o.code}`), 'requests never sent to the UEM, answered 504 upstream_timeout').to.deep.equal([]);
  });
});
