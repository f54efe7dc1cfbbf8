/**
 * High-availability review: failover, draining and routing across several connectors of a tenant.
 * Each test here failed when written (kept as regression tests); it states the behaviour an admin running several connectors
 * for one target expects. In-process cloud and connectors, loopback only, bounded waits.
 */
import { expect } from 'chai';
import { get as httpGet, type IncomingMessage } from 'node:http';
import type { CloudServer } from '../../src/cloud/server.js';
import { startInprocCloud, startInprocConnector } from '../helpers/inproc.js';
import { ADMIN_TOKEN, freePort, sleep, until } from '../helpers/procs.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

type Conn = Awaited<ReturnType<typeof startInprocConnector>>;

/** The cloud-side transport of a live session (to cut a tunnel or simulate a busy link). */
interface TransportInternals {
  terminate(): void;
  bufferedAmount: number;
}
function transportOf(cloud: CloudServer, connectorId: string): TransportInternals {
  return (cloud.registry.get(connectorId)!.session as unknown as { transport: TransportInternals }).transport;
}

function target(id: string, up: Upstream, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem }, ...extra };
}

describe('high availability and failover (found in review)', function () {
  this.timeout(60_000);
  const stops: Array<() => Promise<unknown>> = [];
  let good: Upstream;
  let hang: Upstream;

  before(async () => {
    good = await startUpstream();
    // Never answers: a request stays in flight on its connector until the test cuts it.
    hang = await startUpstream({
      handler: () => {
        /* no answer */
      },
    });
  });
  after(async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
    await good.close();
    await hang.close();
  });

  async function connector(cloud: CloudServer, opts: Parameters<typeof startInprocConnector>[1]): Promise<Conn> {
    const c = await startInprocConnector(cloud, opts);
    stops.push(() => c.daemon.shutdown());
    return c;
  }

  it('a tunnel that runs out of stream ids is re-established: the connector does not stay connected but unusable (503) for ever', async () => {
    const cloud = await startInprocCloud({ relayTimeoutMs: 5000 });
    stops.push(() => cloud.shutdown());
    const a = await connector(cloud, { tenant: 'ids', targets: [target('x', good)] });
    const first = cloud.registry.get(a.id.connectorId)!;
    // As after ~1.07 billion requests over one long-lived tunnel (the cloud opens odd ids up to
    // 2^31-1; ~12 days at 1,000 requests/s): the next request takes the last id.
    (first.session as unknown as { nextLocalId: number }).nextLocalId = 0x7fffffff;
    expect((await cloud.relay.fetch('ids', 'x', '/last-id')).status).to.equal(200);
    // Ids are exhausted now: this one may fail, but the tunnel must be re-established ("When ids run
    // out the opener sends GOAWAY SHUTTING_DOWN and the tunnel is re-established", protocol.md §5).
    await cloud.relay.fetch('ids', 'x', '/after').then((r) => r.text());
    let status = 0;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const r = await cloud.relay.fetch('ids', 'x', '/again');
      await r.text();
      status = r.status;
      if (status === 200) break;
      await sleep(250);
    }
    const now = cloud.registry.get(a.id.connectorId);
    expect(
      status,
      `10 s after the ids ran out: cloud session ${now === first ? 'is still the old one' : 'was replaced'}, state ${now?.session.state}; ` +
        `connector's tunnel state "${a.daemon.tunnel?.state.state}", its session ${a.daemon.tunnel?.session?.state}`,
    ).to.equal(200);
  });

  it('a GET in flight on a connector whose busy tunnel is cut is retried on the other connector (not 502 connector_error)', async () => {
    const cloud = await startInprocCloud({ relayTimeoutMs: 8000 });
    stops.push(() => cloud.shutdown());
    const a = await connector(cloud, { tenant: 'busy', targets: [target('x', hang)] });
    // A's tunnel is busy (an upload in progress on a slow link, or the link stalling before it is
    // declared dead): more than the session's 1 MiB high-water mark waits on its socket, so the
    // GET's OPEN goes out but its END waits its turn in the scheduler.
    Object.defineProperty(transportOf(cloud, a.id.connectorId), 'bufferedAmount', { get: () => 2 * 1024 * 1024 });
    const seenBefore = hang.seen.length;
    const answer = cloud.relay.fetch('busy', 'x', '/devices');
    await until(() => hang.seen.length > seenBefore, 5000, 'the GET to reach A\'s UEM');
    // A second connector for the same target comes up; then A's tunnel is cut.
    const b = await connector(cloud, { tenant: 'busy', targets: [target('x', good)] });
    transportOf(cloud, a.id.connectorId).terminate();
    const r = await answer;
    const text = await r.text();
    // api.md: "tunnel lost before the response head | only GET/HEAD/OPTIONS without a body, once".
    expect(r.status, `answer: ${r.headers.get('x-uemlink-error')} ${text}`).to.equal(200);
    expect(r.headers.get('x-uemlink-connector')).to.equal(b.id.connectorId);
  });

  it('a POST whose upload is cut with the tunnel is reported as 502 connector_lost (the tunnel was lost), not connector_error', async () => {
    const cloud = await startInprocCloud({ relayTimeoutMs: 8000 });
    stops.push(() => cloud.shutdown());
    // A UEM that takes the request but does not read its body: the upload waits for window credit.
    const sink = await startUpstream({
      handler: () => {
        /* reads nothing, answers nothing */
      },
    });
    stops.push(() => sink.close());
    const a = await connector(cloud, { tenant: 'upl', targets: [target('x', sink)] });
    const body = Buffer.alloc(32 * 1024 * 1024, 7);
    const answer = cloud.relay.fetch('upl', 'x', '/apps/upload', { method: 'POST', body });
    await until(() => sink.seen.length > 0, 5000, 'the upload to reach the UEM');
    await sleep(300);
    transportOf(cloud, a.id.connectorId).terminate();
    const r = await answer;
    const text = await r.text();
    expect(r.status).to.equal(502);
    expect(r.headers.get('x-uemlink-error'), text).to.equal('connector_lost');
  });

  it('cloud drain: a download in flight to a client reading at a modest pace completes within the drain timeout (not cut at the end)', async () => {
    const size = 32 * 1024 * 1024;
    const big = await startUpstream({
      handler: async (_req, res) => {
        res.writeHead(200, { 'content-length': String(size) });
        const chunk = Buffer.alloc(1024 * 1024, 0x61);
        for (let i = 0; i < size / chunk.length; i++) {
          if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
        }
        res.end();
      },
    });
    stops.push(() => big.close());
    const cloud = await startInprocCloud({ relayTimeoutMs: 15_000 });
    // A generous drain timeout: the download needs ~4 s of it.
    (cloud.config as { drainTimeoutMs: number }).drainTimeoutMs = 30_000;
    stops.push(() => cloud.shutdown());
    await connector(cloud, { tenant: 'drain', targets: [target('big', big)] });

    let shutdown: Promise<void> | undefined;
    let shutdownDoneAt = 0;
    const result = await new Promise<{ bytes: number; complete: boolean; ms: number }>((resolve, reject) => {
      const started = Date.now();
      const req = httpGet(`http://127.0.0.1:${cloud.port}/api/v1/relay/drain/big/file`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, agent: false }, (res: IncomingMessage) => {
        // SIGTERM arrives while the download is in flight.
        shutdown = cloud.shutdown().then(() => void (shutdownDoneAt = Date.now()));
        let bytes = 0;
        // ~8 MiB/s: the download takes ~4 s, well within the 30 s drain.
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          res.pause();
          setTimeout(() => res.resume(), Math.ceil(c.length / (8 * 1024)));
        });
        res.on('close', () => resolve({ bytes, complete: res.complete, ms: Date.now() - started }));
        res.on('error', () => {});
      });
      req.on('error', reject);
      setTimeout(() => req.destroy(new Error('test timeout')), 25_000);
    });
    await shutdown;
    expect(
      { bytes: result.bytes, complete: result.complete },
      `the client got ${result.bytes} of ${size} bytes in ${result.ms} ms; shutdown finished ${shutdownDoneAt ? 'before the client' : '?'}`,
    ).to.deep.equal({ bytes: size, complete: true });
  });

  it('a cloud-managed target whose new definition a connector refuses is no longer routed to that connector\'s old copy', async () => {
    const cloud = await startInprocCloud({ relayTimeoutMs: 5000 });
    stops.push(() => cloud.shutdown());
    const old = await startUpstream(); // the UEM of the first definition
    stops.push(() => old.close());
    const a = await connector(cloud, { tenant: 'mt', group: 'site', extra: { cloudManagedTargets: { allowedHosts: ['127.0.0.1'] } } });
    await cloud.managedTargets.put('mt', 'm', { group: 'site', baseUrl: old.baseUrl, auth: { type: 'none' }, tls: { ca: old.caPem } });
    await until(() => cloud.registry.get(a.id.connectorId)?.targets.includes('m'), 5000, 'v1 routable');
    expect((await cloud.relay.fetch('mt', 'm', '/v1')).status).to.equal(200);
    // The admin replaces the definition (another UEM); this connector cannot build it (bad CA) and refuses it.
    await cloud.managedTargets.put('mt', 'm', { group: 'site', baseUrl: good.baseUrl, auth: { type: 'none' }, tls: { ca: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' } });
    const refused = await until(async () => (await cloud.managedTargets.list('mt')).find((t) => t.id === 'm')?.connectors.find((c) => c.id === a.id.connectorId && c.state === 'refused'), 8000, 'the refusal');
    const seenBefore = old.seen.length;
    const r = await cloud.relay.fetch('mt', 'm', '/after-refusal');
    await r.text();
    expect(
      { reachedReplacedUem: old.seen.length > seenBefore, advertised: cloud.registry.get(a.id.connectorId)!.targets.includes('m') },
      `cloud shows the connector "${refused.state}" (${refused.reason ?? ''}); relay answered ${r.status}`,
    ).to.deep.equal({ reachedReplacedUem: false, advertised: false });
  });

  it('a connector that cannot reach the UEM (its own health check says so) does not keep receiving the target\'s requests while another connector can', async () => {
    const cloud = await startInprocCloud({ relayTimeoutMs: 5000 });
    stops.push(() => cloud.shutdown());
    const dead = await freePort(); // nothing listens here: connection refused
    const a = await connector(cloud, {
      tenant: 'sick',
      targets: [{ id: 'x', baseUrl: `https://127.0.0.1:${dead}`, auth: { type: 'none' }, tls: { ca: good.caPem } }],
      extra: { health: { checkIntervalSeconds: 5 } },
    });
    await connector(cloud, { tenant: 'sick', targets: [target('x', good)] });
    await until(() => a.daemon.allTargets()[0]!.health, 5000, 'A\'s first health check');
    expect(a.daemon.allTargets()[0]!.health!.reachable).to.equal(false); // A knows its UEM is down
    const statuses: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await cloud.relay.fetch('sick', 'x', `/devices/${i}`);
      await r.text();
      statuses.push(r.status === 200 ? '200' : `${r.status} ${r.headers.get('x-uemlink-error')}`);
    }
    expect(statuses.filter((s) => s !== '200'), 'failed GETs while connector B could serve every one').to.deep.equal([]);
  });

  it('a POST with an empty body that connector A could not send (UEM refused the connection) goes to connector B; B saw Content-Length: 0', async () => {
    const cloud = await startInprocCloud({ relayTimeoutMs: 5000 });
    stops.push(() => cloud.shutdown());
    const dead = await freePort();
    await connector(cloud, { tenant: 'post', targets: [{ id: 'x', baseUrl: `https://127.0.0.1:${dead}`, auth: { type: 'none' }, tls: { ca: good.caPem } }] });
    const b = await connector(cloud, { tenant: 'post', targets: [target('x', good)] });
    const seen = good.seen.length;
    for (let i = 0; i < 6; i++) {
      const r = await cloud.relay.fetch('post', 'x', `/commands/${i}`, { method: 'POST', body: '' });
      const text = await r.text();
      expect(r.status, `${r.headers.get('x-uemlink-error')} ${text}`).to.equal(200);
      expect(r.headers.get('x-uemlink-connector')).to.equal(b.id.connectorId);
    }
    const hits = good.seen.slice(seen);
    expect(hits).to.have.length(6);
    expect(hits.every((h) => h.method === 'POST' && h.headers['content-length'] === '0')).to.equal(true);
  });

  it('a local decision on a cloud-managed target taken while the connector dials reaches the cloud (the HELLO carried the list before it)', async () => {
    const cloud = await startInprocCloud({ relayTimeoutMs: 5000 });
    stops.push(() => cloud.shutdown());
    const a = await connector(cloud, { tenant: 'dial', group: 'site', extra: { cloudManagedTargets: { allowedHosts: ['127.0.0.1'] } } });
    await cloud.managedTargets.put('dial', 'm', { group: 'site', baseUrl: good.baseUrl, auth: { type: 'none' }, tls: { ca: good.caPem } });
    await until(() => cloud.registry.get(a.id.connectorId)?.targets.includes('m'), 5000, 'm routable');
    // The next dial: its HELLO is built with "m", then a local admin rejects "m" before the session is up.
    const daemon = a.daemon as any;
    const orig = daemon.tunnelOptions.bind(daemon);
    let once = true;
    daemon.tunnelOptions = async (...args: unknown[]) => {
      const o = await orig(...args);
      if (once) {
        once = false;
        await daemon.managed.decide('m', 'refused', 'rejected on the local page');
      }
      return o;
    };
    const before = cloud.registry.get(a.id.connectorId)!.session;
    transportOf(cloud, a.id.connectorId).terminate();
    await until(() => cloud.registry.get(a.id.connectorId) && cloud.registry.get(a.id.connectorId)!.session !== before, 10_000, 'the new session');
    await until(() => !cloud.registry.get(a.id.connectorId)!.targets.includes('m'), 5000, 'the cloud to stop routing "m" to the connector that rejected it');
  });
});

