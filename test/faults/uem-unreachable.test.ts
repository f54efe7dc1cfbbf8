/**
 * Adverse-network review: two connectors serve one target, and one of them cannot reach the UEM
 * at all because its SYNs go unanswered (a site link down, a firewall that drops, the UEM host
 * gone from that network). Real processes; the UEM address of connector A is a loopback black hole.
 *
 * The relay fails a request over to another connector when the first one answers that the UEM
 * never saw it (`x-uemlink-unsent`, api.md "Routing and retries"). The connector sets that only for
 * ECONNREFUSED, ENOTFOUND and EAI_AGAIN, TLS refusals and OAuth2 (relay.ts UNSENT_CAUSES,
 * neverSent()). A connection that was never established — undici's connect timeout
 * (UND_ERR_CONNECT_TIMEOUT, "no connection within N ms"), EHOSTUNREACH, ENETUNREACH — is just as
 * certainly unsent, but answers `504 upstream_timeout` / `502 upstream_unreachable` without it: the
 * request is not sent through the connector that can reach the UEM, and A is not tried last for
 * the target afterwards.
 */
import { expect } from 'chai';
import { connectorEntry, makeConnector, tempDir, until, type Connector } from '../helpers/procs.js';
import { startLab, type Lab, type Outcome } from './lab.js';
import { blackHole, type BlackHole } from '../helpers/network-faults.js';

describe('network faults (found in review): a connector that cannot reach the UEM at all, beside one that can', function () {
  this.timeout(120_000);
  let lab: Lab;
  let hole: BlackHole;
  let b: Connector;

  before(async function () {
    this.timeout(60_000);
    hole = await blackHole();
    // Connector A (the lab's): target "site" at the black hole, 3 s to connect (the relay deadline is 5 s).
    lab = await startLab({
      targets: (uem) => [{ id: 'site', baseUrl: `https://127.0.0.1:${hole.port}`, auth: { type: 'none' }, tls: { ca: uem.up.caPem }, timeoutMs: 3000 }],
    });
    // Connector B: the same target id, at the UEM it can reach.
    b = await makeConnector({
      dir: tempDir('uemlink-review-b-'),
      config: {
        logLevel: 'info',
        cloudUrl: lab.cloud.url,
        targets: [{ id: 'site', baseUrl: lab.uem.up.baseUrl, auth: { type: 'none' }, tls: { ca: lab.uem.up.caPem }, timeoutMs: 3000 }],
        health: { checkIntervalSeconds: 0 },
      },
    });
    const t = await lab.cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' });
    const r = await b.pair(t.body.token as string);
    if (r.code !== 0) throw new Error(r.stderr);
    const bId = r.stdout.trim();
    await b.start();
    await until(async () => (await connectorEntry(lab.cloud, bId))?.connected, 20_000, 'connector B to connect');
  });
  after(async () => {
    await b?.proc?.stop();
    await lab?.stop();
    await hole?.close();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && lab) process.stderr.write(lab.logs());
  });

  it('GETs are answered through connector B (A says its UEM never saw them), not 504 upstream_timeout', async () => {
    const load = lab.load();
    const outcomes: Outcome[] = [];
    // One at a time: both connectors are equally idle, so each pick is a coin toss.
    for (let i = 0; i < 10; i++) outcomes.push(await load.one({ method: 'GET', path: `acme/site/load/small?i=${i}`, tag: 'site' }));
    await load.stop();
    const by: Record<string, number> = {};
    for (const o of outcomes) by[o.code] = (by[o.code] ?? 0) + 1;
    const slowest = Math.max(...outcomes.map((o) => o.endedAt - o.startedAt));
    process.stdout.write(`      10 GETs: ${JSON.stringify(by)}; slowest ${slowest} ms\n`);
    expect(outcomes.filter((o) => o.kind !== 'ok').map((o) => o.code), 'GETs not answered by the UEM through B').to.deep.equal([]);
  });
});
