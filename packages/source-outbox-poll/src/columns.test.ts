import { ConfigError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLL_COLUMNS, resolvePollColumns } from './columns.js';

describe('resolvePollColumns', () => {
  it("defaults to Debezium's event columns and Sluice's poll columns", () => {
    expect(resolvePollColumns(undefined)).toEqual({
      id: 'id',
      aggregateType: 'aggregatetype',
      aggregateId: 'aggregateid',
      type: 'type',
      payload: 'payload',
      headers: 'headers',
      txid: 'txid',
      position: 'position',
      createdAt: 'created_at',
      publishedAt: 'published_at',
    });
    expect(resolvePollColumns({})).toEqual(DEFAULT_POLL_COLUMNS);
  });

  it('takes overrides, a table without headers and one without a creation time', () => {
    expect(
      resolvePollColumns({ headers: null, createdAt: null, txid: 'xact', position: 'seq', payload: 'body' }),
    ).toMatchObject({ headers: null, createdAt: null, txid: 'xact', position: 'seq', payload: 'body' });
  });

  it('takes a key set to undefined as the default', () => {
    expect(resolvePollColumns({ createdAt: undefined, headers: undefined })).toEqual(DEFAULT_POLL_COLUMNS);
  });

  it('refuses a poll column that is also an event column, or an empty name', () => {
    expect(() => resolvePollColumns({ position: 'id' })).toThrow(ConfigError);
    expect(() => resolvePollColumns({ position: 'id' })).toThrow(
      /^columns\.position: column "id" is already used for id/,
    );
    expect(() => resolvePollColumns({ publishedAt: 'txid' })).toThrow(/already used for txid/);
    expect(() => resolvePollColumns({ txid: '' })).toThrow(/^columns\.txid: expected a column name, got ""/);
    expect(() => resolvePollColumns({ aggregateId: 'type' })).toThrow(/^columns\.type: /);
  });
});
