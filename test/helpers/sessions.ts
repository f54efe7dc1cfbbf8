import { DEFAULT_LIMITS, PROTOCOL_MAX, type Limits } from '../../src/protocol/messages.js';
import { MuxSession, attachTransport } from '../../src/protocol/session.js';
import type { Clock } from '../../src/common/clock.js';
import { decodeMessage, encodeFrame, type Frame } from '../../src/protocol/frame.js';
import { memoryPair, type MemoryTransport } from './memory-transport.js';

export interface Pair {
  cloud: MuxSession;
  connector: MuxSession;
  cloudT: MemoryTransport;
  connectorT: MemoryTransport;
}

export function sessionPair(
  opts: { cloud?: Partial<Limits>; connector?: Partial<Limits>; heartbeatMs?: number; clock?: Clock; highWaterMark?: number; version?: number } = {},
): Pair {
  const [cloudT, connectorT] = memoryPair();
  const cl: Limits = { ...DEFAULT_LIMITS, ...opts.cloud };
  const co: Limits = { ...DEFAULT_LIMITS, ...opts.connector };
  const common = { heartbeatMs: opts.heartbeatMs ?? 0, version: opts.version ?? PROTOCOL_MAX, ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.highWaterMark ? { highWaterMark: opts.highWaterMark } : {}) };
  const cloud = new MuxSession({ role: 'cloud', transport: cloudT, local: cl, remote: co, ...common });
  const connector = new MuxSession({ role: 'connector', transport: connectorT, local: co, remote: cl, ...common });
  attachTransport(cloud, cloudT);
  attachTransport(connector, connectorT);
  return { cloud, connector, cloudT, connectorT };
}

export function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
  });
}

export function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) return resolve();
      if (Date.now() - start > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

/**
 * A session whose peer is the test itself: `send` injects raw frames, `frames` records what the
 * session sent, decoded.
 */
export function rawPeer(role: 'cloud' | 'connector', limits: Partial<Limits> = {}, heartbeatMs = 0, remoteLimits: Partial<Limits> = {}, version = 1) {
  const [mine, theirs] = memoryPair();
  const local: Limits = { ...DEFAULT_LIMITS, ...limits };
  const session = new MuxSession({ role, transport: mine, local, remote: { ...DEFAULT_LIMITS, ...remoteLimits }, heartbeatMs, version });
  attachTransport(session, mine);
  const frames: Frame[] = [];
  let closedWith: { code: number; reason: string } | undefined;
  theirs.setHandlers({
    message: (m) => frames.push(...decodeMessage(m, 16 * 1024 * 1024)),
    drain: () => {},
    close: (code, reason) => (closedWith = { code, reason }),
  });
  return {
    session,
    frames,
    send: (...fs: Frame[]) => theirs.send(Buffer.concat(fs.map(encodeFrame))),
    sendRaw: (b: Buffer) => theirs.send(b),
    closed: () => closedWith,
  };
}
