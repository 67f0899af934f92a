/** `"name"` with embedded quotes doubled: safe for any identifier, keeps its case. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `'text'` with embedded quotes doubled (standard_conforming_strings is on since Postgres 9.1). */
export function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

export function qualifiedName(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/** Logical-replication protocol version the server speaks: newer versions add fields, never remove them. */
export function protocolVersionFor(serverVersionNum: number): 1 | 2 | 3 | 4 {
  if (serverVersionNum >= 160000) return 4;
  if (serverVersionNum >= 150000) return 3;
  if (serverVersionNum >= 140000) return 2;
  return 1;
}

/** SQLSTATE of a Postgres error (pg's DatabaseError), or undefined for anything else. */
export function sqlState(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  // Node's socket errors have a `code` too (EPIPE looks like a SQLSTATE); only server errors have `severity`.
  const code: unknown = Reflect.get(err, 'code');
  const severity: unknown = Reflect.get(err, 'severity');
  return typeof code === 'string' && typeof severity === 'string' ? code : undefined;
}
