/**
 * Prometheus metrics of the cloud relay, served on their own listener (`metrics.listen`, never the
 * public one: the figures name tenants). Relay calls are counted in plain numbers per tenant
 * (relay-totals.ts); states (connectors connected, handshakes in progress, draining) are read when
 * scraped, so they cannot drift.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';
import { registerRelayMetrics, RelayTotals, totalsOf } from '../common/relay-totals.js';
import type { HostPort } from '../common/config.js';

export interface CloudMetricsSources {
  connectors(): number;
  pendingHandshakes(): number;
  draining(): boolean;
}

/** How a tunnel handshake ended: `connected`, or why it was refused (GOAWAY codes, lower-case). */
export type HandshakeOutcome = string;

export class CloudMetrics {
  readonly registry = new client.Registry();
  private readonly totals = new Map<string, RelayTotals>();
  private readonly handshakes: client.Counter<'outcome'>;
  private readonly relayErrors: client.Counter<'code'>;

  constructor(src: CloudMetricsSources) {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r, prefix: 'uemlink_cloud_' });
    new client.Gauge({
      name: 'uemlink_cloud_connectors_connected',
      help: 'Connectors with a live tunnel to this process',
      registers: [r],
      collect() {
        this.set(src.connectors());
      },
    });
    new client.Gauge({
      name: 'uemlink_cloud_tunnel_handshakes_in_progress',
      help: 'Tunnel handshakes under way (storm control refuses beyond maxPendingHandshakes)',
      registers: [r],
      collect() {
        this.set(src.pendingHandshakes());
      },
    });
    new client.Gauge({
      name: 'uemlink_cloud_draining',
      help: '1 while the relay shuts down (no new tunnels or requests)',
      registers: [r],
      collect() {
        this.set(src.draining() ? 1 : 0);
      },
    });
    this.handshakes = new client.Counter({
      name: 'uemlink_cloud_tunnel_handshakes_total',
      help: 'Tunnel handshakes by outcome: connected, probe (a diagnostic probe authenticated), abandoned (the connector left first), or the refusal (overloaded, draining, revoked, auth_failed, …)',
      labelNames: ['outcome'],
      registers: [r],
    });
    this.relayErrors = new client.Counter({
      name: 'uemlink_cloud_relay_errors_total',
      help: "Relay answers made by uemlink rather than the UEM, by error code (x-uemlink-error: no_connector, upstream_*, …)",
      labelNames: ['code'],
      registers: [r],
    });
    registerRelayMetrics(
      r,
      {
        prefix: 'uemlink_cloud_relay',
        label: 'tenant',
        help: {
          requests: 'Relayed requests by tenant and HTTP status (0 = the client got no answer)',
          bytes: 'Bytes on the client connection while a call lasted, by tenant and direction (in = the request body, out = the response)',
          duration: 'Time from the request arriving to the response ending, by tenant',
        },
      },
      this.totals,
    );
  }

  handshake(outcome: HandshakeOutcome): void {
    this.handshakes.inc({ outcome });
  }

  /** One relayed call ended (answered, refused or cut). `tenant` is undefined before it is known. */
  relayFinished(e: { tenant: string | undefined; status: number; bytesIn: number; bytesOut: number; durationMs: number; errorCode: string | undefined }): void {
    // Calls refused before the tenant was checked (a bad path, no credentials) are not any tenant's.
    totalsOf(this.totals, e.tenant ?? '').record(e.status, e.bytesIn, e.bytesOut, e.durationMs);
    if (e.errorCode) this.relayErrors.inc({ code: e.errorCode });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Serves GET /metrics on `listen` (plain HTTP: keep it on loopback or an internal network). */
  async serve(listen: HostPort): Promise<Server> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        const body = JSON.stringify({ error: 'not_found', message: 'this listener serves GET /metrics only' });
        res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
        return;
      }
      this.text().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType, 'content-length': Buffer.byteLength(text) }).end(req.method === 'HEAD' ? undefined : text),
        () => res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' }).end('{"error":"internal","message":"metrics unavailable"}'),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server;
  }
}

export function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}
