/**
 * The parts of `pg` the SDK uses, structurally: a `pg.Pool` and its `PoolClient` fit, and the SDK
 * needs no runtime dependency on `pg` (the application brings its own).
 */
export interface PgQueryResult {
  rows: Array<Record<string, unknown>>;
  rowCount: number | null;
}

export interface PgClient {
  query(text: string, values?: unknown[]): Promise<PgQueryResult>;
  release(err?: Error | boolean): void;
}

export interface PgPool<C extends PgClient = PgClient> {
  connect(): Promise<C>;
  query(text: string, values?: unknown[]): Promise<PgQueryResult>;
}

/** Postgres' SQLSTATE of an error from `pg`, if it has one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** undefined_table / undefined_schema / undefined_column: the SDK's tables are missing or old. */
export function isMissingRelation(err: unknown): boolean {
  const s = sqlState(err);
  return s === '42P01' || s === '3F000' || s === '42703';
}
