/** Placeholder until the ivanti-epmm simulator lands (being written now). */
import { UemlinkError } from '../../common/errors.js';
import type { VendorOptions, VendorSimulator } from './vendors.js';

export function createIvantiEpmmSimulator(_o: VendorOptions): VendorSimulator {
  throw new UemlinkError('USAGE', 'the ivanti-epmm simulator is not available yet');
}
