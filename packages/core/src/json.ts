/** A value that JSON.stringify round-trips without loss. int8 and numeric travel as strings. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type Row = Record<string, JsonValue>;
