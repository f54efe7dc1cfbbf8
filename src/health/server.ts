/**
 * The connector's local page and its machine endpoints (health.listen, default 127.0.0.1:8081):
 * GET / (the page), /healthz, /readyz, /api/status, /metrics, and the page's actions (pair, approve
 * or reject cloud-managed targets, run diagnostics, download a support bundle). Every state-changing
 * action needs the local admin password and a valid CSRF token.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import helmet from 'helmet';
import { UemlinkError, messageOf } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { FailureLimiter, sourceOf } from '../common/rate-limit.js';
import { redactString } from '../common/redact.js';
import { esc } from '../common/web.js';
import type { Diagnosis } from '../connector/diagnose.js';
import type { PairOutcome } from '../connector/pair.js';
import type { ConnectorStatus } from '../connector/status.js';
import { PAGE_CSS, PAGE_JS } from './assets.js';
import { csrfProblem, csrfToken, hostProblem, localHostnames, passwordMatches } from './auth.js';
import { renderPage, type PageView } from './page.js';

export interface HealthBackend {
  status(): Promise<ConnectorStatus>;
  metrics(): Promise<string>;
  pair(token: string, force: boolean): Promise<PairOutcome>;
  /** `offeredAt`: the offer the admin saw (the form's); a newer one is refused (CONFLICT). */
  decide(id: string, decision: 'accepted' | 'refused', offeredAt?: string): Promise<void>;
  diagnose(): Promise<Diagnosis>;
  supportBundle(): Promise<Buffer>;
}

export interface HealthServerOptions {
  listen: { host: string; port: number };
  tls?: { cert: string; key: string };
  /** Host names answered besides IP addresses, localhost and this machine's (see hostProblem). */
  allowedHostnames?: string[];
  adminPassword: string;
  /** Where the admin password is kept (said next to the password fields and when one is wrong). */
  adminPasswordFile?: string;
  backend: HealthBackend;
  logger: Logger;
}

const DONE: Record<string, string> = {
  paired: 'Paired. The tunnel is starting.',
  repaired: 'Paired again. The tunnel is starting; the cloud revoked the previous identity.',
  'repaired-kept': 'Paired again. The tunnel is starting. The cloud did not revoke the previous identity: revoke it in the cloud (its id is in the log).',
  approved: 'Approved: the target is active and offered to the cloud.',
  rejected: 'Rejected: the target is not used.',
};

export class HealthServer {
  private constructor(private readonly server: Server) {}

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  static async start(o: HealthServerOptions): Promise<HealthServer> {
    const secure = Boolean(o.tls);
    const limiter = new FailureLimiter(5, 60_000);
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.use(
      helmet({
        contentSecurityPolicy: {
          useDefaults: false,
          directives: {
            defaultSrc: ["'self'"],
            scriptSrc: ["'self'"],
            styleSrc: ["'self'"],
            imgSrc: ["'self'", 'data:'],
            formAction: ["'self'"],
            frameAncestors: ["'none'"],
            baseUri: ["'none'"],
            objectSrc: ["'none'"],
          },
        },
        strictTransportSecurity: secure,
        // Forms must carry our Origin (no-referrer makes browsers send "Origin: null").
        referrerPolicy: { policy: 'same-origin' },
        xFrameOptions: { action: 'deny' },
      }),
    );
    const form = express.urlencoded({ extended: false, limit: '32kb' });

    app.get('/healthz', (_req, res) => {
      res.json({ status: 'ok' });
    });
    app.get('/readyz', async (_req, res) => {
      const s = await o.backend.status();
      if (s.ready) res.json({ ready: true });
      else res.status(503).json({ error: 'not_ready', message: s.notReadyReason ?? 'not ready' });
    });
    // Probes above answer any Host (orchestrators address pods every way); the rest only names we
    // know: a page under an attacker's domain re-pointed at this address (DNS rebinding) would
    // otherwise read the status and, its Origin matching its Host, pass the CSRF check.
    const allowedHosts = new Set(['localhost', o.listen.host.toLowerCase(), ...localHostnames(), ...(o.allowedHostnames ?? [])]);
    app.use((req, res, next) => {
      const problem = hostProblem(req.headers.host, allowedHosts);
      if (!problem) return next();
      res.status(421).json({ error: 'bad_host', message: problem });
    });
    app.get('/api/status', async (_req, res) => {
      res.setHeader('cache-control', 'no-store');
      res.json(await o.backend.status());
    });
    app.get('/metrics', async (_req, res) => {
      res.setHeader('content-type', 'text/plain; version=0.0.4; charset=utf-8');
      res.send(await o.backend.metrics());
    });
    app.get('/assets/page.css', (_req, res) => {
      res.type('text/css').setHeader('cache-control', 'max-age=300').send(PAGE_CSS);
    });
    app.get('/assets/page.js', (_req, res) => {
      res.type('application/javascript').setHeader('cache-control', 'max-age=300').send(PAGE_JS);
    });

    const page = async (req: Request, res: Response, status: number, extra: Partial<PageView> = {}): Promise<void> => {
      const csrf = csrfToken(req, res, secure);
      const view: PageView = { status: await o.backend.status(), csrf, live: req.path === '/', ...(o.adminPasswordFile ? { passwordFile: o.adminPasswordFile } : {}), ...extra };
      res.status(status).setHeader('cache-control', 'no-store');
      res.type('html').send(renderPage(view));
    };

    app.get('/', async (req, res) => {
      const done = typeof req.query.done === 'string' ? DONE[req.query.done] : undefined;
      await page(req, res, 200, done ? { flash: { kind: 'ok', text: done } } : {});
    });

    /** CSRF, then (for state changes) the password; answers the page with the problem when refused. */
    const guard = async (req: Request, res: Response, needsPassword: boolean): Promise<boolean> => {
      const problem = csrfProblem(req, secure);
      if (problem) {
        await page(req, res, 403, { flash: { kind: 'error', text: problem }, ...keptToken(req) });
        return false;
      }
      if (!needsPassword) return true;
      const ip = sourceOf(req.socket.remoteAddress) || 'unknown'; // an IPv6 client counts by its /64
      if (limiter.retryAfter(ip) > 0) {
        await page(req, res, 429, { flash: { kind: 'error', text: 'Too many wrong passwords from this address; wait a minute and try again.' } });
        return false;
      }
      if (!passwordMatches((req.body as Record<string, unknown>).password, o.adminPassword)) {
        limiter.fail(ip);
        o.logger.warn('local page: wrong admin password', { remote: req.socket.remoteAddress, path: req.path });
        await page(req, res, 401, { flash: { kind: 'error', text: `Wrong local admin password.${o.adminPasswordFile ? ` It is in ${o.adminPasswordFile} on the connector's machine (readable by root and the service user).` : ''}` }, wrongPassword: passwordFieldOf(req), ...keptToken(req) });
        return false;
      }
      return true;
    };

    /** The password field of the form a request came from (page.ts names them). */
    const passwordFieldOf = (req: Request): string => {
      if (req.path === '/actions/pair') return (req.body as Record<string, unknown> | undefined)?.force === '1' ? 'pw-repair' : 'pw-pair';
      if (req.path === '/actions/support-bundle') return 'pw-bundle';
      const id = (req.params as Record<string, string | undefined>).id;
      return req.path.startsWith('/actions/targets/') && id ? `pw-mt-${esc(id)}` : '';
    };

    /**
     * A refused "Pair again" opens its form again. The pairing string itself is never sent back
     * (no secret in a page): the page's script keeps what was pasted in the tab's sessionStorage
     * until a pairing succeeds (assets.ts).
     */
    const keptToken = (req: Request): Partial<PageView> => (req.path === '/actions/pair' && (req.body as Record<string, unknown> | undefined)?.force === '1' ? { repair: true } : {});

    const failed = async (req: Request, res: Response, e: unknown): Promise<void> => {
      const code = e instanceof UemlinkError ? e.code : 'FAILED';
      // The page's words, not the CLI's: "--force" means nothing here.
      const text = code === 'PAIR_ALREADY_PAIRED' ? 'This connector was paired meanwhile (the page was older than that). To replace that identity, use "Pair again" below.' : redactString(messageOf(e));
      await page(req, res, code === 'NOT_FOUND' ? 404 : code === 'CONFLICT' ? 409 : 400, { flash: { kind: 'error', text }, ...(code === 'PAIR_ALREADY_PAIRED' ? {} : keptToken(req)) });
    };

    app.post('/actions/pair', form, async (req, res) => {
      if (!(await guard(req, res, true))) return;
      const body = req.body as Record<string, unknown>;
      const token = typeof body.token === 'string' ? body.token : '';
      try {
        const r = await o.backend.pair(token, body.force === '1');
        o.logger.info('paired from the local page', { connectorId: r.connectorId, tenant: r.tenant, ...(r.replaced ? { replaced: r.replaced } : {}) });
        if (r.replaced && !r.replaced.revoked) o.logger.warn('the cloud did not revoke the replaced identity: revoke it there', { connectorId: r.replaced.connectorId, reason: r.replaced.reason });
        res.redirect(303, `/?done=${!r.replaced ? 'paired' : r.replaced.revoked ? 'repaired' : 'repaired-kept'}`);
      } catch (e) {
        await failed(req, res, e);
      }
    });

    app.post('/actions/targets/:id/:decision', form, async (req, res) => {
      if (!(await guard(req, res, true))) return;
      const decision = req.params.decision === 'approve' ? 'accepted' : req.params.decision === 'reject' ? 'refused' : undefined;
      if (!decision) return void (await page(req, res, 404, { flash: { kind: 'error', text: 'Unknown action.' } }));
      try {
        const offeredAt = (req.body as Record<string, unknown>).offeredAt;
        await o.backend.decide(String(req.params.id), decision, typeof offeredAt === 'string' ? offeredAt : undefined);
        res.redirect(303, `/?done=${decision === 'accepted' ? 'approved' : 'rejected'}`);
      } catch (e) {
        await failed(req, res, e);
      }
    });

    app.post('/actions/diagnose', form, async (req, res) => {
      if (!(await guard(req, res, false))) return;
      const diagnosis = await o.backend.diagnose();
      await page(req, res, 200, { diagnosis, flash: diagnosis.ok ? { kind: 'ok', text: 'All checks passed.' } : { kind: 'error', text: 'Some checks failed: see Diagnostics below.' } });
    });

    app.post('/actions/support-bundle', form, async (req, res) => {
      if (!(await guard(req, res, true))) return;
      const buf = await o.backend.supportBundle();
      const name = `uemlink-support-${new Date().toISOString().replace(/[:.]/g, '-')}.tar.gz`;
      res.setHeader('content-type', 'application/gzip');
      res.setHeader('content-disposition', `attachment; filename="${name}"`);
      res.setHeader('cache-control', 'no-store');
      res.send(buf);
    });

    app.use((req, res) => {
      res.status(404).json({ error: 'not_found', message: `no such page: ${req.method} ${req.path}` });
    });
    app.use((err: unknown, req: Request, res: Response, _next: express.NextFunction) => {
      const e = err as { type?: string };
      if (e?.type === 'entity.too.large') return void res.status(413).json({ error: 'too_large', message: 'the form is too large' });
      o.logger.error('local page error', { path: req.path, err });
      if (!res.headersSent) res.status(500).json({ error: 'internal', message: 'internal error; see the connector log' });
    });

    const server = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }, app) : createHttpServer(app);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.listen.port, o.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    o.logger.info('local page listening', { url: `${secure ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}/` });
    return new HealthServer(server);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}
