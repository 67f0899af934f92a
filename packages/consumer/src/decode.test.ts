import { describe, expect, it } from 'vitest';
import { decodeMessage, type RawMessage } from './decode.js';
import { EventDecodeError } from './errors.js';
import { ExactNumber } from './json.js';

const enc = new TextEncoder();
const headers = {
  'Nats-Msg-Id': 'slot:0/16B37A0:0',
  'ce-specversion': '1.0',
  'ce-id': 'slot:0/16B37A0:0',
  'ce-source': 'sluice/SLUICE',
  'ce-type': 'io.sluice.cdc.update',
  'ce-subject': 'public.orders',
  'ce-time': '2026-11-21T06:34:13.123456Z',
  'content-type': 'application/json',
  'sluice-commit-lsn': '0/16B37A0',
  'sluice-seq': '0',
};
const body =
  '{"op":"update","schema":"public","table":"orders","key":{"id":"42"},' +
  '"before":{"id":"42","meta":{"n": 12345678901234567890}},"after":{"id":"42","meta":{"n": 1e-400}},' +
  '"changed":["meta"],"unchanged":[],"source":{"lsn":"0/16B3748","commitLsn":"0/16B37A0","xid":743,' +
  '"commitTime":"2026-11-21T06:34:13.123456Z","seq":0,"snapshot":null}}';

function msg(over: Partial<RawMessage> = {}, h: Record<string, string> = headers): RawMessage {
  return {
    subject: 'sluice.cdc.public.orders.update',
    headers: h,
    data: enc.encode(body),
    streamSequence: 7,
    deliveryCount: 1,
    ...over,
  };
}

describe('decodeMessage', () => {
  it('decodes the documented update envelope, keeping numbers a double would round', () => {
    const e = decodeMessage(msg());
    expect(e).toMatchObject({
      kind: 'change',
      id: 'slot:0/16B37A0:0',
      op: 'update',
      key: { id: '42' },
      before: { id: '42', meta: { n: new ExactNumber('12345678901234567890') } },
      after: { id: '42', meta: { n: new ExactNumber('1e-400') } },
      changed: ['meta'],
      commitLsn: '0/16B37A0',
      seq: 0,
      streamSequence: 7,
    });
    expect(e.body).toBe(body);
  });

  it('reads header names in any case (outbox events may set their own spelling)', () => {
    const h = { ...headers, 'ce-type': 'OrderPlaced', 'Content-Type': 'application/vnd.x+json' };
    delete (h as Record<string, string>)['content-type'];
    const e = decodeMessage(msg({ data: enc.encode('{"a":1}') }, h));
    expect(e).toMatchObject({
      kind: 'outbox',
      type: 'OrderPlaced',
      aggregateId: 'public.orders',
      payload: { a: 1 },
    });
    expect(e.cloudEvent.datacontenttype).toBe('application/vnd.x+json');
  });

  it('names the message and the field it cannot decode', () => {
    expect(() => decodeMessage(msg({ data: enc.encode('{"op":"insert"}') }))).toThrow(
      /message 7 on sluice\.cdc\.public\.orders\.update: envelope field op is not the op of ce-type \(update\)/,
    );
    expect(() => decodeMessage(msg({ data: new Uint8Array([0xff]) }))).toThrow(/not UTF-8/);
    expect(() => decodeMessage(msg({ data: enc.encode('{') }))).toThrow(EventDecodeError);
    const { 'sluice-seq': _, ...noSeq } = headers;
    expect(() => decodeMessage(msg({}, noSeq))).toThrow(/has no sluice-seq header/);
  });
});
