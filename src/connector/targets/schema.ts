/**
 * What a target is, as an admin writes it in the connector's config (docs/config.md#targets), or as
 * the cloud offers it (cloud-managed targets, where file references make no sense).
 */
import { z } from 'zod';
import { checkRelativePath } from '../../common/http-policy.js';

export const TARGET_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const METHOD_RE = /^[A-Z]+$/;

const httpsUrl = (what: string) =>
  z.string().refine((s) => {
    try {
      const u = new URL(s);
      return u.protocol === 'https:' && !u.username && !u.password && !u.hash;
    } catch {
      return false;
    }
  }, `must be an https URL${what}`);

const relPath = z.string().refine((p) => checkRelativePath(p).ok, 'must be a path starting with "/" (no "..", "//" or control characters)');
const headerName = z.string().regex(HEADER_NAME_RE, 'must be a valid HTTP header name');
/** What may be sent in a header value: no control characters other than tab (CR, LF, NUL…). */
export const HEADER_VALUE_RE = /^[^\u0000-\u0008\u000a-\u001f\u007f]*$/;
const HEADER_VALUE_MESSAGE = 'must not contain control characters (CR, LF, NUL…): it is sent as an HTTP header value';
const headerSecret = z.string().min(1).regex(HEADER_VALUE_RE, HEADER_VALUE_MESSAGE).optional();
/**
 * An allow rule's prefix: whole path segments, matched against the path without its query. A "?"
 * or a "*" (no globs) could never match, and the rule would refuse everything in silence.
 */
const pathPrefix = relPath
  .refine((p) => !p.includes('?'), 'must not contain "?": rules match the path without its query')
  .refine((p) => !p.includes('*'), 'must not contain "*": rules are whole-segment prefixes, not globs (use "/mdm" for everything under /mdm)');

/** Exactly one of `key` / `${key}File` (when files are allowed). */
function oneOf(o: Record<string, unknown>, key: string, ctx: z.RefinementCtx, allowFiles: boolean, required: boolean): void {
  const inline = o[key] !== undefined;
  const file = allowFiles && o[`${key}File`] !== undefined;
  if (inline && file) ctx.addIssue({ code: 'custom', path: [key], message: `set ${key} or ${key}File, not both` });
  else if (required && !inline && !file) ctx.addIssue({ code: 'custom', path: [key], message: allowFiles ? `is required (or ${key}File)` : 'is required' });
}

export function targetSchema(opts: { allowFiles: boolean }) {
  const f = opts.allowFiles;
  const file = f ? z.string().min(1).optional() : z.undefined({ error: 'file references are not accepted here' }).optional();
  const secret = z.string().min(1).optional();

  const basic = z
    .strictObject({
      type: z.literal('basic'),
      // RFC 7617 §2: a user-id with a colon cannot be sent (the server splits at the first one).
      username: z.string().min(1).regex(/^[^:\u0000-\u001f\u007f]*$/, 'must not contain ":" or control characters (RFC 7617: the server would split the user name at the colon)'),
      password: secret,
      passwordFile: file,
      apiKey: headerSecret,
      apiKeyFile: file,
      apiKeyHeader: headerName.default('aw-tenant-code'),
    })
    .superRefine((o, ctx) => {
      oneOf(o, 'password', ctx, f, true);
      oneOf(o, 'apiKey', ctx, f, false);
    });

  const oauth2 = z
    .strictObject({
      type: z.literal('oauth2'),
      tokenUrl: httpsUrl(' (the OAuth2 token endpoint)'),
      clientId: z.string().min(1),
      clientSecret: secret,
      clientSecretFile: file,
      scope: z.string().optional(),
      audience: z.string().optional(),
      /** How the client authenticates to the token endpoint: form fields or HTTP Basic. */
      clientAuth: z.enum(['body', 'basic']).default('body'),
      apiKey: headerSecret,
      apiKeyFile: file,
      apiKeyHeader: headerName.default('aw-tenant-code'),
    })
    .superRefine((o, ctx) => {
      oneOf(o, 'clientSecret', ctx, f, true);
      oneOf(o, 'apiKey', ctx, f, false);
    });

  const apiKey = z
    .strictObject({
      type: z.literal('apiKey'),
      header: headerName,
      value: headerSecret,
      valueFile: file,
      /** Put before the value, e.g. "Bearer " (Hexnode sends the raw key in Authorization). */
      prefix: z.string().max(32).regex(HEADER_VALUE_RE, HEADER_VALUE_MESSAGE).default(''),
    })
    .superRefine((o, ctx) => oneOf(o, 'value', ctx, f, true));

  const none = z.strictObject({ type: z.literal('none') });

  const tls = z
    .strictObject({
      caFile: file,
      ca: z.string().includes('-----BEGIN CERTIFICATE-----', { message: 'must be a PEM certificate or bundle' }).optional(),
      /** SHA-256 of the server certificate or of its public key (hex, hex with colons, base64, or "sha256/<base64>"). */
      pinSha256: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
      serverName: z.string().min(1).max(253).optional(),
    })
    .superRefine((o, ctx) => {
      if (o.ca !== undefined && o.caFile !== undefined) ctx.addIssue({ code: 'custom', path: ['ca'], message: 'set ca or caFile, not both' });
    });

  const rule = z.strictObject({
    methods: z.union([z.literal('*'), z.array(z.string().regex(METHOD_RE, 'must be an upper-case HTTP method')).min(1)]),
    pathPrefix,
  });

  return z.strictObject({
    id: z.string().regex(TARGET_ID_RE, 'must be 1-64 letters, digits, "-" or "_"'),
    baseUrl: httpsUrl(' (the UEM server, optionally with a path prefix such as https://uem.corp.local/API)').refine(
      (s) => !new URL(s).search,
      'must not carry a query string',
    ),
    auth: z.discriminatedUnion('type', [basic, oauth2, apiKey, none], { error: 'type must be "basic", "oauth2", "apiKey" or "none"' }),
    tls: tls.prefault({}),
    timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    maxConcurrent: z.number().int().min(1).max(4096).default(64),
    allow: z.array(rule).default([]),
    healthPath: relPath.optional(),
  });
}

export const LocalTargetSchema = targetSchema({ allowFiles: true });
export const CloudTargetSchema = targetSchema({ allowFiles: false });
export type TargetDefinition = z.infer<typeof LocalTargetSchema>;
export type CloudTargetDefinition = z.infer<typeof CloudTargetSchema>;
