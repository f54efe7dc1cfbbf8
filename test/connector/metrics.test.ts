import { expect } from 'chai';
import fc from 'fast-check';
import client from 'prom-client';
import { ConnectorMetrics } from '../../src/connector/metrics.js';

/** The relay's lines of a /metrics text (the process metrics differ from run to run). */
function relayLines(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('uemlink_relay_') || /^# (HELP|TYPE) uemlink_relay_/.test(l));
}

const finished = fc.record({
  target: fc.constantFrom('ws1', 'ivanti', 'a"b\\c'),
  status: fc.constantFrom(0, 200, 404, 499, 502),
  bytesIn: fc.nat(1e9),
  bytesOut: fc.nat(1e9),
  durationMs: fc.oneof(fc.nat(120_000), fc.constantFrom(5, 10, 25, 60_000), fc.double({ min: 0, max: 100_000, noNaN: true })),
});

describe('connector metrics', () => {
  it('prints the relay counters and duration histogram exactly as prom-client would have for the same calls', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(finished, { maxLength: 40 }), async (calls) => {
        const m = new ConnectorMetrics({ supervisor: () => undefined, targets: () => [], certificatePem: () => undefined });
        // The reference: prom-client's own metrics, fed the way the connector fed them before.
        const ref = new client.Registry();
        const requests = new client.Counter({ name: 'uemlink_relay_requests_total', help: 'Relayed requests by target and HTTP status (499 = cancelled by the cloud or its client before an answer)', labelNames: ['target', 'status'], registers: [ref] });
        const bytes = new client.Counter({ name: 'uemlink_relay_bytes_total', help: 'Body bytes relayed, by target and direction (in = to the UEM, out = back to the cloud)', labelNames: ['target', 'direction'], registers: [ref] });
        const duration = new client.Histogram({
          name: 'uemlink_relay_duration_seconds',
          help: 'Time from the request arriving to the response ending, by target',
          labelNames: ['target'],
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
          registers: [ref],
        });
        for (const c of calls) {
          m.relayFinished(c);
          requests.inc({ target: c.target, status: String(c.status) });
          bytes.inc({ target: c.target, direction: 'in' }, c.bytesIn);
          bytes.inc({ target: c.target, direction: 'out' }, c.bytesOut);
          duration.observe({ target: c.target }, c.durationMs / 1000);
        }
        const ours = relayLines(await m.text());
        const theirs = relayLines(await ref.metrics());
        // Sample order within a metric may differ (insertion order of label sets); the set may not.
        expect([...ours].sort()).to.deep.equal([...theirs].sort());
        expect(ours.filter((l) => l.startsWith('# TYPE'))).to.deep.equal(theirs.filter((l) => l.startsWith('# TYPE')));
      }),
      { numRuns: 60 },
    );
  });

  it('counts a scrape after more calls from where the last one left off (totals, not deltas)', async () => {
    const m = new ConnectorMetrics({ supervisor: () => undefined, targets: () => [], certificatePem: () => undefined });
    m.relayFinished({ target: 'ws1', status: 200, bytesIn: 0, bytesOut: 10, durationMs: 3 });
    expect(await m.text()).to.match(/^uemlink_relay_requests_total\{target="ws1",status="200"\} 1$/m);
    m.relayFinished({ target: 'ws1', status: 200, bytesIn: 5, bytesOut: 10, durationMs: 7000 });
    const t = await m.text();
    expect(t).to.match(/^uemlink_relay_requests_total\{target="ws1",status="200"\} 2$/m);
    expect(t).to.match(/^uemlink_relay_bytes_total\{target="ws1",direction="out"\} 20$/m);
    expect(t).to.match(/^uemlink_relay_duration_seconds_bucket\{le="0.005",target="ws1"\} 1$/m);
    expect(t).to.match(/^uemlink_relay_duration_seconds_bucket\{le="5",target="ws1"\} 1$/m);
    expect(t).to.match(/^uemlink_relay_duration_seconds_bucket\{le="10",target="ws1"\} 2$/m);
    expect(t).to.match(/^uemlink_relay_duration_seconds_count\{target="ws1"\} 2$/m);
  });
});
