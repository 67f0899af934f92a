/**
 * docs/deployment.md "Several relays when one is not enough": two relays on one database, each with
 * its own slot, publication, table group and stream (and the outbox in one group only), run side
 * by side. Each stream holds its group's events and nothing else, in commit order; a transaction
 * that writes both groups arrives in both streams, split by group.
 */
import { waitFor } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readStream, type StoredMessage, streamMessageCount } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';

const { pg, nats, startRelay } = relayHarness({ streamingTimeoutMs: 60_000 });

/** `<table or outbox type>:<id>` of each message, in stream order. */
const what = (m: StoredMessage) => {
  const body = m.json();
  return m.subject.includes('.outbox.')
    ? `${m.headers['ce-type']}:${m.headers['ce-subject']}`
    : `${body['table']}:${(body['key'] as { id: number }).id}`;
};

/** Commit LSN, then seq: the stream's messages must be in this order. */
function position(m: StoredMessage): [bigint, number] {
  const [hi = '0', lo = '0'] = (m.headers['sluice-commit-lsn'] as string).split('/');
  return [(BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`), Number(m.headers['sluice-seq'])];
}

function inCommitOrder(messages: StoredMessage[]): boolean {
  return messages.every((m, i) => {
    if (i === 0) return true;
    const [lsn, seq] = position(m);
    const [prevLsn, prevSeq] = position(messages[i - 1] as StoredMessage);
    return lsn > prevLsn || (lsn === prevLsn && seq > prevSeq);
  });
}

describe('several relays on one database, one per group of tables', () => {
  it('each with its own SLUICE_SLOT, SLUICE_PUBLICATION, SLUICE_TABLES and stream publishes its group only, in commit order; the outbox goes to one', async () => {
    await pg.query(`CREATE TABLE public.orders (id int PRIMARY KEY, status text);
      CREATE TABLE public.order_lines (id int PRIMARY KEY, order_id int, sku text);
      CREATE TABLE public.invoices (id int PRIMARY KEY, total numeric)`);
    // Group "orders" takes the outbox; group "billing" switches it off, as docs/deployment.md says.
    const orders = relayEnv(pg, nats, { SLUICE_TABLES: 'public.orders,public.order_lines' });
    const billing = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.invoices',
      SLUICE_OUTBOX_TABLE: 'none',
      SLUICE_OUTBOX_MESSAGE_PREFIX: 'none',
    });
    await startRelay(orders);
    await startRelay(billing);

    // A transaction across both groups, then one per group, then both again.
    await pg.query(`BEGIN;
      INSERT INTO public.orders VALUES (1, 'new');
      INSERT INTO public.order_lines VALUES (10, 1, 'A-1');
      INSERT INTO public.invoices VALUES (100, 19.90);
      INSERT INTO sluice.outbox (id, aggregatetype, aggregateid, type, payload)
        VALUES (gen_random_uuid(), 'order', '1', 'OrderPlaced', '{}');
      COMMIT`);
    await pg.query(`INSERT INTO public.invoices VALUES (101, 5)`);
    await pg.query(`UPDATE public.orders SET status = 'paid' WHERE id = 1`);
    await pg.query(`BEGIN;
      INSERT INTO public.order_lines VALUES (11, 1, 'B-2');
      UPDATE public.invoices SET total = 20 WHERE id = 100;
      COMMIT`);

    await waitFor(
      async () =>
        (await streamMessageCount(nats.url, orders.SLUICE_STREAM)) >= 5 &&
        (await streamMessageCount(nats.url, billing.SLUICE_STREAM)) >= 3,
      { timeoutMs: 60_000, message: 'both streams to hold their events' },
    );
    const ordersStream = await readStream(nats.url, orders.SLUICE_STREAM);
    const billingStream = await readStream(nats.url, billing.SLUICE_STREAM);
    expect(ordersStream.map(what)).toEqual([
      'orders:1',
      'order_lines:10',
      'OrderPlaced:1',
      'orders:1',
      'order_lines:11',
    ]);
    expect(billingStream.map(what)).toEqual(['invoices:100', 'invoices:101', 'invoices:100']);
    expect(ordersStream.every((m) => m.subject.startsWith(`${orders.SLUICE_SUBJECT_PREFIX}.`))).toBe(true);
    expect(billingStream.every((m) => m.subject.startsWith(`${billing.SLUICE_SUBJECT_PREFIX}.`))).toBe(true);
    expect(inCommitOrder(ordersStream)).toBe(true);
    expect(inCommitOrder(billingStream)).toBe(true);
    // The first transaction is in both streams, each with its group's part: same commit, no order between them.
    expect(ordersStream[0]?.headers['sluice-commit-lsn']).toBe(
      billingStream[0]?.headers['sluice-commit-lsn'],
    );
    // Ids are per slot: no message id is in both streams.
    const ids = new Set(ordersStream.map((m) => m.headers['Nats-Msg-Id']));
    expect(billingStream.filter((m) => ids.has(m.headers['Nats-Msg-Id']))).toEqual([]);

    // Two slots, two publications, each holding its group's tables.
    const slots = await pg.query<{ slot_name: string; active: boolean }>(
      'SELECT slot_name, active FROM pg_replication_slots WHERE slot_name = ANY($1) ORDER BY slot_name',
      [[orders.SLUICE_SLOT, billing.SLUICE_SLOT]],
    );
    expect(slots).toEqual(
      [orders.SLUICE_SLOT, billing.SLUICE_SLOT].sort().map((slot_name) => ({ slot_name, active: true })),
    );
    const published = await pg.query<{ pubname: string; tables: string[] }>(
      `SELECT pubname, array_agg(schemaname || '.' || tablename ORDER BY tablename) AS tables
         FROM pg_publication_tables WHERE pubname = ANY($1) GROUP BY pubname`,
      [[orders.SLUICE_PUBLICATION, billing.SLUICE_PUBLICATION]],
    );
    expect(Object.fromEntries(published.map((p) => [p.pubname, p.tables]))).toEqual({
      [orders.SLUICE_PUBLICATION as string]: ['public.order_lines', 'public.orders', 'sluice.outbox'],
      [billing.SLUICE_PUBLICATION as string]: ['public.invoices'],
    });
  });
});
