/** Picks the adapter for a UEM vendor; every adapter talks to its UEM through a UemFetch. */
import type { UemAdapter, UemFetch, Vendor } from '../adapter.js';
import { createHexnodeAdapter } from './hexnode.js';
import { createIvantiEpmmAdapter } from './ivanti-epmm.js';
import { createWorkspaceOneAdapter } from './workspace-one.js';

export function createAdapter(vendor: Vendor, fetch: UemFetch): UemAdapter {
  switch (vendor) {
    case 'workspace-one':
      return createWorkspaceOneAdapter(fetch);
    case 'ivanti-epmm':
      return createIvantiEpmmAdapter(fetch);
    case 'hexnode':
      return createHexnodeAdapter(fetch);
    default: {
      const never: never = vendor;
      throw new Error(`unknown UEM vendor "${String(never)}"`);
    }
  }
}
