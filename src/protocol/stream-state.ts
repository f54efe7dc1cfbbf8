/**
 * The life of one stream, as a pure transition function (drawn in docs/protocol.md).
 *
 *                        OPEN sent / received
 *                                 |
 *                                 v
 *                        +----------------+
 *            send END    |      open      |    recv END
 *          +-------------|                |-------------+
 *          v             +----------------+             v
 *  +------------------+          |            +-------------------+
 *  | half-closed      |          | RESET      | half-closed       |
 *  | (local)          |          | either way | (remote)          |
 *  +------------------+          v            +-------------------+
 *          |  recv END   +----------------+    send END  |
 *          +------------>|     closed     |<-------------+
 *                        +----------------+
 *
 * On top of that, the initiator must see exactly one RESPONSE before any DATA or END from the
 * responder, and the responder never receives RESPONSE.
 */

export type StreamState = 'open' | 'half-closed-local' | 'half-closed-remote' | 'closed';
export type Role = 'initiator' | 'responder';

export interface StreamStatus {
  state: StreamState;
  role: Role;
  /** Initiator only: whether the peer's RESPONSE arrived. */
  responseReceived: boolean;
}

export type Inbound = 'response' | 'data' | 'end' | 'reset' | 'window';
export type Outbound = 'response' | 'data' | 'end' | 'reset';

/** Outcome of applying an inbound frame: the new status, or why the frame is illegal. */
export type Step = { ok: true; status: StreamStatus } | { ok: false; reason: string; fatal: boolean };

export function initialStatus(role: Role): StreamStatus {
  return { state: 'open', role, responseReceived: false };
}

function remoteOpen(s: StreamState): boolean {
  return s === 'open' || s === 'half-closed-local';
}
function localOpen(s: StreamState): boolean {
  return s === 'open' || s === 'half-closed-remote';
}

/** Applies a frame received from the peer. `fatal` marks a violation that ends the whole tunnel. */
export function onInbound(st: StreamStatus, frame: Inbound): Step {
  switch (frame) {
    case 'window':
      // Credit may arrive after we finished sending; harmless.
      return { ok: true, status: st };
    case 'reset':
      return { ok: true, status: { ...st, state: 'closed' } };
    case 'response':
      if (st.role === 'responder') return { ok: false, reason: 'RESPONSE sent to the responder of a stream', fatal: true };
      if (st.responseReceived) return { ok: false, reason: 'second RESPONSE on a stream', fatal: false };
      if (!remoteOpen(st.state)) return { ok: false, reason: 'RESPONSE after the peer ended the stream', fatal: false };
      return { ok: true, status: { ...st, responseReceived: true } };
    case 'data':
    case 'end':
      if (st.role === 'initiator' && !st.responseReceived) {
        return { ok: false, reason: `${frame.toUpperCase()} before RESPONSE`, fatal: false };
      }
      if (!remoteOpen(st.state)) return { ok: false, reason: `${frame.toUpperCase()} after END`, fatal: false };
      if (frame === 'data') return { ok: true, status: st };
      return { ok: true, status: { ...st, state: st.state === 'open' ? 'half-closed-remote' : 'closed' } };
  }
}

/** Whether we may send `frame` now; the session never emits a frame this refuses. */
export function canSend(st: StreamStatus, frame: Outbound): boolean {
  switch (frame) {
    case 'reset':
      return st.state !== 'closed';
    case 'response':
      return st.role === 'responder' && localOpen(st.state);
    case 'data':
    case 'end':
      return localOpen(st.state);
  }
}

export function onOutbound(st: StreamStatus, frame: Outbound): StreamStatus {
  if (frame === 'reset') return { ...st, state: 'closed' };
  if (frame === 'end') return { ...st, state: st.state === 'open' ? 'half-closed-local' : 'closed' };
  return st;
}
