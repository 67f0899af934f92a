import { describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { type StoredMessage, streamMessageCount, waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';

const { pg, nats, spawn, startRelay } = relayHarness();

/** A table partitioned by month of `created`, with two partitions. */
async function partitioned(root: string, prefix: string): Promise<void> {
  await pg.query(
    `CREATE TABLE ${root} (id int, created date, note text, PRIMARY KEY (id, created)) PARTITION BY RANGE (created)`,
  );
  await pg.query(
    `CREATE TABLE public.${prefix}_2024 PARTITION OF ${root} FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`,
  );
  await pg.query(
    `CREATE TABLE public.${prefix}_2025 PARTITION OF ${root} FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`,
  );
}

const summary = (m: StoredMessage) => {
  const body = m.json();
  const key = body['key'] as { id: number } | null;
  return [body['op'], body['schema'], body['table'], key?.id ?? null];
};

describe('partitioned tables are published under the root', () => {
  it("publishes every partition's changes as the root's: snapshot, moves between partitions, partitions created or attached later", async () => {
    const root = 'public."Orders By Month"';
    await partitioned(root, 'obm');
    await pg.query(`INSERT INTO ${root} VALUES (1, '2024-03-01', 'a'), (2, '2025-03-01', 'b')`);
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: root,
      SLUICE_SNAPSHOT: 'initial',
      SLUICE_OUTBOX_TABLE: 'none',
    });
    await startRelay(env);
    // The snapshot reads the root, i.e. the rows of every partition.
    await waitForMessages(nats.url, env.SLUICE_STREAM, 2);

    // An update of the partition key moves the row: Postgres publishes a delete and an insert.
    await pg.query(`UPDATE ${root} SET created = '2025-06-01' WHERE id = 1`);
    await pg.query(`UPDATE public.obm_2025 SET note = 'x' WHERE id = 2`);
    await pg.query(
      `CREATE TABLE public.obm_2026 PARTITION OF ${root} FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
    );
    await pg.query(`INSERT INTO public.obm_2026 VALUES (4, '2026-02-01', 'created later')`);
    await pg.query(
      'CREATE TABLE public.obm_2027 (id int, created date, note text, PRIMARY KEY (id, created))',
    );
    await pg.query(`INSERT INTO public.obm_2027 VALUES (5, '2027-02-01', 'before attaching')`);
    await pg.query(
      `ALTER TABLE ${root} ATTACH PARTITION public.obm_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')`,
    );
    await pg.query(`INSERT INTO ${root} VALUES (6, '2027-03-01', 'attached later')`);
    // Postgres does not publish the truncate of one partition under publish_via_partition_root.
    await pg.query('TRUNCATE public.obm_2024');
    await pg.query(`DELETE FROM ${root} WHERE id = 6`);
    await pg.query(`TRUNCATE ${root}`);

    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 9);
    expect(messages.map(summary)).toEqual([
      ['read', 'public', 'Orders By Month', 1],
      ['read', 'public', 'Orders By Month', 2],
      ['delete', 'public', 'Orders By Month', 1],
      ['insert', 'public', 'Orders By Month', 1],
      ['update', 'public', 'Orders By Month', 2],
      ['insert', 'public', 'Orders By Month', 4],
      ['insert', 'public', 'Orders By Month', 6],
      ['delete', 'public', 'Orders By Month', 6],
      ['truncate', 'public', 'Orders By Month', null],
    ]);
    const [, , moveOut, moveIn] = messages;
    expect(moveOut?.json()['before']).toEqual({ id: 1, created: '2024-03-01' });
    expect(moveIn?.json()['after']).toEqual({ id: 1, created: '2025-06-01', note: 'a' });
    expect(moveIn?.headers['sluice-commit-lsn']).toBe(moveOut?.headers['sluice-commit-lsn']);
    const p = env.SLUICE_SUBJECT_PREFIX;
    expect(new Set(messages.map((m) => m.subject.replace(/\.[a-z]+$/, '')))).toEqual(
      new Set([`${p}.cdc.public.Orders%20By%20Month`]),
    );
    // The truncate of the root came last: nothing else is waiting.
    expect(await streamMessageCount(nats.url, env.SLUICE_STREAM)).toBe(9);
  });

  it('publishes a partition listed alone under its own name', async () => {
    await partitioned('public.alone', 'alone');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.alone_2025', SLUICE_OUTBOX_TABLE: 'none' });
    await startRelay(env);
    await pg.query(
      `INSERT INTO public.alone VALUES (1, '2024-02-01', 'elsewhere'), (2, '2025-02-01', 'here')`,
    );
    await pg.query(`UPDATE public.alone SET created = '2024-06-01' WHERE id = 2`);
    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
    expect(messages.map(summary)).toEqual([
      ['insert', 'public', 'alone_2025', 2],
      ['delete', 'public', 'alone_2025', 2],
    ]);
  });
});

describe('partitioned tables: set-ups that would lose changes are refused before anything is created', () => {
  it('refuses an existing publication without publish_via_partition_root, leaves it as it is, and runs once the operator sets it', async () => {
    await partitioned('public.legacy', 'legacy');
    await pg.query('CREATE PUBLICATION legacy_pub FOR TABLE public.legacy');
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.legacy',
      SLUICE_PUBLICATION: 'legacy_pub',
      SLUICE_OUTBOX_TABLE: 'none',
    });
    const refused = spawn(env);
    expect((await refused.exited).code).toBe(1);
    expect(refused.output()).toMatch(
      /publication "legacy_pub" on \S+ was created without publish_via_partition_root/,
    );
    expect(refused.output()).toContain(
      'ALTER PUBLICATION "legacy_pub" SET (publish_via_partition_root = true);',
    );
    expect(
      await pg.query('SELECT pubviaroot FROM pg_publication WHERE pubname = $1', ['legacy_pub']),
    ).toEqual([{ pubviaroot: false }]);
    expect(
      await pg.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [env.SLUICE_SLOT]),
    ).toEqual([]);

    await pg.query('ALTER PUBLICATION legacy_pub SET (publish_via_partition_root = true)');
    await startRelay(env);
    await pg.query(`INSERT INTO public.legacy_2025 VALUES (1, '2025-01-02', 'now published')`);
    const [message] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    expect(message && summary(message)).toEqual(['insert', 'public', 'legacy', 1]);
  });

  it('refuses a partition listed together with its root (exit 2)', async () => {
    await partitioned('public.both', 'both');
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.both, public.both_2024',
      SLUICE_OUTBOX_TABLE: 'none',
    });
    const relay = spawn(env);
    expect((await relay.exited).code).toBe(2);
    expect(relay.output()).toContain(
      'public.both_2024 is a partition of public.both, which is captured too: its changes are published as changes of public.both',
    );
    expect(relay.output()).toContain('remove public.both_2024 from SLUICE_TABLES');
    expect(
      await pg.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [env.SLUICE_PUBLICATION]),
    ).toEqual([]);
  });

  it("refuses a partition alone when the operator's publication already publishes its root via the root", async () => {
    await partitioned('public.viaroot', 'viaroot');
    await pg.query(
      'CREATE PUBLICATION viaroot_pub FOR TABLE public.viaroot WITH (publish_via_partition_root = true)',
    );
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.viaroot_2025',
      SLUICE_PUBLICATION: 'viaroot_pub',
      SLUICE_OUTBOX_TABLE: 'none',
    });
    const relay = spawn(env);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toContain(
      'changes of its partition public.viaroot_2025 arrive as changes of public.viaroot, which Sluice does not capture',
    );
    expect(relay.output()).toContain('ALTER PUBLICATION "viaroot_pub" DROP TABLE "public"."viaroot";');
  });
});
