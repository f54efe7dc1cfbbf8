/**
 * Imported first by the `uemlink` command, so V8 is tuned before any other module is evaluated
 * (ESM evaluates a module's imports, in order, before its body). See common/v8-tuning.ts.
 */
import { tuneV8 } from '../common/v8-tuning.js';

tuneV8();
