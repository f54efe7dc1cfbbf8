/**
 * The header of one unfragmented binary WebSocket frame (RFC 6455 §5.2), for messages the tunnel
 * frames itself (WsTransport.send with headroom): written into the spare bytes in front of a
 * message so that header and payload leave as one buffer. Pure functions, no I/O.
 *
 * `masked` frames (client to server) carry an all-zero masking key, so the payload goes unchanged:
 * only used where masking protects nobody (ws.ts, maskingIsMoot), exactly as ws frames them there.
 */

/** Bytes the header of a `length`-byte binary frame takes. */
export function wsHeaderLength(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/**
 * Writes the header of a final binary frame carrying `length` bytes into `buf` at `offset`
 * (wsHeaderLength(length, masked) bytes). Returns the offset just past it.
 */
export function writeWsHeader(buf: Buffer, offset: number, length: number, masked: boolean): number {
  let o = offset;
  buf[o++] = 0x82; // FIN + opcode 2 (binary)
  const maskBit = masked ? 0x80 : 0;
  if (length < 126) {
    buf[o++] = maskBit | length;
  } else if (length < 65536) {
    buf[o++] = maskBit | 126;
    buf.writeUInt16BE(length, o);
    o += 2;
  } else {
    buf[o++] = maskBit | 127;
    buf.writeUInt16BE(0, o); // lengths here stay far below 2^48
    buf.writeUIntBE(length, o + 2, 6);
    o += 8;
  }
  if (masked) {
    buf.writeUInt32BE(0, o);
    o += 4;
  }
  return o;
}
