import { expect } from 'chai';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import sinon from 'sinon';
import { CloseCode, StreamError, StreamResetError } from '../../src/protocol/codes.js';
import { decodeMessage, encodeFrame, jsonPayload, type Frame } from '../../src/protocol/frame.js';
import type { RequestHead } from '../../src/protocol/messages.js';
import type { MuxSession, SessionClose } from '../../src/protocol/session.js';
import { messagePool } from '../../src/protocol/writer.js';
import type { MuxStream } from '../../src/protocol/stream.js';
import { collect, rawPeer, sessionPair, waitFor } from '../helpers/sessions.js';
import { frameArb } from './frame.test.js';

const head = (path = '/x', target = 't1'): RequestHead => ({ method: 'POST', path, headers: [['content-type', 'text/plain']], target });

/** Connector side: echo the request body back, upper-cased header with its length. */
function echoServer(s: MuxSession): void {
  s.on('stream', (st: MuxStream) => {
    void collect(st).then((body) => {
      st.respond({ status: 200, headers: [['x-len', String(body.length)]] });
      st.end(body);
    });
  });
}

function responseOf(st: MuxStream): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    st.once('response', (h: { status: number }) => {
      collect(st).then((body) => resolve({ status: h.status, body }), reject);
    });
    st.once('error', reject);
  });
}

function closed(s: MuxSession): Promise<SessionClose> {
  return new Promise((resolve) => s.once('close', resolve));
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('session', () => {
  it('carries a request and its response with bodies in both directions', async () => {
    const p = sessionPair();
    echoServer(p.connector);
    const st = p.cloud.openStream(head());
    st.end(Buffer.from('hello tunnel'));
    const r = await responseOf(st);
    expect(r.status).to.equal(200);
    expect(r.body.toString()).to.equal('hello tunnel');
    expect(st.response!.headers).to.deep.equal([['x-len', '12']]);
    await waitFor(() => p.cloud.activeStreams === 0 && p.connector.activeStreams === 0, 2000, 'streams retired');
  });

  it('multiplexes many concurrent streams of random sizes without mixing their bytes', async () => {
    const p = sessionPair({ connector: { initialWindow: 16 * 1024 }, cloud: { initialWindow: 16 * 1024, maxFrameSize: 4096 } });
    echoServer(p.connector);
    const sizes = Array.from({ length: 60 }, (_, i) => (i * 7919) % 200_000);
    const results = await Promise.all(
      sizes.map((n, i) => {
        const st = p.cloud.openStream(head(`/s${i}`));
        st.end(pattern(n, i));
        return responseOf(st);
      }),
    );
    results.forEach((r, i) => expect(r.body.equals(pattern(sizes[i]!, i)), `stream ${i}`).to.equal(true));
  });

  it('a stalled reader bounds the bytes buffered for its stream on both sides while other streams complete', async () => {
    const window = 64 * 1024;
    const p = sessionPair({ connector: { initialWindow: window }, cloud: { initialWindow: window } });
    let stalled: MuxStream | undefined;
    p.connector.on('stream', (st) => {
      if (st.request.path === '/stall') {
        stalled = st; // never read
        return;
      }
      void collect(st).then((b) => {
        st.respond({ status: 200, headers: [] });
        st.end(b);
      });
    });
    let produced = 0;
    const source = new Readable({
      read() {
        if (produced >= 64 * 1024 * 1024) {
          this.push(null);
          return;
        }
        produced += 16 * 1024;
        this.push(Buffer.alloc(16 * 1024, 1));
      },
    });
    const bulk = p.cloud.openStream(head('/stall'));
    source.pipe(bulk);

    // Other streams on the same tunnel still complete, each with 1 MiB.
    for (let i = 0; i < 5; i++) {
      const st = p.cloud.openStream(head(`/other${i}`));
      st.end(pattern(1024 * 1024, i));
      const r = await responseOf(st);
      expect(r.body.length).to.equal(1024 * 1024);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(stalled, 'stalled stream arrived').to.not.equal(undefined);
    // Receiver holds at most one window; the sender at most its writable buffer plus one chunk.
    expect(stalled!.readableLength).to.be.at.most(window);
    expect(bulk.queuedBytes).to.be.at.most(window + 16 * 1024);
    // And the source was not drained into memory: only window + buffers were pulled from it.
    expect(produced).to.be.at.most(window + bulk.writableHighWaterMark + 3 * 16 * 1024 + source.readableHighWaterMark);

    // Once the reader resumes, everything arrives.
    source.unpipe(bulk);
    bulk.end();
    const got = await collect(stalled!);
    expect(got.length).to.be.greaterThan(window - 1);
    expect(got.every((b) => b === 1)).to.equal(true);
  });

  it('recycled message buffers are not reused while a transport still holds them', async () => {
    const p = sessionPair();
    // Both transports keep the session's buffer until delivery and copy it only then: a buffer
    // reused before `sent` would arrive overwritten by a later message.
    p.cloudT.copyOnDeliver = true;
    p.connectorT.copyOnDeliver = true;
    echoServer(p.connector);
    const body = pattern(8 * 1024 * 1024 + 123, 5);
    const assembledBefore = messagePool.assembled;
    const st = p.cloud.openStream(head('/bulk'));
    let off = 0;
    const source = new Readable({
      read() {
        if (off >= body.length) return void this.push(null);
        const n = Math.min(40 * 1024, body.length - off);
        this.push(body.subarray(off, off + n));
        off += n;
      },
    });
    source.pipe(st);
    const r = await responseOf(st);
    expect(r.body.length).to.equal(body.length);
    expect(r.body.equals(body)).to.equal(true);
    // This transfer went through the pool, and its buffers came back to it.
    expect(messagePool.assembled).to.be.greaterThan(assembledBefore);
    expect(messagePool.freeCount).to.be.greaterThan(0);
    // Both ways, the messages came with spare bytes in front, which the transports scribbled
    // over (memory-transport.ts) without touching the bytes that arrived.
    expect(p.cloudT.headroomMessages).to.be.greaterThan(10);
    expect(p.connectorT.headroomMessages).to.be.greaterThan(10);
  });

  it('a slow reader receives every byte in order (credit is returned as it reads)', async () => {
    const p = sessionPair({ connector: { initialWindow: 8192 }, cloud: { initialWindow: 8192, maxFrameSize: 1024 } });
    const body = pattern(300_000, 9);
    p.connector.on('stream', (st) => {
      st.respond({ status: 200, headers: [] });
      st.end(body);
    });
    const st = p.cloud.openStream({ ...head(), method: 'GET' });
    st.end();
    await new Promise<void>((r) => st.once('response', () => r()));
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of st) {
      parts.push(c as Buffer);
      if (++n % 10 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    expect(Buffer.concat(parts).equals(body)).to.equal(true);
  });

  it('joins body chunks written while out of credit into DATA frames up to the peer frame size, bytes in order', async () => {
    const peer = rawPeer('connector', {}, 0, { initialWindow: 1024, maxFrameSize: 4096 });
    const chunks = Array.from({ length: 64 }, (_, i) => pattern(500, i));
    peer.session.on('stream', (st: MuxStream) => {
      st.respond({ status: 200, headers: [] });
      for (const c of chunks) st.write(c);
      st.end();
    });
    peer.send({ kind: 'open', streamId: 1, json: jsonPayload({ ...head(), method: 'GET' }) }, { kind: 'end', streamId: 1 });
    const data = (): Buffer[] => peer.frames.flatMap((f) => (f.kind === 'data' ? [f.data] : []));
    await waitFor(() => data().reduce((a, d) => a + d.length, 0) === 1024, 2000, 'the first window');
    peer.send({ kind: 'window', streamId: 1, increment: 64 * 500 });
    await waitFor(() => peer.frames.some((f) => f.kind === 'end' && f.streamId === 1), 2000, 'END');
    expect(Buffer.concat(data()).equals(Buffer.concat(chunks)), 'bytes in order').to.equal(true);
    expect(Math.max(...data().map((d) => d.length)), 'largest frame').to.equal(4096);
    // 32,000 bytes: three frames for the first window, then ~8 full frames; one per write would be 64+.
    expect(data().length, 'DATA frames').to.be.lessThan(16);
  });

  it('refuses streams beyond the peer limit locally, and beyond ours with REFUSED_STREAM', async () => {
    const p = sessionPair({ connector: { maxConcurrentStreams: 2 } });
    p.connector.on('stream', () => {});
    p.cloud.openStream(head());
    p.cloud.openStream(head());
    expect(() => p.cloud.openStream(head())).to.throw().with.property('code', 'TUNNEL_STREAM_LIMIT');
  });

  it('a peer that ignores our stream limit gets REFUSED_STREAM for the excess', async () => {
    const peer = rawPeer('connector', { maxConcurrentStreams: 2 });
    peer.session.on('stream', () => {});
    for (const id of [1, 3, 5]) peer.send({ kind: 'open', streamId: id, json: jsonPayload(head()) });
    await waitFor(() => peer.frames.some((f) => f.kind === 'reset'), 2000, 'REFUSED_STREAM');
    const reset = peer.frames.find((f) => f.kind === 'reset') as Extract<Frame, { kind: 'reset' }>;
    expect(reset.streamId).to.equal(5);
    expect(reset.code).to.equal(StreamError.REFUSED_STREAM);
    expect(peer.session.activeStreams).to.equal(2);
    expect(peer.session.state).to.equal('open');
  });

  it('a local cancel resets the stream on the peer (client abort reaches the far side)', async () => {
    const p = sessionPair();
    const peerError = new Promise<Error>((resolve) => p.connector.on('stream', (st) => st.on('error', resolve)));
    const st = p.cloud.openStream(head());
    st.write('partial');
    await new Promise((r) => setTimeout(r, 10));
    st.destroy();
    const err = (await peerError) as StreamResetError;
    expect(err).to.be.instanceOf(StreamResetError);
    expect(err.streamError).to.equal(StreamError.CANCEL);
    await waitFor(() => p.connector.activeStreams === 0, 2000, 'peer retired the stream');
  });

  it('closing the transport fails open streams with TUNNEL_CLOSED and says whether a response had started', async () => {
    const p = sessionPair();
    const streams: MuxStream[] = [];
    p.connector.on('stream', (st) => {
      streams.push(st);
      st.on('error', () => {});
      if (st.request.path === '/started') {
        st.respond({ status: 200, headers: [] });
        st.write('x');
      }
    });
    const a = p.cloud.openStream(head('/waiting'));
    const b = p.cloud.openStream(head('/started'));
    await new Promise<void>((r) => b.once('response', () => r()));
    const ea = new Promise<StreamResetError>((r) => a.once('error', r));
    const eb = new Promise<StreamResetError>((r) => b.once('error', r));
    b.resume();
    p.connectorT.terminate();
    const [errA, errB] = await Promise.all([ea, eb]);
    expect(errA.code).to.equal('TUNNEL_CLOSED');
    expect(errA.beforeResponse).to.equal(true);
    expect(errB.beforeResponse).to.equal(false);
  });

  describe('protocol violations', () => {
    it('DATA before RESPONSE resets only that stream', async () => {
      const p = sessionPair();
      p.connector.on('stream', (st) => st.on('error', () => {}));
      const st = p.cloud.openStream(head());
      const err = new Promise<StreamResetError>((r) => st.once('error', r));
      p.connectorT.send(encodeFrame({ kind: 'data', streamId: st.id, data: Buffer.from('early') }));
      expect((await err).streamError).to.equal(StreamError.PROTOCOL_ERROR);
      expect(p.cloud.state).to.equal('open');
    });

    it('a frame for a stream that was never opened closes the tunnel with a protocol error', async () => {
      const p = sessionPair();
      const c = closed(p.cloud);
      p.connectorT.send(encodeFrame({ kind: 'data', streamId: 99, data: Buffer.from('x') }));
      const info = await c;
      expect(info.code).to.equal(CloseCode.PROTOCOL_ERROR);
      expect(info.error.code).to.equal('TUNNEL_PROTOCOL_ERROR');
      expect(info.reason).to.match(/never opened/);
    });

    it('a peer opening a stream with our parity closes the tunnel', async () => {
      const peer = rawPeer('connector');
      peer.session.on('stream', () => {});
      const c = closed(peer.session);
      peer.send({ kind: 'open', streamId: 2, json: jsonPayload(head()) });
      expect((await c).reason).to.match(/belongs to this side/);
      await waitFor(() => peer.closed()?.code === CloseCode.PROTOCOL_ERROR, 2000, 'close code sent');
      const goaway = peer.frames.find((f) => f.kind === 'goaway') as Extract<Frame, { kind: 'goaway' }>;
      expect(JSON.parse(goaway.json.toString())).to.include({ code: 'PROTOCOL_ERROR' });
    });

    it('sending beyond the window resets the stream with FLOW_CONTROL_ERROR', async () => {
      const peer = rawPeer('connector', { initialWindow: 1024 });
      const got = new Promise<MuxStream>((r) => peer.session.once('stream', r));
      peer.send({ kind: 'open', streamId: 1, json: jsonPayload(head()) });
      const st = await got;
      const err = new Promise<StreamResetError>((r) => st.once('error', r));
      peer.send({ kind: 'data', streamId: 1, data: Buffer.alloc(2048) });
      expect((await err).streamError).to.equal(StreamError.FLOW_CONTROL_ERROR);
      expect(peer.session.state).to.equal('open');
      await waitFor(() => peer.frames.some((f) => f.kind === 'reset' && f.code === StreamError.FLOW_CONTROL_ERROR), 2000, 'RESET sent');
    });

    it('a WINDOW increment that overflows the window resets the stream', async () => {
      const p = sessionPair();
      const st = p.cloud.openStream(head());
      const err = new Promise<StreamResetError>((r) => st.once('error', r));
      p.connectorT.send(encodeFrame({ kind: 'window', streamId: st.id, increment: 0x7fffffff }));
      expect((await err).streamError).to.equal(StreamError.FLOW_CONTROL_ERROR);
    });

    it('DATA after END resets the stream; a late frame for a closed stream is dropped', async () => {
      const peer = rawPeer('connector');
      const got = new Promise<MuxStream>((r) => peer.session.once('stream', r));
      peer.send({ kind: 'open', streamId: 1, json: jsonPayload(head()) });
      const st = await got;
      st.resume();
      const err = new Promise<StreamResetError>((r) => st.once('error', r));
      peer.send({ kind: 'end', streamId: 1 }, { kind: 'data', streamId: 1, data: Buffer.from('late') });
      expect((await err).message).to.match(/DATA after END/);
      peer.send({ kind: 'data', streamId: 1, data: Buffer.from('later still') }, { kind: 'end', streamId: 1 });
      await new Promise((r) => setTimeout(r, 20));
      expect(peer.session.state).to.equal('open');
      expect(peer.session.activeStreams).to.equal(0);
    });

    it('RESPONSE sent to the responder of a stream is a connection error', async () => {
      const peer = rawPeer('connector');
      peer.session.on('stream', (st) => st.on('error', () => {}));
      const c = closed(peer.session);
      peer.send({ kind: 'open', streamId: 1, json: jsonPayload(head()) }, { kind: 'response', streamId: 1, json: jsonPayload({ status: 200, headers: [] }) });
      expect((await c).reason).to.match(/RESPONSE sent to the responder/);
    });

    it('a malformed request head resets only that stream', async () => {
      const peer = rawPeer('connector');
      peer.session.on('stream', () => expect.fail('no stream for a bad head'));
      peer.send({ kind: 'open', streamId: 1, json: jsonPayload({ method: 'GET', path: 'no-slash', headers: [], target: 't' }) });
      await waitFor(() => peer.frames.some((f) => f.kind === 'reset'), 2000, 'RESET');
      const r = peer.frames.find((f) => f.kind === 'reset') as Extract<Frame, { kind: 'reset' }>;
      expect(r.code).to.equal(StreamError.PROTOCOL_ERROR);
      expect(r.message).to.match(/invalid path/);
      expect(peer.session.state).to.equal('open');
    });

    it('random frame sequences from a hostile peer never crash the session nor grow it without bound', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 30 }), async (frames) => {
          const peer = rawPeer('connector', { maxConcurrentStreams: 8 });
          peer.session.on('stream', (st) => st.on('error', () => {}));
          for (const f of frames) peer.send(f);
          await new Promise((r) => setImmediate(r));
          await new Promise((r) => setImmediate(r));
          // (an exception thrown anywhere would surface as an uncaught error and fail this test)
          expect(peer.session.activeStreams).to.be.at.most(8);
          expect(['open', 'draining', 'closed']).to.include(peer.session.state);
          peer.session.close();
        }),
        { numRuns: 300 },
      );
    });
  });

  /** Every frame both sessions of `p` send from now on, decoded, in order (a live array). */
  function recordFrames(p: ReturnType<typeof sessionPair>): Frame[] {
    const frames: Frame[] = [];
    for (const t of [p.cloudT, p.connectorT]) {
      const send = t.send.bind(t);
      t.send = (m, sent) => {
        frames.push(...decodeMessage(m, 1 << 24));
        send(m, sent);
      };
    }
    return frames;
  }

  describe('END_STREAM flag (protocol version 2)', () => {
    /** Records every frame both sessions send, as "kind" or "kind+END" (read it after the fact). */
    function frameLog(p: ReturnType<typeof sessionPair>): { readonly kinds: string[] } {
      const frames = recordFrames(p);
      return {
        get kinds() {
          return frames.map((f) => ('end' in f && f.end ? `${f.kind}+END` : f.kind));
        },
      };
    }
    const small = Buffer.from('{"ok":true}');
    function smallServer(s: MuxSession, bodiless = false): void {
      s.on('stream', (st) => {
        st.resume();
        st.on('end', () => {
          if (bodiless) st.respond({ status: 204, headers: [] }, { end: true });
          else {
            st.respond({ status: 200, headers: [] });
            st.end(small);
          }
        });
      });
    }
    async function smallGet(p: ReturnType<typeof sessionPair>): Promise<{ status: number; body: Buffer }> {
      const st = p.cloud.openStream({ ...head(), method: 'GET' });
      st.end();
      const r = await responseOf(st);
      await waitFor(() => p.cloud.activeStreams === 0 && p.connector.activeStreams === 0, 2000, 'streams retired');
      return r;
    }

    it('a small exchange takes OPEN+END, RESPONSE, DATA+END at version 2, and five frames at version 1', async () => {
      for (const [version, expected] of [
        [2, ['open+END', 'response', 'data+END']],
        [1, ['open', 'end', 'response', 'data', 'end']],
      ] as const) {
        const p = sessionPair({ version });
        const log = frameLog(p);
        smallServer(p.connector);
        const r = await smallGet(p);
        expect(r.status).to.equal(200);
        expect(r.body.equals(small)).to.equal(true);
        expect(log.kinds, `version ${version}`).to.deep.equal(expected);
      }
    });

    it('a response without a body is one RESPONSE frame carrying END_STREAM', async () => {
      const p = sessionPair({ version: 2 });
      const log = frameLog(p);
      smallServer(p.connector, true);
      const r = await smallGet(p);
      expect(r.status).to.equal(204);
      expect(r.body.length).to.equal(0);
      expect(log.kinds).to.deep.equal(['open+END', 'response+END']);
    });

    it('END rides only on a frame still unsent: after the message left, it is a frame of its own', async () => {
      const p = sessionPair({ version: 2 });
      const log = frameLog(p);
      const got = new Promise<MuxStream>((r) => p.connector.once('stream', r));
      const st = p.cloud.openStream(head());
      st.write('part one');
      const peerSide = await got; // the OPEN and the DATA have been delivered, so sent
      const body = collect(peerSide);
      st.end();
      expect((await body).toString()).to.equal('part one');
      expect(log.kinds).to.deep.equal(['open', 'data', 'end']);
    });

    it('a version 1 session ignores END_STREAM, which version 1 reserves', async () => {
      const peer = rawPeer('connector');
      const got = new Promise<MuxStream>((r) => peer.session.once('stream', r));
      peer.send({ kind: 'open', streamId: 1, json: jsonPayload(head()), end: true }, { kind: 'data', streamId: 1, data: Buffer.from('body'), end: true });
      const st = await got;
      const body = collect(st);
      await new Promise((r) => setTimeout(r, 20));
      expect(st.readableEnded).to.equal(false);
      peer.send({ kind: 'end', streamId: 1 });
      expect((await body).toString()).to.equal('body');
    });

    it('at version 2 the flag ends the stream: DATA after it resets the stream, the tunnel stays up', async () => {
      const peer = rawPeer('connector', {}, 0, {}, 2);
      const got = new Promise<MuxStream>((r) => peer.session.once('stream', r));
      peer.send({ kind: 'open', streamId: 1, json: jsonPayload(head()), end: true });
      const st = await got;
      st.on('data', () => {});
      await new Promise((r) => st.once('end', r));
      st.respond({ status: 200, headers: [] });
      const err = new Promise<StreamResetError>((r) => st.once('error', r));
      peer.send({ kind: 'data', streamId: 1, data: Buffer.from('late') });
      expect((await err).message).to.match(/DATA after END/);
      expect(peer.session.state).to.equal('open');
    });
  });

  describe('credit accounting (found in review)', () => {
    const tick = () => new Promise((r) => setImmediate(r));

    it('version 2: no WINDOW and no window growth for the bytes of the DATA frame that carries END_STREAM', async () => {
      const peer = rawPeer('connector', { initialWindow: 64 * 1024 }, 0, {}, 2);
      const got = new Promise<MuxStream>((r) => peer.session.once('stream', r));
      peer.send({ kind: 'open', streamId: 1, json: jsonPayload(head()) }, { kind: 'data', streamId: 1, data: Buffer.alloc(1024, 7) });
      const st = await got;
      st.on('data', () => {}); // flowing: later DATA is handed over inside push()
      await tick();
      await tick();
      const before = peer.frames.length;
      // Over half the window, at once after the last credit: auto-tuning would double the window.
      peer.send({ kind: 'data', streamId: 1, data: Buffer.alloc(40 * 1024, 7), end: true });
      if (!st.readableEnded) await new Promise((r) => st.once('end', r));
      await tick();
      await tick();
      const after = peer.frames.slice(before).map((f) => f.kind);
      expect({ sentAfterPeerEnded: after, grownBytes: (peer.session as unknown as { grownBytes: number }).grownBytes }).to.deep.equal({ sentAfterPeerEnded: [], grownBytes: 0 });
    });

    it('setEncoding() is refused: with it, readableLength counts characters and credit would pass the window', async () => {
      const peer = rawPeer('connector', { initialWindow: 2048 });
      const got = new Promise<MuxStream>((r) => peer.session.once('stream', r));
      peer.send({ kind: 'open', streamId: 1, json: jsonPayload(head()) }, { kind: 'data', streamId: 1, data: Buffer.from('€'.repeat(682)) });
      const st = await got;
      expect(() => st.setEncoding('utf8')).to.throw(TypeError).with.property('code', 'ERR_UEMLINK_STREAM_ENCODING');
      const chunk = st.read(3) as Buffer;
      await tick();
      await tick();
      const credit = peer.frames.filter((f) => f.kind === 'window').reduce((a, f) => a + (f as { increment: number }).increment, 0);
      expect(chunk.toString()).to.equal('€');
      expect(credit).to.be.at.most(3);
    });
  });

  describe('DATA joined in the unsent message', () => {
    const KiB = 1024;
    /** `n` chunks of 16 KiB, each byte telling its chunk and offset apart. */
    const chunks = (n: number, seed = 0): Buffer[] =>
      Array.from({ length: n }, (_, c) => {
        const b = Buffer.alloc(16 * KiB);
        for (let i = 0; i < b.length; i++) b[i] = (i * 7 + c * 13 + seed) & 0xff;
        return b;
      });
    const dataOf = (frames: Frame[], id: number): number[] => frames.flatMap((f) => (f.kind === 'data' && f.streamId === id ? [f.data.length] : []));

    it('writes made before the flush leave as DATA frames of up to the peer\'s frame size, at either version', async () => {
      for (const version of [1, 2]) {
        const p = sessionPair({ version, connector: { maxFrameSize: 64 * KiB } });
        const frames = recordFrames(p);
        const got = new Promise<MuxStream>((r) => p.connector.once('stream', r));
        const st = p.cloud.openStream(head());
        const sent = chunks(10);
        for (const c of sent) st.write(c); // one tick: as undici hands over a read's TLS records
        st.end();
        const body = await collect(await got);
        expect(body.equals(Buffer.concat(sent)), `version ${version}: body intact`).to.equal(true);
        expect(dataOf(frames, st.id), `version ${version}`).to.deep.equal([64 * KiB, 64 * KiB, 32 * KiB]);
      }
    });

    it('a message that fills up starts the next with a frame that later writes still join', async () => {
      for (const version of [1, 2]) {
        const p = sessionPair({ version, connector: { maxFrameSize: 64 * KiB, initialWindow: 4 * 1024 * KiB } });
        const perMessage: number[][] = [];
        const send = p.cloudT.send.bind(p.cloudT);
        p.cloudT.send = (m, sent) => {
          perMessage.push(decodeMessage(m, 1 << 24).flatMap((f) => (f.kind === 'data' ? [f.data.length / KiB] : [])));
          send(m, sent);
        };
        const got = new Promise<MuxStream>((r) => p.connector.once('stream', r));
        const st = p.cloud.openStream(head());
        const sent = chunks(64); // 1 MiB in one tick: four full messages and a bit
        for (const c of sent) st.write(c);
        st.end();
        expect((await collect(await got)).equals(Buffer.concat(sent)), `version ${version}: body intact`).to.equal(true);
        // A 256 KiB message holds three 64 KiB frames (with headers) and 48 KiB more; the chunk
        // that does not fit opens the next message, and the chunks after it join its frame.
        const full = [64, 64, 64, 48];
        expect(perMessage.filter((m) => m.length > 0), `version ${version}`).to.deep.equal([full, full, full, full, [64]]);
      }
    });

    it('a frame is never joined across streams, nor after its message left', async () => {
      const p = sessionPair({ connector: { maxFrameSize: 64 * KiB } });
      const frames = recordFrames(p);
      const bodies = new Map<string, Promise<Buffer>>();
      p.connector.on('stream', (st: MuxStream) => bodies.set(st.request.path, collect(st)));
      const a = p.cloud.openStream(head('/a'));
      const b = p.cloud.openStream(head('/b'));
      const [ca, cb] = [chunks(4, 1), chunks(4, 2)];
      for (let i = 0; i < 4; i++) {
        a.write(ca[i]);
        b.write(cb[i]);
      }
      await new Promise((r) => setImmediate(r)); // the message leaves
      const late = chunks(1, 3)[0]!;
      a.write(late);
      a.end();
      b.end();
      await waitFor(() => bodies.size === 2, 2000, 'both streams');
      expect((await bodies.get('/a'))!.equals(Buffer.concat([...ca, late]))).to.equal(true);
      expect((await bodies.get('/b'))!.equals(Buffer.concat(cb))).to.equal(true);
      // Interleaved writes stay one frame each (the frame in front is the other stream's); the
      // late write is a frame of its own.
      expect(dataOf(frames, a.id)).to.deep.equal([16 * KiB, 16 * KiB, 16 * KiB, 16 * KiB, 16 * KiB]);
      expect(dataOf(frames, b.id)).to.deep.equal([16 * KiB, 16 * KiB, 16 * KiB, 16 * KiB]);
    });
  });

  describe('goaway and drain', () => {
    it('after a GOAWAY no new stream opens, open ones finish, and drain closes with going-away', async () => {
      const p = sessionPair();
      let respond: (() => void) | undefined;
      p.connector.on('stream', (st) => {
        respond = () => {
          st.respond({ status: 200, headers: [] });
          st.end('done');
        };
      });
      const inflight = p.cloud.openStream(head());
      inflight.end();
      await waitFor(() => respond !== undefined, 2000, 'stream at the connector');
      const drained = p.connector.drain(5000);
      await waitFor(() => !p.cloud.acceptsStreams, 2000, 'GOAWAY seen by the cloud');
      expect(() => p.cloud.openStream(head())).to.throw().with.property('code', 'TUNNEL_GOING_AWAY');
      const c = closed(p.cloud);
      respond!();
      const r = await responseOf(inflight);
      expect(r.body.toString()).to.equal('done');
      await drained;
      const info = await c;
      expect(info.code).to.equal(CloseCode.GOING_AWAY);
      expect(info.goAway?.code).to.equal('SHUTTING_DOWN');
    });

    it('drain gives up after its timeout and closes anyway', async () => {
      const p = sessionPair();
      p.connector.on('stream', (st) => st.on('error', () => {})); // never answers
      const st = p.cloud.openStream(head());
      st.on('error', () => {});
      await waitFor(() => p.connector.activeStreams === 1, 2000, 'stream open');
      const t0 = Date.now();
      await p.connector.drain(100);
      expect(Date.now() - t0).to.be.within(90, 2000);
      expect(p.connector.state).to.equal('closed');
    });
  });

  describe('heartbeat', () => {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'Date'] });
    });
    afterEach(() => clock.restore());

    /** Lets in-memory deliveries and batched flushes run (several event-loop turns). */
    const turn = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    };

    it('keeps a healthy link open and measures the round trip', async () => {
      const p = sessionPair({ heartbeatMs: 1000 });
      for (let i = 0; i < 10; i++) {
        clock.tick(1000);
        await turn();
        await turn();
      }
      expect(p.cloud.state).to.equal('open');
      expect(p.connector.state).to.equal('open');
      expect(p.cloud.rttMs).to.be.a('number');
    });

    it('declares a silent (half-open) link dead within three intervals (two whole ones without a byte)', async () => {
      const p = sessionPair({ heartbeatMs: 1000 });
      for (let i = 0; i < 3; i++) {
        clock.tick(1000);
        await turn();
        await turn();
      }
      // Packets vanish in both directions, no FIN, no RST.
      p.cloudT.stalled = true;
      p.connectorT.stalled = true;
      const c = closed(p.cloud);
      let elapsed = 0;
      while (p.cloud.state !== 'closed' && elapsed < 5000) {
        clock.tick(100);
        elapsed += 100;
        await turn();
      }
      expect(elapsed).to.be.at.most(3000);
      expect(elapsed, 'not before two whole intervals of silence').to.be.at.least(2000);
      const info = await c;
      expect(info.error.code).to.equal('TUNNEL_HEARTBEAT_TIMEOUT');
    });
  });
});
