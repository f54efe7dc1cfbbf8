/**
 * What a relay did since start, per key (the connector's target, the cloud's tenant): plain numbers
 * turned into Prometheus metrics only when /metrics is scraped. prom-client validates and hashes the
 * labels on every inc()/observe(), even through a label child: ~3 % of the connector's CPU per small
 * relayed call (docs/performance.md).
 */
import client from 'prom-client';

export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class RelayTotals {
  readonly byStatus = new Map<number, number>();
  bytesIn = 0;
  bytesOut = 0;
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  durationSum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.durationSum += seconds;
    this.count++;
  }

  /** One finished call: its status (0 = no answer), body bytes each way and duration. */
  record(status: number, bytesIn: number, bytesOut: number, durationMs: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    this.bytesIn += bytesIn;
    this.bytesOut += bytesOut;
    this.observe(durationMs / 1000);
  }
}

/** The totals of `key`, created at its first call. */
export function totalsOf(all: Map<string, RelayTotals>, key: string): RelayTotals {
  let t = all.get(key);
  if (!t) all.set(key, (t = new RelayTotals()));
  return t;
}

/**
 * A duration histogram in the shape prom-client's registry prints (cumulative `_bucket` lines with
 * `le`, then `_sum` and `_count`), read from the totals, one series per key under label `label`.
 */
function durationHistogram(name: string, help: string, label: string, totals: Map<string, RelayTotals>): { name: string; help: string; type: string; get(): Promise<unknown> } {
  return {
    name,
    help,
    type: 'histogram',
    async get() {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (const [key, t] of totals) {
        let cumulative = 0;
        for (let i = 0; i <= DURATION_BUCKETS.length; i++) {
          cumulative += t.buckets[i]!;
          values.push({ labels: { le: i < DURATION_BUCKETS.length ? DURATION_BUCKETS[i]! : '+Inf', [label]: key }, value: cumulative, metricName: `${name}_bucket` });
        }
        values.push({ labels: { [label]: key }, value: t.durationSum, metricName: `${name}_sum` });
        values.push({ labels: { [label]: key }, value: t.count, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
  };
}

/**
 * The three relay metrics read from `totals` when scraped: `<prefix>_requests_total` by status,
 * `<prefix>_bytes_total` by direction and `<prefix>_duration_seconds`, each per `label` (the
 * connector's target, the cloud's tenant). `help` says what `label`, `in` and `out` are there.
 */
export function registerRelayMetrics(
  r: client.Registry,
  o: { prefix: string; label: string; help: { requests: string; bytes: string; duration: string } },
  totals: Map<string, RelayTotals>,
): void {
  const label = o.label;
  new client.Counter({
    name: `${o.prefix}_requests_total`,
    help: o.help.requests,
    labelNames: [label, 'status'],
    registers: [r],
    collect() {
      this.reset();
      for (const [key, t] of totals) for (const [status, n] of t.byStatus) this.inc({ [label]: key, status: String(status) }, n);
    },
  });
  new client.Counter({
    name: `${o.prefix}_bytes_total`,
    help: o.help.bytes,
    labelNames: [label, 'direction'],
    registers: [r],
    collect() {
      this.reset();
      for (const [key, t] of totals) {
        this.inc({ [label]: key, direction: 'in' }, t.bytesIn);
        this.inc({ [label]: key, direction: 'out' }, t.bytesOut);
      }
    },
  });
  r.registerMetric(durationHistogram(`${o.prefix}_duration_seconds`, o.help.duration, label, totals) as unknown as client.Metric);
}
