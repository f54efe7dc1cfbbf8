/**
 * Review (protocol conformance), docs/protocol.md §6 "A peer that does not read" against
 * session.ts onMessage():
 *
 *   "After handling each incoming message, a side whose unsent bytes (socket buffer plus outbox)
 *    exceed 16 MiB … ends the tunnel with GOAWAY PROTOCOL_ERROR (`the peer does not read its
 *    replies`)."
 *
 * The count is every unsent byte, also frames this side queued on its own initiative and that are
 * not held back by the DATA high-water mark: CONTROL (the cloud offers every cloud-managed target of
 * the group at once when a connector connects, managed-targets.ts onSession(), each up to ~32 KiB),
 * OPEN heads (up to the peer's maxFrameSize each) and RESPONSE heads. A peer that reads everything
 * as fast as the link carries it is then declared "not reading" by the next message it sends — at
 * connect that is its first PING, sent at once (§7). With ~600 large managed targets in a group,
 * every session of that group dies right after WELCOME, at every redial.
 */
import { expect } from 'chai';
import { encodeFrame } from '../../src/protocol/frame.js';
import type { SessionClose } from '../../src/protocol/session.js';
import { sessionPair } from '../helpers/sessions.js';

const ticks = async (n = 6): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('protocol conformance (found in review): the outbound backlog cap and frames a side queued itself', () => {
  it('a burst of target.offer CONTROL messages at connect does not make the cloud end the tunnel on the connector\'s first PING', async () => {
    const p = sessionPair();
    const closes: SessionClose[] = [];
    p.cloud.on('close', (c) => closes.push(c));
    // The link carries bytes at its own pace: what the cloud queued has not all left yet when the
    // connector's first message arrives (at 100 Mbit/s, 18 MB take ~1.5 s; a PING crosses in one RTT).
    p.cloudT.stalled = true;
    const definition = { id: '', baseUrl: 'https://uem.example', auth: { type: 'none' }, tls: { ca: 'c'.repeat(30_000) } };
    for (let i = 0; i < 600; i++) p.cloud.sendControl({ type: 'target.offer', target: { ...definition, id: `t${i}` } });
    // The connector's session-start PING (§7), as its session sends it.
    p.connectorT.send(encodeFrame({ kind: 'ping', data: Buffer.alloc(8) }));
    await ticks();
    expect({ state: p.cloud.state, closes: closes.map((c) => `${c.code} ${c.reason}`) }).to.deep.equal({ state: 'open', closes: [] });
  });
});
