import type { PostgresServer } from '@sluice/testkit';
import pg from 'pg';

/**
 * The fault suite's schema, one per scenario so scenarios never see each other's events:
 * - `items`: row changes (upserts on KEYS keys), each carrying a unique event id `eid`;
 * - `outbox`: outbox events (Debezium columns) whose payload is `{"eid": N}`;
 * - `snap`: rows present before the relay starts, for the initial snapshot;
 * - `txns`: one row per committed transaction with the ids of its events in write order. Written in
 *   the same transaction, so it is the truth about what committed, even when a crash leaves the
 *   writer unsure whether its COMMIT went through. It is not captured.
 * `txn(n)` writes one transaction of `n` events in a single round trip: every fourth an outbox
 * event, the rest upserts of random keys.
 */
export async function createLoadSchema(
  pgServer: PostgresServer,
  schema: string,
  snapRows: number,
): Promise<void> {
  await pgServer.query(`
    CREATE SCHEMA ${schema};
    CREATE SEQUENCE ${schema}.eid;
    CREATE TABLE ${schema}.items (k int PRIMARY KEY, eid int8 NOT NULL);
    CREATE TABLE ${schema}.outbox (
      id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL,
      type text NOT NULL, payload jsonb);
    CREATE TABLE ${schema}.snap (id int PRIMARY KEY, pad text NOT NULL);
    INSERT INTO ${schema}.snap SELECT g, repeat('s', 40) FROM generate_series(1, ${snapRows}) g;
    CREATE TABLE ${schema}.txns (xid xid8 PRIMARY KEY DEFAULT pg_current_xact_id(), eids int8[] NOT NULL);
    CREATE FUNCTION ${schema}.txn(n int, keys int) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
      e int8;
      ids int8[] := '{}';
    BEGIN
      FOR i IN 1..n LOOP
        e := nextval('${schema}.eid');
        ids := ids || e;
        IF e % 4 = 0 THEN
          INSERT INTO ${schema}.outbox VALUES
            (gen_random_uuid(), 'fault', (e % 50)::text, 'tick', jsonb_build_object('eid', e));
        ELSE
          INSERT INTO ${schema}.items VALUES (floor(random() * keys)::int, e)
            ON CONFLICT (k) DO UPDATE SET eid = excluded.eid;
        END IF;
      END LOOP;
      INSERT INTO ${schema}.txns (eids) VALUES (ids);
    END $$;
  `);
}

export interface LoadOptions {
  schema: string;
  /** Events to write in small transactions (single-row and 100-row), over all writers; default until `stop`. */
  events?: number;
  writers?: number;
  keys?: number;
  /** Pause between transactions of one writer, to spread the load over the faults. */
  pauseMs?: number;
}

/**
 * Writers running `txn()` in a loop: four single-row transactions for each 100-row one. A writer
 * whose connection fails (Postgres restarting) reconnects and goes on; whether its last
 * transaction committed is for `txns` to say, not the writer.
 */
export class LoadGenerator {
  /** Events committed (as far as the writers know) in small transactions. */
  written = 0;
  /** Events of large transactions (`bigTransaction`). */
  bigWritten = 0;
  errors = 0;
  private stopped = false;
  private readonly running: Promise<void>[] = [];

  constructor(
    private readonly pgServer: PostgresServer,
    private readonly options: LoadOptions,
  ) {}

  start(): void {
    for (let w = 0; w < (this.options.writers ?? 3); w++) this.running.push(this.writer(w));
  }

  /** Resolves once the writers have written their share (or were stopped). */
  async done(): Promise<void> {
    await Promise.all(this.running);
  }

  stop(): Promise<void> {
    this.stopped = true;
    return this.done();
  }

  /** One transaction of `n` events, retried until it commits (used for the large one). */
  async bigTransaction(n: number): Promise<void> {
    for (;;) {
      const client = new pg.Client({ connectionString: this.pgServer.url() });
      try {
        await client.connect();
        await client.query(`SELECT ${this.options.schema}.txn($1, $2)`, [n, this.options.keys ?? 1000]);
        this.bigWritten += n;
        return;
      } catch {
        this.errors++;
        await sleep(500);
      } finally {
        await client.end().catch(() => {});
      }
    }
  }

  private async writer(w: number): Promise<void> {
    let client: pg.Client | undefined;
    let i = w;
    while (!this.stopped && this.written < (this.options.events ?? Number.POSITIVE_INFINITY)) {
      const n = i++ % 5 === 4 ? 100 : 1;
      try {
        if (!client) {
          client = new pg.Client({ connectionString: this.pgServer.url() });
          client.on('error', () => {});
          await client.connect();
        }
        await client.query(`SELECT ${this.options.schema}.txn($1, $2)`, [n, this.options.keys ?? 1000]);
        this.written += n;
        if (this.options.pauseMs) await sleep(this.options.pauseMs);
      } catch {
        this.errors++;
        await client?.end().catch(() => {});
        client = undefined;
        await sleep(200);
      }
    }
    await client?.end().catch(() => {});
  }
}

/** Every committed transaction's event ids, in write order, from `txns`. */
export async function committedTransactions(pgServer: PostgresServer, schema: string): Promise<string[][]> {
  const rows = await pgServer.query<{ eids: string[] }>(`SELECT eids::text[] AS eids FROM ${schema}.txns`);
  return rows.map((r) => r.eids);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
