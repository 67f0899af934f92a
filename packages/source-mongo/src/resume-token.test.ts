import { describe, expect, it } from 'vitest';
import {
  changeEventId,
  compareResumeTokens,
  decodeResumeToken,
  EVENT_TOKEN,
  HIGH_WATER_MARK_TOKEN,
  InvalidResumeTokenError,
} from './resume-token.js';
import { HIGH_WATER_MARK, MANUAL_INSERT_TOKEN, V1_TXN_TOKEN } from './tokens.test-support.js';

describe('decodeResumeToken', () => {
  it('reads the cluster time, version, token type and txnOpIndex of the manual example', () => {
    expect(decodeResumeToken(MANUAL_INSERT_TOKEN)).toEqual({
      clusterTime: { t: 0x635019a0, i: 1 },
      version: 2,
      tokenType: EVENT_TOKEN,
      txnOpIndex: 0,
      fromInvalidate: false,
    });
  });

  it('reads the index of an event in its transaction from a v1 token', () => {
    const data = decodeResumeToken(V1_TXN_TOKEN);
    expect(data).toMatchObject({ version: 1, tokenType: EVENT_TOKEN, txnOpIndex: 3 });
    expect(data.clusterTime).toEqual({ t: 0x635019a1, i: 2 });
  });

  it('reads a high-water mark', () => {
    expect(decodeResumeToken(HIGH_WATER_MARK)).toMatchObject({
      tokenType: HIGH_WATER_MARK_TOKEN,
      txnOpIndex: 0,
      fromInvalidate: false,
    });
  });

  it('accepts lower-case hex', () => {
    expect(decodeResumeToken(MANUAL_INSERT_TOKEN.toLowerCase()).clusterTime.t).toBe(0x635019a0);
  });

  it.each([
    ['', '_data is not a hex string'],
    ['82ZZ', '_data is not a hex string'],
    ['8263', 'ends inside clusterTime'],
    ['2B040000000000000000', 'expected a timestamp at byte 0'],
    ['82635019A0000000012B08', 'unknown token version 4'],
    ['82635019A0000000012B042C01', 'ends inside tokenType'],
    ['82635019A0000000012B042C0100292B', 'fromInvalidate at byte 15 is not a boolean'],
  ])('rejects %j as an invalid token with the recovery', (data, message) => {
    let err: unknown;
    try {
      decodeResumeToken(data);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidResumeTokenError);
    expect((err as Error).message).toContain(message);
    expect((err as Error).message).toContain('take a new snapshot');
  });
});

it('reads the fromInvalidate flag of the token after an invalidate', () => {
  expect(decodeResumeToken('82635019A0000000012B042C0100296F').fromInvalidate).toBe(true);
});

describe('compareResumeTokens', () => {
  it('orders tokens as the server does: by cluster time first, then the rest of the key', () => {
    const tokens = [V1_TXN_TOKEN, HIGH_WATER_MARK, MANUAL_INSERT_TOKEN];
    expect([...tokens].sort(compareResumeTokens)).toEqual([
      MANUAL_INSERT_TOKEN,
      V1_TXN_TOKEN,
      HIGH_WATER_MARK,
    ]);
    expect(compareResumeTokens(MANUAL_INSERT_TOKEN.toLowerCase(), MANUAL_INSERT_TOKEN)).toBe(0);
  });
});

describe('changeEventId', () => {
  it('is deterministic, case-insensitive and distinct per token', () => {
    const id = changeEventId(MANUAL_INSERT_TOKEN);
    expect(id).toMatch(/^mongo:[0-9a-f]{40}$/);
    expect(changeEventId(MANUAL_INSERT_TOKEN.toLowerCase())).toBe(id);
    expect(changeEventId(V1_TXN_TOKEN)).not.toBe(id);
  });
});
