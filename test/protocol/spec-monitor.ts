/**
 * Protocol conformance (written in a review): a wire monitor that checks, frame by frame, what each session of an
 * in-memory pair puts on the wire against docs/protocol.md §2, §3, §5, §6, §7 and §8, the way an
 * independent peer would read it. It sees every message when it is sent and again when it is
 * delivered, so rules that depend on what the sender knew (credit, concurrency) are judged against
 * what had reached the sender, not against what was in flight.
 *
 * Knowledge is applied permissively: a delivered message counts as known to its receiver before the
 * receiving session handles it (so a frame the receiver sends while handling it is judged with it).
 */
import { memoryPair, type MemoryTransport } from '../helpers/memory-transport.js';
import { FRAME_HEADER_SIZE, FrameType, MAX_WINDOW } from '../../src/protocol/frame.js';
import { StreamError } from '../../src/protocol/codes.js';
import { MuxSession, attachTransport } from '../../src/protocol/session.js';
import { BATCH_BYTES } from '../../src/protocol/writer.js';
import type { Limits } from '../../src/protocol/messages.js';

export type Side = 'cloud' | 'connector';
const other = (s: Side): Side => (s === 'cloud' ? 'connector' : 'cloud');

interface StreamWire {
  opener: Side;
  sentEnd: Record<Side, boolean>;
  sentReset: Record<Side, boolean>;
  /** What each side knows the other did (messages delivered to it). */
  knowsEnd: Record<Side, boolean>;
  knowsReset: Record<Side, boolean>;
  responseSent: boolean;
  /** DATA bytes sent by a side, and credit that side had learned of (peer initialWindow + WINDOWs delivered to it). */
  dataSent: Record<Side, number>;
  creditKnown: Record<Side, number>;
}

export interface Monitor {
  violations: string[];
  frames: Array<{ from: Side; type: number; flags: number; id: number; len: number }>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function monitoredPair(opts: {
  cloud: Limits;
  connector: Limits;
  version: number;
  highWaterMark?: number;
  windowTuning?: { maxWindow: number; budget: number } | false;
  heartbeatMs?: number;
}): { cloud: MuxSession; connector: MuxSession; cloudT: MemoryTransport; connectorT: MemoryTransport; monitor: Monitor } {
  const [cloudT, connectorT] = memoryPair();
  const common = {
    heartbeatMs: opts.heartbeatMs ?? 0,
    version: opts.version,
    ...(opts.highWaterMark ? { highWaterMark: opts.highWaterMark } : {}),
    ...(opts.windowTuning !== undefined ? { windowTuning: opts.windowTuning } : {}),
  };
  const cloud = new MuxSession({ role: 'cloud', transport: cloudT, local: opts.cloud, remote: opts.connector, ...common });
  const connector = new MuxSession({ role: 'connector', transport: connectorT, local: opts.connector, remote: opts.cloud, ...common });
  attachTransport(cloud, cloudT);
  attachTransport(connector, connectorT);

  const limits: Record<Side, Limits> = { cloud: opts.cloud, connector: opts.connector };
  const monitor: Monitor = { violations: [], frames: [] };
  const streams = new Map<number, StreamWire>();
  const lastOpened: Record<Side, number> = { cloud: 0, connector: 0 };
  /** Highest id opened by the other side that this side had seen. */
  const seenPeerId: Record<Side, number> = { cloud: 0, connector: 0 };
  const sentGoAway: Record<Side, boolean> = { cloud: false, connector: false };
  const pingsReceived: Record<Side, string[]> = { cloud: [], connector: [] };
  const v = (m: string): void => {
    if (monitor.violations.length < 50) monitor.violations.push(m);
  };

  function each(msg: Buffer, fn: (type: number, flags: number, id: number, payload: Buffer) => void): void {
    let off = 0;
    while (off + FRAME_HEADER_SIZE <= msg.length) {
      const len = msg.readUInt32BE(off + 6);
      fn(msg[off]!, msg[off + 1]!, msg.readUInt32BE(off + 2), msg.subarray(off + 10, off + 10 + len));
      off += FRAME_HEADER_SIZE + len;
    }
  }

  function openCount(s: Side): number {
    let n = 0;
    for (const w of streams.values()) {
      if (w.opener !== s) continue;
      const closed = w.sentReset[s] || w.knowsReset[s] || (w.sentEnd[s] && w.knowsEnd[s]);
      if (!closed) n++;
    }
    return n;
  }

  function onSend(from: Side, msg: Buffer): void {
    const to = other(from);
    const rx = limits[to];
    const cap = Math.max(BATCH_BYTES, rx.maxFrameSize + FRAME_HEADER_SIZE) + FRAME_HEADER_SIZE;
    if (msg.length > cap) v(`${from}: message of ${msg.length} bytes exceeds the receiver's cap ${cap} (§1)`);
    each(msg, (type, flags, id, p) => {
      monitor.frames.push({ from, type, flags, id, len: p.length });
      const where = `${from} -> ${to}: type 0x${type.toString(16)} stream ${id}`;
      if (p.length > rx.maxFrameSize) v(`${where}: payload ${p.length} bytes > receiver maxFrameSize ${rx.maxFrameSize} (§2, §3)`);
      const flagBearing = type === FrameType.OPEN || type === FrameType.RESPONSE || type === FrameType.DATA;
      const allowed = opts.version >= 2 && flagBearing ? 0x01 : 0;
      if ((flags & ~allowed) !== 0) v(`${where}: flags 0x${flags.toString(16)} (reserved bits set, §2)`);
      const end = (flags & 0x01) !== 0 && allowed !== 0;
      if (type < FrameType.OPEN) {
        if (type === FrameType.PING) {
          if (p.length !== 8) v(`${where}: PING of ${p.length} bytes`);
        } else if (type === FrameType.PONG) {
          const i = pingsReceived[from].indexOf(p.toString('hex'));
          if (i < 0) v(`${where}: PONG that echoes no PING received (§7)`);
          else pingsReceived[from].splice(i, 1);
        } else if (type === FrameType.GOAWAY) {
          sentGoAway[from] = true;
          let g: { code?: unknown; message?: unknown; lastStreamId?: unknown };
          try {
            g = JSON.parse(p.toString('utf8')) as typeof g;
          } catch {
            v(`${where}: GOAWAY is not JSON`);
            return;
          }
          if (typeof g.message !== 'string' || g.message.length > 1024) v(`${where}: GOAWAY message over 1024 chars (§8)`);
          if (g.lastStreamId !== seenPeerId[from]) v(`${where}: GOAWAY lastStreamId ${String(g.lastStreamId)}, highest peer id seen ${seenPeerId[from]} (§8)`);
        } else if (type !== FrameType.CONTROL) v(`${where}: handshake frame in a session`);
        return;
      }
      let w = streams.get(id);
      if (type === FrameType.OPEN) {
        const parity = from === 'cloud' ? 1 : 0;
        if (id % 2 !== parity) v(`${where}: OPEN with the other side's parity (§5)`);
        if (id <= lastOpened[from]) v(`${where}: OPEN id not increasing (§5)`);
        if (sentGoAway[from]) v(`${where}: OPEN after its own GOAWAY (§8)`);
        const n = openCount(from);
        if (n >= rx.maxConcurrentStreams) v(`${where}: OPEN with ${n} streams already open, peer allows ${rx.maxConcurrentStreams} (§3, §5.4)`);
        lastOpened[from] = id;
        w = {
          opener: from,
          sentEnd: { cloud: false, connector: false },
          sentReset: { cloud: false, connector: false },
          knowsEnd: { cloud: false, connector: false },
          knowsReset: { cloud: false, connector: false },
          responseSent: false,
          dataSent: { cloud: 0, connector: 0 },
          creditKnown: { cloud: 0, connector: 0 },
        };
        // creditKnown[X]: what X may send, starting at the other side's initialWindow.
        w.creditKnown[from] = limits[to].initialWindow;
        w.creditKnown[to] = limits[from].initialWindow;
        streams.set(id, w);
        if (end) w.sentEnd[from] = true;
        return;
      }
      if (!w) {
        v(`${where}: frame for a stream never opened`);
        return;
      }
      if (w.sentReset[from]) v(`${where}: frame after this side's own RESET (§5.3)`);
      const responder = other(w.opener);
      switch (type) {
        case FrameType.RESPONSE:
          if (from !== responder) v(`${where}: RESPONSE from the initiator`);
          if (w.responseSent) v(`${where}: second RESPONSE`);
          if (w.sentEnd[from]) v(`${where}: RESPONSE after END`);
          w.responseSent = true;
          if (end) w.sentEnd[from] = true;
          break;
        case FrameType.DATA:
          if (from === responder && !w.responseSent) v(`${where}: DATA before RESPONSE`);
          if (w.sentEnd[from]) v(`${where}: DATA after END`);
          w.dataSent[from] += p.length;
          if (w.dataSent[from] > w.creditKnown[from]) v(`${where}: ${w.dataSent[from]} DATA bytes sent with ${w.creditKnown[from]} of credit known (§6)`);
          if (end) w.sentEnd[from] = true;
          break;
        case FrameType.END:
          if (p.length !== 0) v(`${where}: END with a payload`);
          if (from === responder && !w.responseSent) v(`${where}: END before RESPONSE`);
          if (w.sentEnd[from]) v(`${where}: END after END`);
          w.sentEnd[from] = true;
          break;
        case FrameType.RESET: {
          if (p.length < 4 || p.length > 1028) v(`${where}: RESET payload ${p.length}`);
          const code = p.readUInt32BE(0);
          if (code === StreamError.TUNNEL_CLOSED) v(`${where}: RESET TUNNEL_CLOSED on the wire (§5.5: local only)`);
          try {
            utf8.decode(p.subarray(4));
          } catch {
            v(`${where}: RESET message is not valid UTF-8 (§2)`);
          }
          w.sentReset[from] = true;
          break;
        }
        case FrameType.WINDOW: {
          const inc = p.readUInt32BE(0);
          if (inc < 1 || inc > MAX_WINDOW) v(`${where}: WINDOW increment ${inc}`);
          break;
        }
      }
    });
  }

  function onDeliver(to: Side, msg: Buffer): void {
    each(msg, (type, flags, id, p) => {
      const end = (flags & 0x01) !== 0 && opts.version >= 2 && (type === FrameType.OPEN || type === FrameType.RESPONSE || type === FrameType.DATA);
      if (type === FrameType.PING) pingsReceived[to].push(p.toString('hex'));
      if (type === FrameType.OPEN) seenPeerId[to] = Math.max(seenPeerId[to], id);
      const w = streams.get(id);
      if (!w || type < FrameType.OPEN) return;
      if (type === FrameType.WINDOW) w.creditKnown[to] += p.readUInt32BE(0);
      if (type === FrameType.END || end) w.knowsEnd[to] = true;
      if (type === FrameType.RESET) w.knowsReset[to] = true;
    });
  }

  for (const [t, side] of [
    [cloudT, 'cloud'],
    [connectorT, 'connector'],
  ] as const) {
    const send = t.send.bind(t);
    t.send = (m, sent, headroom) => {
      onSend(side, m);
      send(m, sent, headroom);
    };
    const h = t.handlers!;
    t.setHandlers({
      ...h,
      message: (m) => {
        onDeliver(side, m);
        h.message(m);
      },
    });
  }
  return { cloud, connector, cloudT, connectorT, monitor };
}
