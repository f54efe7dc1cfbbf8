/**
 * The shapes of the names both halves exchange (tenants, connector groups, connector ids): the
 * cloud issues them, the connector checks what it is given before using one (a connector id names
 * its key file).
 */
export const TENANT_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const GROUP_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export const CONNECTOR_ID_RE = /^cn_[0-9a-f]{20}$/;
