import { PassThrough, Writable } from 'node:stream';
import { type ChangeEvent, type OutboxEvent, PermanentError, rawJson } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { formatLine } from './line.js';
import { createStdoutSink } from './sink.js';

const source = {
  lsn: '0/16B3748',
  commitLsn: '0/16B3800',
  xid: 742,
  commitTime: '2026-11-21T10:00:00.000Z',
  seq: 1,
  snapshot: null,
};

const change: ChangeEvent = {
  kind: 'change',
  id: '0/16B3800-1',
  op: 'insert',
  schema: 'public',
  table: 'orders',
  key: { id: '42' },
  before: null,
  after: { id: '42', total: '10.50' },
  unchanged: [],
  source,
};

function outbox(payload: string): OutboxEvent {
  return {
    kind: 'outbox',
    id: 'e-1',
    aggregateType: 'order',
    aggregateId: 'order-42',
    type: 'OrderPaid',
    payload,
    headers: { traceparent: 't' },
    source,
  };
}

describe('formatLine', () => {
  it('prints a row change as its envelope with id and kind in front', () => {
    expect(JSON.parse(formatLine(change))).toEqual({
      id: '0/16B3800-1',
      kind: 'change',
      op: 'insert',
      schema: 'public',
      table: 'orders',
      key: { id: '42' },
      before: null,
      after: { id: '42', total: '10.50' },
      unchanged: [],
      source,
    });
    expect(formatLine(change).startsWith('{"id":"0/16B3800-1","kind":"change","op":"insert",')).toBe(true);
  });

  it('prints json column values verbatim, big numbers intact, on one line even when the json text has line breaks', () => {
    const doc = '{\r\n  "n": 12345678901234567890,\n  "s": "a\\nb"\n}';
    const line = formatLine({ ...change, after: { id: '42', doc: rawJson(doc) } });
    expect(line).not.toMatch(/[\r\n]/);
    expect(line).toContain('"doc":{  "n": 12345678901234567890,  "s": "a\\nb"}');
    expect(JSON.parse(line).after.doc.s).toBe('a\nb');
  });

  it('prints an outbox event with its payload embedded as JSON, on one line, big numbers intact', () => {
    const line = formatLine(outbox('{\n  "amount": 12345678901234567890,\r\n  "note": "a\\nb"\n}'));
    expect(line).not.toMatch(/[\r\n]/);
    expect(line.endsWith('"payload":{  "amount": 12345678901234567890,  "note": "a\\nb"}}')).toBe(true);
    expect(JSON.parse(line)).toEqual({
      id: 'e-1',
      kind: 'outbox',
      aggregateType: 'order',
      aggregateId: 'order-42',
      type: 'OrderPaid',
      headers: { traceparent: 't' },
      source,
      payload: { amount: expect.any(Number), note: 'a\nb' },
    });
  });

  it('rejects an outbox payload that is not JSON as a PermanentError', () => {
    expect(() => formatLine(outbox('{"a":'))).toThrow(PermanentError);
    expect(() => formatLine(outbox('{"a":'))).toThrow(
      /outbox event e-1 \(order\/OrderPaid\) has a payload that is not JSON/,
    );
  });
});

describe('createStdoutSink', () => {
  it('hands each event to write as one NDJSON line, in publish order', async () => {
    const lines: string[] = [];
    const sink = createStdoutSink({ write: (line) => void lines.push(line) });
    await sink.start();

    await Promise.all([sink.publish(change), sink.publish(outbox('{"a":1}'))]);

    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.endsWith('}\n') && l.indexOf('\n') === l.length - 1)).toBe(true);
    expect(lines.map((l) => JSON.parse(l).kind)).toEqual(['change', 'outbox']);
    expect(sink.status()).toEqual({ ready: true });
  });

  it('resolves a publish only when an async write does', async () => {
    let release!: () => void;
    const sink = createStdoutSink({ write: () => new Promise<void>((r) => (release = r)) });
    let resolved = false;
    const publish = sink.publish(change).then(() => {
      resolved = true;
    });
    await Promise.resolve();
    expect(resolved).toBe(false);
    release();
    await publish;
    expect(resolved).toBe(true);
  });

  it("waits for 'drain' when the stream's buffer is full, and resolves once the reader catches up", async () => {
    const out = new PassThrough({ highWaterMark: 64 });
    const sink = createStdoutSink({ stream: out });
    await sink.start();

    let resolved = false;
    const publish = sink.publish(change).then(() => {
      resolved = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(out.writableNeedDrain).toBe(true);
    expect(resolved).toBe(false);

    const read = out.read() as Buffer;
    await publish;
    expect(resolved).toBe(true);
    expect(JSON.parse(read.toString()).id).toBe('0/16B3800-1');
  });

  it('turns a broken stdout (EPIPE) into a PermanentError and not-ready status', async () => {
    const out = new Writable({
      highWaterMark: 16,
      write(_chunk, _enc, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const sink = createStdoutSink({ stream: out });
    await sink.start();

    const first = sink.publish(change);
    await expect(first).rejects.toBeInstanceOf(PermanentError);
    await expect(sink.publish(change)).rejects.toThrow(/cannot write events to stdout: write EPIPE/);
    expect(sink.status()).toMatchObject({ ready: false });
  });
});
