/**
 * Fault modes of the simulated UEMs, switchable while they run (state.faults, or over HTTP through
 * the control endpoint). The generic ones run as middleware before any vendor route; the list faults
 * (truncated pages, a flapping device list) are applied by each vendor's device listing through
 * `flap()` and `truncate()`.
 */
import express, { type RequestHandler, type Router } from 'express';
import { secretEquals, type FaultConfig, type SimulatorState } from './state.js';

/** Paths that are never faulted: the control endpoint itself. */
export const CONTROL_PATH = '/_simulator';

/**
 * Latency, 500s, 429 with Retry-After and expired credentials, in that order. `unauthorized` writes
 * the vendor's own 401 body.
 */
export function faultMiddleware(state: SimulatorState, unauthorized: (res: express.Response) => void): RequestHandler {
  return (req, res, next) => {
    if (req.path.startsWith(CONTROL_PATH)) return next();
    const f = state.faults;
    const go = (): void => {
      if (f.serverErrors) {
        if (typeof f.serverErrors === 'number') {
          if (f.serverErrors <= 1) delete f.serverErrors;
          else f.serverErrors--;
        }
        res.status(500).json({ message: 'Internal Server Error (simulated)' });
        return;
      }
      if (f.rateLimit) {
        const rl = f.rateLimit;
        if (rl.count !== undefined) {
          rl.count--;
          if (rl.count <= 0) delete f.rateLimit;
        }
        state.counters.rateLimited++;
        res.setHeader('retry-after', String(rl.retryAfterSeconds));
        res.status(429).json({ message: `Too many requests (simulated); retry after ${rl.retryAfterSeconds} seconds.` });
        return;
      }
      if (f.authExpired && !/\/(connect\/)?token$/.test(req.path)) {
        state.counters.authFailures++;
        unauthorized(res);
        return;
      }
      next();
    };
    if (f.latencyMs && f.latencyMs > 0) setTimeout(go, f.latencyMs);
    else go();
  };
}

/** Drops a random `share` of the items (a different subset each call): a flapping device list. */
export function flap<T>(state: SimulatorState, items: T[]): T[] {
  const share = state.faults.flapDevices;
  if (!share || share <= 0) return items;
  return items.filter(() => Math.random() >= share);
}

/** Cuts a page short (about half of it) while the envelope still claims the full page. */
export function truncate<T>(state: SimulatorState, items: T[]): T[] {
  if (!state.faults.truncatePages || items.length === 0) return items;
  return items.slice(0, Math.floor(items.length / 2));
}

const FAULT_KEYS = ['latencyMs', 'serverErrors', 'rateLimit', 'truncatePages', 'flapDevices', 'authExpired'];

/** Validates a fault configuration (the control endpoint and `simulate-uem --faults`). */
export const FaultSchema = {
  parse(v: unknown): FaultConfig {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('faults must be a JSON object');
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!FAULT_KEYS.includes(k)) throw new Error(`unknown fault "${k}" (known: ${FAULT_KEYS.join(', ')})`);
    const out: FaultConfig = {};
    const num = (k: string, min: number, max: number): number | undefined => {
      const x = o[k];
      if (x === undefined) return undefined;
      if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max) throw new Error(`${k}: must be a number from ${min} to ${max}`);
      return x;
    };
    const latency = num('latencyMs', 0, 600_000);
    if (latency !== undefined) out.latencyMs = latency;
    if (o.serverErrors !== undefined) {
      if (typeof o.serverErrors !== 'boolean' && (typeof o.serverErrors !== 'number' || o.serverErrors < 0)) throw new Error('serverErrors: true, false or a count');
      if (o.serverErrors) out.serverErrors = o.serverErrors as boolean | number;
    }
    if (o.rateLimit !== undefined && o.rateLimit !== null) {
      const rl = o.rateLimit as Record<string, unknown>;
      if (typeof rl.retryAfterSeconds !== 'number' || rl.retryAfterSeconds < 0) throw new Error('rateLimit.retryAfterSeconds: must be a number of seconds');
      if (rl.count !== undefined && (typeof rl.count !== 'number' || !Number.isInteger(rl.count) || rl.count < 1)) throw new Error('rateLimit.count: must be a whole number of at least 1');
      out.rateLimit = { retryAfterSeconds: rl.retryAfterSeconds, ...(typeof rl.count === 'number' ? { count: rl.count } : {}) };
    }
    if (o.truncatePages !== undefined) out.truncatePages = Boolean(o.truncatePages);
    const flapShare = num('flapDevices', 0, 1);
    if (flapShare !== undefined) out.flapDevices = flapShare;
    if (o.authExpired !== undefined) out.authExpired = Boolean(o.authExpired);
    return out;
  },
};

/**
 * GET/PUT /_simulator/faults with `x-simulator-control: <control token>` (from credentials.json):
 * read or replace the fault configuration while the simulator runs. PUT {} heals everything.
 */
export function controlRouter(state: SimulatorState, controlToken: string): Router {
  const r = express.Router();
  r.use(CONTROL_PATH, (req, res, next) => {
    const t = req.headers['x-simulator-control'];
    if (typeof t !== 'string' || !secretEquals(t, controlToken)) {
      res.status(401).json({ message: 'x-simulator-control header missing or wrong' });
      return;
    }
    next();
  });
  r.get(`${CONTROL_PATH}/faults`, (_req, res) => {
    res.json(state.faults);
  });
  r.put(`${CONTROL_PATH}/faults`, express.json({ limit: '16kb' }), (req, res) => {
    try {
      state.faults = FaultSchema.parse(req.body);
      res.json(state.faults);
    } catch (e) {
      res.status(400).json({ message: (e as Error).message });
    }
  });
  return r;
}
