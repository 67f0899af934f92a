import { orderingKey } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { pipelineKey, storedKey } from './dead-letters.js';

describe('ordering keys in sluice.dead_letters', () => {
  it('are stored as a readable JSON array without NUL (which a text column refuses) and read back exactly', () => {
    const key = orderingKey({
      kind: 'outbox',
      id: 'e',
      aggregateType: 'order',
      aggregateId: '42',
      type: 'Placed',
      payload: '{}',
      headers: {},
      source: { lsn: '0/1', commitLsn: '0/1', xid: 1, commitTime: '', seq: 0, snapshot: null },
    });
    const stored = storedKey(key);
    expect(stored).not.toContain('\u0000');
    expect(JSON.parse(stored)).toEqual(['o', 'order', '42']);
    expect(storedKey('r\u0000public\u0000docs\u0000{"id":1}')).toBe('["r","public","docs","{\\"id\\":1}"]');
    expect(pipelineKey(storedKey('r\u0000public\u0000docs\u0000{"id":1}'))).toBe(
      'r\u0000public\u0000docs\u0000{"id":1}',
    );
  });
});
