/** The connector's relay handler over an in-memory session pair, for tests of one target. */
import { systemClock } from '../../src/common/clock.js';
import { silentLogger, type Logger } from '../../src/common/log.js';
import type { AuditEntry } from '../../src/common/audit.js';
import { createRelayHandler, type RelayDeps } from '../../src/connector/relay.js';
import type { Target } from '../../src/connector/targets/target.js';
import { sessionPair, type Pair } from './sessions.js';

/**
 * Serves `target` (tenant acme, connector cn_1) on the connector side of `pair` (a fresh one by
 * default); audit lines go to `audit` when given. Returns the pair: open streams on `pair.cloud`.
 */
export function relayOver(target: Target, o: { pair?: Pair; logger?: Logger; clock?: RelayDeps['clock']; audit?: AuditEntry[]; onFinished?: RelayDeps['onFinished'] } = {}): Pair {
  const pair = o.pair ?? sessionPair();
  pair.connector.on(
    'stream',
    createRelayHandler({
      target: (id) => (id === target.id ? target : undefined),
      tenant: () => 'acme',
      connectorId: () => 'cn_1',
      audit: { record: (e) => o.audit?.push(e), close: async () => {} },
      logger: o.logger ?? silentLogger(),
      clock: o.clock ?? systemClock,
      ...(o.onFinished ? { onFinished: o.onFinished } : {}),
    }),
  );
  return pair;
}
