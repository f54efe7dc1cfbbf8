/** Shared set-ups of the integration tests: a fast clock, a sync target, a service with stubs. */
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../../src/common/clock.js';
import { silentLogger } from '../../src/common/log.js';
import type { SyncTarget } from '../../src/cloud/integrations/engine.js';
import { DEFAULT_SYNC, DEFAULT_TAGGING } from '../../src/cloud/integrations/model.js';
import { IntegrationsService, type IntegrationsOptions } from '../../src/cloud/integrations/service.js';
import { InventoryDb } from '../../src/cloud/inventory/db.js';
import { openCloudStore } from '../../src/cloud/state.js';
import { tempDir } from './procs.js';

/** A clock whose timers fire at once and move time forward (so waits cost nothing); `slept` lists the waits. */
export function jumpingClock(): Clock & { slept: number[] } {
  let now = Date.now();
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    setTimeout: (fn, ms) => {
      slept.push(ms);
      return setImmediate(() => {
        now += ms;
        fn();
      });
    },
    clearTimeout: (h) => clearImmediate(h as NodeJS.Immediate),
    setInterval: (fn, ms) => setInterval(fn, ms),
    clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
  };
}

/** What the engine syncs: the defaults, with `over` and `tag` applied. */
export const syncTarget = (over: Partial<SyncTarget['sync']> = {}, tag: Partial<SyncTarget['tagging']> = {}, vendor: SyncTarget['vendor'] = 'workspace-one'): SyncTarget => ({
  id: 'int_review',
  tenant: 'acme',
  vendor,
  sync: { ...DEFAULT_SYNC, pii: { ...DEFAULT_SYNC.pii }, ...over },
  tagging: { ...DEFAULT_TAGGING, ...tag },
});

/**
 * An IntegrationsService on a fresh state file and in-memory inventory, for direct routes: the relay,
 * the managed targets (put/remove/list do nothing) and the registry are stubs unless given.
 */
export function integrationsService(over: Partial<IntegrationsOptions> = {}): IntegrationsService {
  return new IntegrationsService({
    store: openCloudStore(tempDir('integrations-svc-')),
    key: randomBytes(32),
    db: new InventoryDb(':memory:'),
    relay: {} as never,
    managed: { remove: async () => {}, put: async () => {}, list: async () => [] } as never,
    registry: {} as never,
    clock: systemClock,
    logger: silentLogger(),
    retryBaseMs: 10,
    firstRunWithinMs: 3_600_000,
    ...over,
  });
}

/**
 * An integration record as a runner loads it, with no groups and every indicator not run yet:
 * the device sync has nothing to do, the app sync and the later jobs still run.
 */
export function bareIntegration(id: string, tenant = 'acme'): Record<string, unknown> {
  const empty = { indicator: 'gray', message: 'not yet', lastRun: null, lastSuccess: null, counts: {} };
  return {
    id,
    tenant,
    vendor: 'workspace-one',
    displayName: id,
    route: { via: 'direct' },
    sync: { ...DEFAULT_SYNC, pii: { ...DEFAULT_SYNC.pii }, groups: [] },
    tagging: { ...DEFAULT_TAGGING },
    paused: false,
    groupsCache: [],
    status: { uemServer: empty, deviceSync: empty, appSync: empty, tagging: empty, policyGroups: empty },
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
  };
}
