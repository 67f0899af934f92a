import type { Logger, SourceInfo } from '@sluice/core';
import { DEFAULT_OUTBOX_COLUMNS } from '@sluice/outbox';
import type { LogicalMessage } from '@sluice/pgoutput';
import { describe, expect, it } from 'vitest';
import { createOutboxHooks } from './outbox-events.js';
import type { StreamContext } from './outbox-hooks.js';

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const logger: Logger & { warnings: string[] } = {
    warnings,
    debug() {},
    info() {},
    warn(_fields, message) {
      warnings.push(message ?? '');
    },
    error() {},
    child: () => logger,
  };
  return logger;
}

function context(commitLsn: bigint | null): StreamContext {
  let seq = 0;
  return {
    slot: 's',
    transaction: commitLsn === null ? null : { commitLsn, commitTime: '2026-01-01T00:00:00Z', xid: 1 },
    lsn: 0x10n,
    nextSource: (): SourceInfo => ({
      lsn: '0/10',
      commitLsn: `0/${(commitLsn ?? 0n).toString(16)}`,
      xid: 1,
      commitTime: '2026-01-01T00:00:00Z',
      seq: seq++,
      snapshot: null,
    }),
    changeId: (source) => `s:${source.commitLsn}:${source.seq}`,
  };
}

const outbox = { schema: 'sluice', table: 'outbox' };
const row = {
  id: 'e-1',
  aggregatetype: 'order',
  aggregateid: '1',
  type: 'Placed',
  payload: {},
  headers: null,
};
const raw = { text: (column: string) => (column === 'payload' ? '{ }' : undefined) };

function message(prefix: string, transactional: boolean, content = '{}'): LogicalMessage {
  return {
    tag: 'message',
    xid: undefined,
    transactional,
    lsn: 0x10n,
    prefix,
    content: new TextEncoder().encode(content),
  };
}

describe('createOutboxHooks', () => {
  it('turns an outbox insert into an event with the raw payload text and leaves other tables alone', () => {
    const hooks = createOutboxHooks({
      table: outbox,
      columns: DEFAULT_OUTBOX_COLUMNS,
      messagePrefix: null,
      logger: recordingLogger(),
    });

    const events = hooks.onInsert?.(outbox, row, context(0x100n), raw);
    expect(events).toMatchObject([{ kind: 'outbox', id: 'e-1', payload: '{ }', source: { seq: 0 } }]);
    expect(
      hooks.onInsert?.({ schema: 'public', table: 'orders' }, row, context(0x100n), raw),
    ).toBeUndefined();
    expect(hooks.tables).toEqual([outbox]);
    expect(hooks.onLogicalMessage).toBeUndefined();
  });

  it('warns once per table about updates and deletes, but not about a delete in the inserting transaction', () => {
    const logger = recordingLogger();
    const hooks = createOutboxHooks({
      table: outbox,
      columns: DEFAULT_OUTBOX_COLUMNS,
      messagePrefix: null,
      logger,
    });

    hooks.onInsert?.(outbox, row, context(0x100n), raw);
    hooks.onIgnoredChange?.(outbox, 'delete', context(0x100n));
    expect(logger.warnings).toEqual([]);

    hooks.onIgnoredChange?.(outbox, 'delete', context(0x200n));
    hooks.onIgnoredChange?.(outbox, 'update', context(0x300n));
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]).toMatch(/^outbox table sluice\.outbox: ignoring a delete/);
  });

  it('publishes transactional messages with its prefix only, and warns once about non-transactional ones', () => {
    const logger = recordingLogger();
    const hooks = createOutboxHooks({
      table: null,
      columns: DEFAULT_OUTBOX_COLUMNS,
      messagePrefix: 'app.outbox',
      logger,
    });
    const content = '{"id":"m-1","aggregatetype":"order","aggregateid":"1","type":"Placed","payload":[1]}';

    expect(hooks.onLogicalMessage?.(message('app.outbox', true, content), context(0x100n))).toMatchObject([
      { id: 'm-1', payload: '[1]' },
    ]);
    expect(hooks.onLogicalMessage?.(message('sluice.outbox', true, content), context(0x100n))).toEqual([]);
    expect(hooks.onLogicalMessage?.(message('app.outbox', false, content), context(null))).toEqual([]);
    expect(hooks.onLogicalMessage?.(message('app.outbox', false, content), context(null))).toEqual([]);
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]).toMatch(
      /non-transactional logical message with the outbox prefix "app\.outbox"/,
    );
    expect(hooks.tables).toEqual([]);
    expect(hooks.onInsert).toBeUndefined();
  });
});

describe('outbox rows and messages that cannot be events', () => {
  const wiring = (invalidEvents?: 'stop' | 'dead-letter') => ({
    table: outbox,
    columns: DEFAULT_OUTBOX_COLUMNS,
    messagePrefix: 'sluice.outbox',
    logger: recordingLogger(),
    ...(invalidEvents ? { invalidEvents } : {}),
  });
  const textPayload = {
    text: (c: string) => (c === 'payload' ? 'not json' : undefined),
    isJson: () => false,
  };

  it('throws by default, so the relay stops before the event', () => {
    const hooks = createOutboxHooks(wiring());
    expect(() => hooks.onInsert?.(outbox, { ...row, type: '' }, context(0x20n), raw)).toThrow(
      /column "type" \(type\) must be a non-empty string/,
    );
    expect(() => hooks.onInsert?.(outbox, row, context(0x20n), textPayload)).toThrow(
      /column "payload" \(payload\) is not JSON/,
    );
  });

  it('with dead-letter returns the event marked invalid, with what the row or message holds, taking its seq', () => {
    const hooks = createOutboxHooks(wiring('dead-letter'));
    const ctx = context(0x20n);
    const [fromRow] = hooks.onInsert?.(outbox, row, ctx, textPayload) ?? [];
    expect(fromRow).toMatchObject({
      kind: 'outbox',
      id: 'e-1',
      aggregateType: 'order',
      aggregateId: '1',
      type: 'Placed',
      payload: 'not json',
      source: { seq: 0 },
      invalid: { code: 'bad_row' },
    });
    const [fromMessage] = hooks.onLogicalMessage?.(message('sluice.outbox', true, 'nope'), ctx) ?? [];
    expect(fromMessage).toMatchObject({ id: 's:0/20:1', payload: 'nope', invalid: { code: 'bad_row' } });
    expect((fromMessage as { invalid: { message: string } }).invalid.message).toMatch(/content is not JSON/);
    // A json or jsonb column is checked by Postgres: its text is not parsed again.
    const [jsonb] = hooks.onInsert?.(outbox, row, ctx, { ...textPayload, isJson: () => true }) ?? [];
    expect(jsonb).not.toHaveProperty('invalid');
  });
});
