import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StandbyStatus } from './standby-status.js';

/** Standby status update: Byte1('r'), Int64 written, Int64 flushed, Int64 applied, Int64 time, Byte1 reply. */
function fields(payload: Uint8Array) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    tag: String.fromCharCode(payload[0]!),
    written: view.getBigUint64(1),
    flushed: view.getBigUint64(9),
    applied: view.getBigUint64(17),
    reply: payload[33],
  };
}

describe('StandbyStatus', () => {
  let sent: ReturnType<typeof fields>[];
  let acknowledged: bigint;
  let received: bigint;
  let status: StandbyStatus;

  beforeEach(() => {
    vi.useFakeTimers();
    sent = [];
    acknowledged = 0x100n;
    received = 0x500n;
    status = new StandbyStatus({
      send: (p) => sent.push(fields(p)),
      written: () => received,
      flushed: () => acknowledged,
      onConfirmed: () => {},
      intervalMs: 10_000,
    });
  });
  afterEach(() => {
    status.stop();
    vi.useRealTimers();
  });

  it('reports written = received and flushed = applied = acknowledged, nothing else', () => {
    status.sendNow();
    expect(sent).toEqual([{ tag: 'r', written: 0x500n, flushed: 0x100n, applied: 0x100n, reply: 0 }]);
  });

  it('sends at least every interval', () => {
    vi.advanceTimersByTime(30_000);
    expect(sent).toHaveLength(3);
  });

  it('reports acknowledgements within 500 ms, coalescing a burst into one update', () => {
    status.sendNow();
    for (let i = 1; i <= 100; i++) {
      acknowledged = 0x100n + BigInt(i);
      status.acknowledged();
    }
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(500);
    expect(sent).toHaveLength(2);
    expect(sent[1]?.flushed).toBe(0x164n);
    vi.advanceTimersByTime(1_000);
    expect(sent).toHaveLength(2);
  });
});
