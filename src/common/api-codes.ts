/**
 * The `error` codes of uemlink's HTTP answers (docs/errors.md, "HTTP codes"). A client branches on
 * them, so they are a contract: a code not listed here does not compile.
 */

/**
 * The codes of the relay's own answers, from the cloud or a connector: they go in x-uemlink-error
 * as well as the body, and a relay client tells them from the UEM's answers by that header.
 */
export const RELAY_ERROR_CODES = [
  'unauthorized', 'forbidden', 'rate_limited', 'not_found', 'unsupported_media_type', 'bad_request', 'request_timeout', 'bad_json',
  'too_large', 'internal', 'busy', 'draining', 'overloaded', 'bad_path', 'bad_header', 'headers_too_large', 'unsupported_transfer_coding',
  'unknown_target', 'no_connector', 'connector_lost', 'connector_error', 'upstream_timeout', 'upstream_busy', 'cancelled', 'wrong_tenant', 'not_allowed',
  'method_not_allowed', 'duplicate_request', 'upstream_unreachable', 'upstream_tls', 'upstream_auth', 'upstream_protocol',
  'upstream_headers_too_large',
] as const;
export type RelayErrorCode = (typeof RELAY_ERROR_CODES)[number];

const RELAY_ERROR_CODE_SET: ReadonlySet<string> = new Set(RELAY_ERROR_CODES);

/**
 * Whether a received x-uemlink-error is one of ours. The metrics count anything else as "other": a
 * label per value a connector sends would grow without bound.
 */
export function isRelayErrorCode(code: string): code is RelayErrorCode {
  return RELAY_ERROR_CODE_SET.has(code);
}

/** The codes of the cloud's JSON APIs beyond the relay's: pairing, connectors, integrations. */
export type ApiErrorCode =
  | RelayErrorCode
  | 'token_malformed'
  | 'token_unknown'
  | 'token_expired'
  | 'token_used'
  | 'csr_invalid'
  | 'unknown_connector'
  | 'unknown_integration'
  | 'unknown_device'
  | 'unknown_policy'
  | 'group_conflict'
  | 'precondition_failed'
  | 'bad_if_match'
  | 'uem_unreachable';
