/**
 * Prometheus metrics of the connector (GET /metrics on the local page's listener). Counters are fed
 * by events (relay finished, token requested, tunnel state); gauges that describe a state (tunnel up,
 * active streams, certificate expiry) are read when scraped, so they can never drift.
 */
import { X509Certificate } from 'node:crypto';
import client from 'prom-client';
import type { Target } from './targets/target.js';
import type { Supervisor } from './supervisor.js';

export interface MetricsSources {
  supervisor(): Supervisor | undefined;
  targets(): Target[];
  certificatePem(): string | undefined;
}

interface TargetChildren {
  requests: Map<number, client.Counter.Internal>;
  bytesIn: client.Counter.Internal;
  bytesOut: client.Counter.Internal;
  duration: client.Histogram.Internal<'target'>;
}

export class ConnectorMetrics {
  readonly registry = new client.Registry();
  private readonly requests: client.Counter<'target' | 'status'>;
  private readonly bytes: client.Counter<'target' | 'direction'>;
  private readonly duration: client.Histogram<'target'>;
  private readonly tokens: client.Counter<'target' | 'outcome'>;
  private readonly reconnects: client.Counter;
  private certCache: { pem: string; notAfter: number } | undefined;
  /**
   * Label children kept per target: prom-client hashes a label object on every inc()/observe(),
   * which was 2-3 % of the connector's CPU per small relayed call.
   */
  private readonly children = new Map<string, TargetChildren>();

  constructor(src: MetricsSources) {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r, prefix: 'uemlink_connector_' });
    this.requests = new client.Counter({ name: 'uemlink_relay_requests_total', help: 'Relayed requests by target and HTTP status (0 = no answer)', labelNames: ['target', 'status'], registers: [r] });
    this.bytes = new client.Counter({ name: 'uemlink_relay_bytes_total', help: 'Body bytes relayed, by target and direction (in = to the UEM, out = to the cloud)', labelNames: ['target', 'direction'], registers: [r] });
    this.duration = new client.Histogram({
      name: 'uemlink_relay_duration_seconds',
      help: 'Time from the request arriving to the response ending, by target',
      labelNames: ['target'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [r],
    });
    this.tokens = new client.Counter({ name: 'uemlink_oauth_token_requests_total', help: 'OAuth2 token requests by target and outcome (ok, rejected, unreachable, tls, bad_response, timeout)', labelNames: ['target', 'outcome'], registers: [r] });
    this.reconnects = new client.Counter({ name: 'uemlink_tunnel_reconnects_total', help: 'Tunnel sessions re-established after the first', registers: [r] });
    new client.Gauge({
      name: 'uemlink_tunnel_up',
      help: '1 when the tunnel to the cloud is connected',
      registers: [r],
      collect() {
        this.set(src.supervisor()?.state.state === 'connected' ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'uemlink_tunnel_rtt_seconds',
      help: 'Round-trip time of the last tunnel heartbeat',
      registers: [r],
      collect() {
        const rtt = src.supervisor()?.session?.rttMs;
        if (rtt !== undefined) this.set(rtt / 1000);
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
    const m = this.perTarget(e.target);
    let byStatus = m.requests.get(e.status);
    if (!byStatus) m.requests.set(e.status, (byStatus = this.requests.labels(e.target, String(e.status))));
    byStatus.inc();
    if (e.bytesIn) m.bytesIn.inc(e.bytesIn);
    if (e.bytesOut) m.bytesOut.inc(e.bytesOut);
    m.duration.observe(e.durationMs / 1000);
  }

  private perTarget(target: string): TargetChildren {
    let c = this.children.get(target);
    if (!c) {
      c = {
        requests: new Map(),
        bytesIn: this.bytes.labels(target, 'in'),
        bytesOut: this.bytes.labels(target, 'out'),
        duration: this.duration.labels(target),
      };
      this.children.set(target, c);
    }
    return c;
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
