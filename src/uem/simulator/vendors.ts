/**
 * The simulated vendors. Each vendor module builds its state (seeded data, on top of SimulatorState)
 * and its Express app; server.ts adds TLS, credentials and listening, the same for all.
 */
import type { Express } from 'express';
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/log.js';
import { createHexnodeSimulator } from './hexnode.js';
import { createIvantiEpmmSimulator } from './ivanti-epmm.js';
import type { SimulatorCredentials, SimulatorState, SimulatorVendor } from './state.js';
import { createWorkspaceOneApp, WorkspaceOneState } from './workspace-one.js';

export interface VendorOptions {
  credentials: SimulatorCredentials;
  logger: Logger;
  devices?: number;
  seed?: number;
  clock?: Clock;
  tokenTtlSeconds?: number;
  quotaPerMinute?: number;
}

export interface VendorSimulator<S extends SimulatorState = SimulatorState> {
  state: S;
  app: Express;
  /** Where the REST API lives under the origin ("/API", "/api/v2", "/api/v1"). */
  apiBase: string;
  /** The OAuth token endpoint's path, for vendors that have one. */
  tokenPath?: string;
  /** How many devices were seeded (for the start-up log). */
  deviceCount: number;
}

export type VendorFactory = (o: VendorOptions) => VendorSimulator;

function workspaceOne(o: VendorOptions): VendorSimulator<WorkspaceOneState> {
  const state = new WorkspaceOneState({
    ...(o.devices === undefined ? {} : { devices: o.devices }),
    ...(o.seed === undefined ? {} : { seed: o.seed }),
    ...(o.clock === undefined ? {} : { clock: o.clock }),
  });
  const app = createWorkspaceOneApp(state, {
    credentials: o.credentials,
    logger: o.logger,
    ...(o.tokenTtlSeconds === undefined ? {} : { tokenTtlSeconds: o.tokenTtlSeconds }),
    ...(o.quotaPerMinute === undefined ? {} : { quotaPerMinute: o.quotaPerMinute }),
  });
  return { state, app, apiBase: '/API', tokenPath: '/connect/token', deviceCount: state.data.devices.length };
}

export const VENDOR_SIMULATORS: Record<SimulatorVendor, VendorFactory> = {
  'workspace-one': workspaceOne,
  'ivanti-epmm': createIvantiEpmmSimulator,
  hexnode: createHexnodeSimulator,
};
