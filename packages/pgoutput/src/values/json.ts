/**
 * A value JSON.stringify round-trips without loss. Structurally identical to `@sluice/core`'s JsonValue
 * (pgoutput does not depend on core).
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Turns one text-format column value into a JsonValue. */
export type ValueParser = (text: string) => JsonValue;
