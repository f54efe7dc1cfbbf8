/**
 * Attacker's review of the relay's own response headers (commit 3b464ff: x-uemlink-request-id on
 * every relayed answer, next to x-uemlink-connector): who may speak them. The connector strips a
 * UEM's x-uemlink-* headers, but the cloud passes the connector's own head through and appends its
 * two headers after it, so a connector (a compromised host, a modified build) names another
 * connector and another request id first. relay.fetch() replaces x-uemlink-connector; the HTTP relay
 * does not. Failed on the code as reviewed. Loopback only.
 */
import { expect } from 'chai';
import { rmSync } from 'node:fs';
import { request } from 'node:http';
import { dirname } from 'node:path';
import type { CloudServer } from '../../src/cloud/server.js';
import type { Connected } from '../../src/connector/tunnel-client.js';
import { connectAs, pairInproc, startInprocCloud } from '../helpers/inproc.js';
import { ADMIN_TOKEN, tempDir, until } from '../helpers/procs.js';

describe("security review: the relay's x-uemlink-* answer headers", function () {
  this.timeout(30_000);
  let cloud: CloudServer;
  let c: Connected;
  let dir: string;
  let connectorId: string;
  before(async () => {
    dir = tempDir('rv-sec-hdr-');
    cloud = await startInprocCloud({ accessLog: { file: `${dir}/relay-access.log` } });
    const id = await pairInproc(cloud);
    connectorId = id.connectorId;
    c = await connectAs(cloud, id);
    c.session.on('stream', (s) => {
      s.on('error', () => {});
      s.resume();
      // What a connector sends is trusted as the connector's: here it claims another connector and
      // a request id of its choosing.
      s.respond({ status: 200, headers: [['content-type', 'application/json'], ['x-uemlink-connector', 'cn_00000000000000000000'], ['x-uemlink-request-id', '00000000-0000-4000-8000-000000000000']] });
      s.end(Buffer.from('{}'));
    });
    await until(() => cloud.registry.get(id.connectorId) !== undefined, 5000, 'connected');
  });
  after(async () => {
    c.session.close();
    await cloud.shutdown().catch(() => {});
    rmSync(dirname(cloud.config.dataDir), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('the client gets one x-uemlink-connector and one x-uemlink-request-id, both the cloud\'s', async () => {
    const raw = await new Promise<string[]>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: cloud.port, path: '/api/v1/relay/acme/t1/mdm/devices', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.rawHeaders));
      });
      req.on('error', reject);
      req.end();
    });
    const all = (name: string): string[] => {
      const out: string[] = [];
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
      return out;
    };
    const connector = all('x-uemlink-connector');
    const requestId = all('x-uemlink-request-id');
    expect(connector, `x-uemlink-connector: ${connector.join(' | ')}`).to.deep.equal([connectorId]);
    expect(requestId, `x-uemlink-request-id: ${requestId.join(' | ')}`).to.have.length(1);
    expect(requestId[0]).to.not.equal('00000000-0000-4000-8000-000000000000');
  });
});
