/**
 * A GOAWAY whose lastStreamId is below a stream the peer has already answered (found in the
 * protocol conformance review): the stream was seen, so it is not failed as REFUSED_STREAM, which
 * says "never processed, safe to send again with any method" (a POST could have run twice).
 */
import { expect } from 'chai';
import { jsonPayload } from '../../src/protocol/frame.js';
import type { MuxStream } from '../../src/protocol/stream.js';
import { rawPeer, waitFor } from '../helpers/sessions.js';

describe('protocol: a GOAWAY and the streams the peer answered', () => {
  it('an answered stream above lastStreamId goes on to its end; an unanswered one is refused (retryable)', async () => {
    const peer = rawPeer('cloud', {}, 0, {}, 2);
    const answered: MuxStream = peer.session.openStream({ method: 'POST', path: '/order', headers: [], target: 't' });
    const silent: MuxStream = peer.session.openStream({ method: 'GET', path: '/list', headers: [], target: 't' });
    answered.end();
    silent.end();
    await waitFor(() => peer.frames.filter((f) => f.kind === 'open').length === 2, 2000, 'both OPENs');
    const body: Buffer[] = [];
    answered.on('data', (b: Buffer) => body.push(b));
    const ended = new Promise<void>((r) => answered.once('end', () => r()));
    const refused = new Promise<Error & { retryable?: boolean }>((r) => silent.once('error', r));
    silent.resume();
    peer.send(
      { kind: 'response', streamId: answered.id, json: jsonPayload({ status: 200, headers: [] }) },
      { kind: 'data', streamId: answered.id, data: Buffer.from('partial ') },
      { kind: 'goaway', json: jsonPayload({ code: 'SHUTTING_DOWN', message: 'bye', lastStreamId: 0 }) },
    );
    const e = await refused;
    expect(e.retryable, 'the stream the peer never answered may be sent again').to.equal(true);
    peer.send({ kind: 'data', streamId: answered.id, data: Buffer.from('rest') }, { kind: 'end', streamId: answered.id });
    await ended;
    expect(Buffer.concat(body).toString()).to.equal('partial rest');
  });
});
