/**
 * Attacker's review of the cloud's relay access log (relay.accessLog, commit c98175d): what an
 * anonymous caller, or a client that misplaces a credential, can make it write. Each test failed on
 * the code as reviewed. Loopback only; every cloud and temp dir is removed afterwards.
 */
import { expect } from 'chai';
import { readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { createApiKey } from '../../src/cloud/api-keys.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { systemClock } from '../../src/common/clock.js';
import type { Connected } from '../../src/connector/tunnel-client.js';
import { connectAs, pairInproc, startInprocCloud } from '../helpers/inproc.js';
import { jsonLinesOf } from '../helpers/logs.js';
import { ADMIN_TOKEN, tempDir, until } from '../helpers/procs.js';

/** A cloud in this process whose access log has the given size limits. */
async function cloudWithAccessLog(dir: string, maxBytes: number, maxFiles: number): Promise<{ cloud: CloudServer; file: string }> {
  const file = join(dir, 'logs', 'relay-access.log');
  return { cloud: await startInprocCloud({ dataDir: join(dir, 'data'), accessLog: { file, maxBytes, maxFiles } }), file };
}

/** `n` GETs of `path` without credentials, `parallel` at a time over keep-alive connections; their statuses. */
async function anonymous(port: number, path: string, n: number, parallel = 16): Promise<Map<number, number>> {
  const agent = new Agent({ keepAlive: true, maxSockets: parallel });
  const statuses = new Map<number, number>();
  let left = n;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          statuses.set(res.statusCode!, (statuses.get(res.statusCode!) ?? 0) + 1);
          resolve();
        });
      });
      req.on('error', () => resolve());
      req.end();
    });
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (left-- > 0) await one();
    }),
  );
  agent.destroy();
  return statuses;
}

describe('security review: the relay access log', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const clouds: CloudServer[] = [];
  const sessions: Connected[] = [];
  after(async () => {
    for (const s of sessions) s.session.close();
    for (const c of clouds) await c.shutdown().catch(() => {});
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a tenant API key or the admin token that a client puts in the {tenant} or {target} slot of the URL is not written to the log in clear', async () => {
    const dir = tempDir('rv-sec-access-');
    dirs.push(dir);
    const { cloud, file } = await cloudWithAccessLog(dir, 1024 * 1024, 2);
    clouds.push(cloud);
    const { key } = await createApiKey(cloud.store, 'acme', 'misplaced', systemClock);
    expect(key.length, 'a whole API key fits the 64 characters kept of the slot').to.be.at.most(64);
    // A script that built its URL from the wrong variable: the key where the tenant goes, the admin
    // token where the target goes. Both answered 401, both logged.
    const base = `http://127.0.0.1:${cloud.port}/api/v1/relay`;
    expect((await fetch(`${base}/${key}/ws1/mdm/devices`)).status).to.equal(401);
    expect((await fetch(`${base}/acme/${ADMIN_TOKEN}/mdm/devices`)).status).to.equal(401);
    // The same credentials in the path (after the target) are redacted: the log means to keep them out.
    expect((await fetch(`${base}/acme/ws1/x/${key}`)).status).to.equal(401);
    await until(() => jsonLinesOf(file).length >= 3, 5000, 'three lines');
    const text = readFileSync(file, 'utf8');
    expect(jsonLinesOf(file)[2]!.path, 'in the path the key is scrubbed').to.not.contain(key.split('.')[2]!);
    const leaked = [...(text.includes(key.split('.')[2]!) ? ['the API key (as "tenant")'] : []), ...(text.includes(ADMIN_TOKEN) ? ['the admin token (as "target")'] : [])];
    expect(leaked, `written in clear to ${file}`).to.deep.equal([]);
  });

  it('calls without any credential from one address do not each add a line with their 2 KB path (they are neither rate limited nor bounded)', async () => {
    const dir = tempDir('rv-sec-access-');
    dirs.push(dir);
    const { cloud, file } = await cloudWithAccessLog(dir, 8 * 1024 * 1024, 2);
    clouds.push(cloud);
    // No Authorization header at all: 401 every time. The relay limiter counts only wrong bearer
    // tokens (principal.ts), so none of these is ever answered 429, and each is written in full.
    const statuses = await anonymous(cloud.port, `/api/v1/relay/acme/ws1/${'a'.repeat(2000)}`, 600);
    expect(statuses.get(401)).to.equal(600);
    await new Promise((r) => setTimeout(r, 300));
    const refused = jsonLinesOf(file).filter((l) => l.status === 401 && l.client === '127.0.0.1' && l.principal === undefined);
    const bytes = readFileSync(file).length;
    // ~1,000 such calls a second from one client on this VM: ~2.5 MB/s of log. An address's
    // unauthenticated refusals are worth at most what the limiter allows wrong tokens (120 a
    // minute) and then a line saying how many more came, not a line each.
    expect(refused.length, `${refused.length} lines (${bytes} bytes) for 600 calls without credentials from one address`).to.be.at.most(130);
  });

  it("anonymous calls cannot rotate an authorized call's line out of the log", async () => {
    const dir = tempDir('rv-sec-access-');
    dirs.push(dir);
    // 256 KiB per file, the file and one rotated file (maxFiles 2): ~512 KiB, room for ~230 lines
    // with 2 KB paths. The defaults (100 MiB x 5 files) are the same at ~1,000x: ~3-4 minutes of
    // one client without credentials on this 2-core VM, and 500 MiB of the data dir's disk.
    const { cloud, file } = await cloudWithAccessLog(dir, 256 * 1024, 2);
    clouds.push(cloud);
    const id = await pairInproc(cloud);
    const c = await connectAs(cloud, id);
    sessions.push(c);
    c.session.on('stream', (s) => {
      s.on('error', () => {});
      s.resume();
      s.respond({ status: 200, headers: [['content-type', 'application/json']] });
      s.end(Buffer.from('{}'));
    });
    await until(() => cloud.registry.get(id.connectorId) !== undefined, 5000, 'connected');
    const ok = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/relay/acme/t1/mdm/devices/evidence`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(ok.status).to.equal(200);
    await ok.text();
    await until(() => jsonLinesOf(file).some((l) => l.path === '/mdm/devices/evidence'), 5000, 'the authorized line');
    // Then someone without any credential: 1,200 calls (401, never rate limited) from one address.
    await anonymous(cloud.port, `/api/v1/relay/acme/t1/${'a'.repeat(2000)}`, 1200);
    await new Promise((r) => setTimeout(r, 500));
    const all = [...jsonLinesOf(`${file}.1`), ...jsonLinesOf(file)];
    expect(
      all.some((l) => l.path === '/mdm/devices/evidence' && l.principal === 'admin'),
      `the admin's call is gone from the log: ${all.length} lines left, all from the anonymous caller`,
    ).to.equal(true);
  });
});
