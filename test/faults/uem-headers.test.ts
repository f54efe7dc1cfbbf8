/**
 * Adverse-network review: a UEM answer with many (small) headers (real processes).
 *
 * The tunnel protocol allows at most 500 header pairs in a RESPONSE (protocol.md §5.2; messages.ts
 * headerList). undici accepts any number under its 16 KiB head limit, and the connector checks the
 * RESPONSE against the frame size only (relay.ts s.respond), so it sends a head the cloud must
 * refuse: the cloud resets the stream (PROTOCOL_ERROR) and its client gets `502 connector_error`
 * "… ended the request: stream reset (PROTOCOL_ERROR): headers must be a list of at most 500 pairs",
 * while the connector logs nothing and its audit line says the call was answered 200. A head the
 * tunnel cannot carry is documented as `502 upstream_headers_too_large`, decided by the connector
 * (errors.md), as it is for a head over 16 KiB or over the frame size.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_TOKEN, sleep } from '../helpers/procs.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { startLab, type Lab } from './lab.js';

describe('network faults (found in review): a UEM answer with more header lines than the tunnel carries', function () {
  this.timeout(60_000);
  let lab: Lab;
  let up: Upstream;

  before(async function () {
    this.timeout(60_000);
    up = await startUpstream({
      handler: (_req, res) => {
        // 600 headers, ~7 KiB: under undici's 16 KiB head limit and far under a tunnel frame.
        const h: string[] = [];
        for (let i = 0; i < 600; i++) h.push(`x-h${i}`, 'v');
        res.writeHead(200, h);
        res.end('ok');
      },
    });
    lab = await startLab({ targets: () => [{ id: 'many', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem } }] });
  });
  after(async () => {
    await lab?.stop();
    await up?.close();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && lab) process.stderr.write(lab.logs());
  });

  it('is answered 502 upstream_headers_too_large by the connector, and its audit line does not say 200', async () => {
    const r = await fetch(`${lab.cloud.url}/api/v1/relay/acme/many/hdrs`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const body = await r.text();
    await sleep(1000); // the audit line is gathered, then written
    const audit = readFileSync(join(lab.conn.dir, 'state', 'audit.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"/hdrs"'));
    process.stdout.write(`      client: ${r.status} ${String(r.headers.get('x-uemlink-error'))} ${body.slice(0, 160)}\n      connector audit: ${audit.join(' | ')}\n`);
    expect(r.status).to.equal(502);
    expect(r.headers.get('x-uemlink-error'), 'the documented code for a UEM head the tunnel cannot carry').to.equal('upstream_headers_too_large');
    expect(audit.length, 'one audit line').to.equal(1);
    expect(JSON.parse(audit[0]!).status, 'the audit line says what the client got').to.not.equal(200);
  });
});
