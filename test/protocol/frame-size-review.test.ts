/**
 * Review (protocol conformance), docs/protocol.md §2/§3/§8 against session.ts/frame.ts.
 *
 * §3 lets a side announce maxFrameSize down to 1024 and §2 makes any frame above it, "JSON ones
 * included", a connection-level error. But §2 also allows a RESET payload of 4 + 1024 bytes, and §8
 * a GOAWAY message of 1024 characters (its JSON is longer still). Only OPEN, RESPONSE and CONTROL
 * are checked against the peer's limit before sending (session.ts fitting()); RESET and GOAWAY are
 * not. A spec-conforming peer that announces a small maxFrameSize has its whole tunnel killed by a
 * RESET we send for one stream.
 *
 * Also: the RESET message is cut at 1024 *bytes* in the middle of a UTF-8 sequence (frame.ts
 * encodeFrameParts), so the payload §2 calls "UTF-8 message" is not UTF-8; and the GOAWAY message is
 * not cut at all, so a long one makes the peer refuse the GOAWAY itself (messages.ts GoAwaySchema)
 * and lose its code.
 */
import { expect } from 'chai';
import { StreamError } from '../../src/protocol/codes.js';
import { decodeMessage, type Frame } from '../../src/protocol/frame.js';
import type { MuxSession, SessionClose } from '../../src/protocol/session.js';
import type { MuxStream } from '../../src/protocol/stream.js';
import { sessionPair, waitFor } from '../helpers/sessions.js';

const head = { method: 'GET', path: '/x', headers: [] as Array<[string, string]>, target: 't' };
const ticks = async (n = 6): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};
const closeOf = (s: MuxSession): Promise<SessionClose> => new Promise((r) => s.once('close', r));

function record(p: ReturnType<typeof sessionPair>): Frame[] {
  const frames: Frame[] = [];
  const send = p.cloudT.send.bind(p.cloudT);
  p.cloudT.send = (m, sent, h) => {
    frames.push(...decodeMessage(m, 1 << 24));
    send(m, sent, h);
  };
  return frames;
}

describe('protocol conformance (found in review): frame sizes of RESET and GOAWAY', () => {
  it('a RESET with a long message does not kill the tunnel of a peer that announced maxFrameSize 1024 (§3 minimum)', async () => {
    const p = sessionPair({ connector: { maxFrameSize: 1024 } });
    const got = new Promise<MuxStream>((r) => p.connector.once('stream', r));
    p.connector.on('stream', (st) => st.on('error', () => {}));
    const st = p.cloud.openStream(head);
    st.on('error', () => {});
    await got;
    const closes: SessionClose[] = [];
    p.connector.on('close', (c) => closes.push(c));
    // Any stream error with a long message: an upstream error text, a client's abort reason, ...
    st.reset(StreamError.CANCEL, 'upstream said: ' + 'x'.repeat(1100));
    await ticks();
    expect({ connector: p.connector.state, closedWith: closes.map((c) => `${c.code} ${c.reason}`) }).to.deep.equal({ connector: 'open', closedWith: [] });
  });

  it('a GOAWAY whose message is within §8 (<= 1024 chars) fits a peer that announced maxFrameSize 1024', async () => {
    const p = sessionPair({ connector: { maxFrameSize: 1024 } });
    const goaway = new Promise<string>((r) => p.connector.once('goaway', (g) => r(g.code)));
    const closed = closeOf(p.connector);
    void p.cloud.drain(1000, 'm'.repeat(1000));
    const first = await Promise.race([goaway, closed.then((c) => `closed ${c.code}: ${c.reason}`)]);
    expect(first).to.equal('SHUTTING_DOWN');
  });

  it('a RESET message cut to 1024 bytes is still valid UTF-8 (§2: "UTF-8 message (0-1024 bytes)")', async () => {
    const p = sessionPair();
    const frames = record(p);
    p.connector.on('stream', (s) => s.on('error', () => {}));
    const st = p.cloud.openStream(head);
    st.on('error', () => {});
    await waitFor(() => p.connector.activeStreams === 1, 2000, 'stream open');
    st.reset(StreamError.CANCEL, '€'.repeat(400)); // 1200 bytes: cut at 1024 = 341 characters and 1 byte
    await ticks();
    const r = frames.find((f) => f.kind === 'reset') as Extract<Frame, { kind: 'reset' }>;
    expect(r, 'RESET sent').to.not.equal(undefined);
    expect(r.message.includes('\uFFFD'), 'the decoded message contains U+FFFD (invalid UTF-8 on the wire)').to.equal(false);
  });

  it('a GOAWAY sent with a message over 1024 characters is still understood by the peer (code kept)', async () => {
    const p = sessionPair();
    const seen: string[] = [];
    p.connector.on('goaway', (g) => seen.push(g.code));
    const closed = closeOf(p.connector);
    // e.g. fail() with an error's message (session.ts onMessage: any exception thrown while handling)
    p.cloud.fail('REVOKED', 'revoked: ' + 'r'.repeat(1100));
    const c = await closed;
    // The peer refused the GOAWAY as invalid (message > 1024) and reports its own protocol error:
    // a permanent REVOKED becomes a retryable TUNNEL_PROTOCOL_ERROR at the connector.
    expect({ goaway: seen, error: c.error.code }).to.deep.equal({ goaway: ['REVOKED'], error: 'TUNNEL_REVOKED' });
  });
});
