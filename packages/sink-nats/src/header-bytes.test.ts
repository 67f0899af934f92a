import { MsgHdrsImpl } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { headerBytes } from './header-bytes.js';

describe('headerBytes', () => {
  it('writes a header block: the lines, the one added, then the block with the closing blank line', () => {
    const block = Buffer.from('Nats-Expected-Stream: S\r\n\r\n');
    const bytes = headerBytes('NATS/1.0\r\nNats-Msg-Id: ü-1\r\n', 'Nats-Expected-Last-Msg-Id', 'ü-0', block);
    expect(bytes.toString()).toBe(
      'NATS/1.0\r\nNats-Msg-Id: ü-1\r\nNats-Expected-Last-Msg-Id: ü-0\r\nNats-Expected-Stream: S\r\n\r\n',
    );
    expect(MsgHdrsImpl.decode(bytes).get('Nats-Expected-Last-Msg-Id')).toBe('ü-0');
    // An outbox event's lines are all text: its block is only the closing blank line.
    const blank = Buffer.from('\r\n');
    expect(
      headerBytes('NATS/1.0\r\nNats-Msg-Id: o-1\r\n', 'Nats-Expected-Last-Sequence', '7', blank).toString(),
    ).toBe('NATS/1.0\r\nNats-Msg-Id: o-1\r\nNats-Expected-Last-Sequence: 7\r\n\r\n');
  });
});
