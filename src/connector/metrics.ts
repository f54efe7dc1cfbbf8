/**
 * Prometheus metrics of the connector (GET /metrics on the local page's listener). Counters are fed
 * by events (relay finished, token requested, tunnel state); gauges that describe a state (tunnel up,
 * active streams, certificate expiry) are read when scraped, so they can never drift.
 */
import { X509Certificate } from 'node:crypto';
import client from 'prom-client';
import { registerRelayMetrics, RelayTotals, totalsOf } from '../common/relay-totals.js';
import type { Target } from './targets/target.js';
import type { Supervisor } from './supervisor.js';

export interface MetricsSources {
  supervisor(): Supervisor | undefined;
  targets(): Target[];
  certificatePem(): string | undefined;
}

export class ConnectorMetrics {
  readonly registry = new client.Registry();
  private readonly tokens: client.Counter<'target' | 'outcome'>;
  private readonly reconnects: client.Counter;
  private certCache: { pem: string; notAfter: number } | undefined;
  /** The relay's counters and histogram, per target (relay-totals.ts says why plain numbers). */
  private readonly totals = new Map<string, RelayTotals>();
  constructor(src: MetricsSources) {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r, prefix: 'uemlink_connector_' });
    registerRelayMetrics(
      r,
      {
        prefix: 'uemlink_relay',
        label: 'target',
        help: {
          requests: 'Relayed requests by target and HTTP status (499 = cancelled by the cloud or its client before an answer)',
          bytes: 'Body bytes relayed, by target and direction (in = to the UEM, out = back to the cloud)',
          duration: 'Time from the request arriving to the response ending, by target',
        },
      },
      this.totals,
    );
    this.tokens = new client.Counter({ name: 'uemlink_oauth_token_requests_total', help: 'OAuth2 token requests by target and outcome (ok, rejected, unreachable, tls, bad_response, timeout)', labelNames: ['target', 'outcome'], registers: [r] });
    this.reconnects = new client.Counter({ name: 'uemlink_tunnel_reconnects_total', help: 'Tunnel sessions re-established after the first', registers: [r] });
    new client.Gauge({
      name: 'uemlink_tunnel_up',
      help: '1 when the tunnel to the cloud is connected and takes requests (0 while it drains)',
      registers: [r],
      collect() {
        const sup = src.supervisor();
        this.set(sup?.state.state === 'connected' && sup.session?.state === 'open' ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'uemlink_tunnel_rtt_seconds',
      help: 'Round-trip time of the last tunnel heartbeat (NaN while there is no tunnel)',
      registers: [r],
      collect() {
        // NaN (a gap on a graph) without a session: the dead session's last figure read as a
        // healthy tunnel, and 0 would read as a perfect one.
        const sup = src.supervisor();
        const rtt = sup?.state.state === 'connected' ? sup.session?.rttMs : undefined;
        this.set(rtt === undefined ? Number.NaN : rtt / 1000);
      },
    });
    new client.Gauge({
      name: 'uemlink_tunnel_active_streams',
      help: 'Streams (relayed requests) open on the tunnel',
      registers: [r],
      collect() {
        this.set(src.supervisor()?.session?.activeStreams ?? 0);
      },
    });
    new client.Gauge({
      name: 'uemlink_target_up',
      help: '1 when the last health check of the target got an HTTP answer',
      labelNames: ['target'],
      registers: [r],
      collect() {
        this.reset();
        for (const t of src.targets()) if (t.health) this.set({ target: t.id }, t.health.reachable ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'uemlink_target_health_status',
      help: 'HTTP status of the last health check of the target (0: no answer); 401/403 mean the credentials were rejected',
      labelNames: ['target'],
      registers: [r],
      collect() {
        this.reset();
        for (const t of src.targets()) if (t.health) this.set({ target: t.id }, t.health.status ?? 0);
      },
    });
    new client.Gauge({
      name: 'uemlink_target_certificate_expiry_seconds',
      help: "Seconds until the target server's certificate expires (from the last health check)",
      labelNames: ['target'],
      registers: [r],
      collect() {
        this.reset();
        for (const t of src.targets()) {
          const na = t.health?.peerCert?.notAfter;
          if (na) this.set({ target: t.id }, (Date.parse(na) - Date.now()) / 1000);
        }
      },
    });
    const self = this;
    new client.Gauge({
      name: 'uemlink_connector_certificate_expiry_seconds',
      help: "Seconds until the connector's own certificate (issued at pairing) expires",
      registers: [r],
      collect() {
        const pem = src.certificatePem();
        if (!pem) return;
        if (self.certCache?.pem !== pem) self.certCache = { pem, notAfter: Date.parse(new X509Certificate(pem).validTo) };
        this.set((self.certCache.notAfter - Date.now()) / 1000);
      },
    });
  }

  relayFinished(e: { target: string; status: number; bytesIn: number; bytesOut: number; durationMs: number }): void {
    totalsOf(this.totals, e.target).record(e.status, e.bytesIn, e.bytesOut, e.durationMs);
  }

  tokenRequested(target: string, outcome: string): void {
    this.tokens.inc({ target, outcome });
  }

  reconnected(): void {
    this.reconnects.inc();
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
