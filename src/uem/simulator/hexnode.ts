/** Placeholder until the hexnode simulator lands (being written now). */
import { UemlinkError } from '../../common/errors.js';
import type { VendorOptions, VendorSimulator } from './vendors.js';

export function createHexnodeSimulator(_o: VendorOptions): VendorSimulator {
  throw new UemlinkError('USAGE', 'the hexnode simulator is not available yet');
}
