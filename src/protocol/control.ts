/**
 * CONTROL messages (docs/protocol.md §9) as one discriminated union, checked where they arrive:
 * each side's handlers switch on `type` with typed fields, and a message a side sends is checked
 * against the spec by the compiler.
 *
 * What the spec ignores is dropped here: an unknown type (a newer peer), or a known type with
 * missing or mistyped fields. Two exceptions keep their answers, so their payload is left to the
 * handler: `target.offer` (any `target`; the connector refuses an invalid definition with the
 * field at fault) and `cert.renew` (any `csr`; the cloud answers `cert.renew-failed`). Optional
 * words (`reason`, `message`) of the wrong type are dropped, not the message.
 */
import { z } from 'zod';

/** Ids of the `targets` list, as the spec bounds them. */
const TargetId = z.string().max(64);
/** A word that may be absent or mistyped without the message being ignored. */
const optionalText = z.string().optional().catch(undefined);

export const ControlSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('targets'), targets: z.array(TargetId) }),
  z.object({ type: z.literal('target.offer'), target: z.unknown() }),
  z.object({ type: z.literal('target.withdraw'), id: z.string() }),
  z.object({ type: z.literal('target.sync'), ids: z.array(z.string()) }),
  z.object({ type: z.literal('target.status'), id: z.string(), state: z.enum(['accepted', 'pending', 'refused']), reason: optionalText }),
  z.object({ type: z.literal('cert.renew-requested'), reason: optionalText }),
  z.object({ type: z.literal('cert.renew'), csr: z.unknown() }),
  z.object({ type: z.literal('cert.renewed'), certificate: z.string(), caCertificate: z.string() }),
  z.object({ type: z.literal('cert.renew-failed'), message: optionalText }),
]);

export type ControlMessage = z.infer<typeof ControlSchema>;

/** A received CONTROL object as a typed message, or undefined when the spec says to ignore it. */
export function parseControl(msg: Record<string, unknown>): ControlMessage | undefined {
  const r = ControlSchema.safeParse(msg);
  return r.success ? r.data : undefined;
}
