/** Serves streams the cloud opens. Until targets are configured, every request names an unknown target. */
import type { MuxStream } from '../protocol/stream.js';

export function notFoundHandler(): (s: MuxStream) => void {
  return (s) => {
    s.on('error', () => {});
    s.resume();
    const body = JSON.stringify({ error: 'unknown_target', message: `this connector has no target "${s.request.target}"` });
    s.respond({ status: 404, headers: [['content-type', 'application/json'], ['x-uemlink-error', 'unknown_target']] });
    s.end(body);
  };
}
