import { describe, expect, it } from 'vitest';
import { decodeReplicationMessage } from './copy-data.js';
import { PgOutputDecoder } from './decoder.js';
import { PgOutputDecodeError } from './errors.js';
import { seededRandom } from './test-support/bytes.js';
import { fixtures } from './test-support/fixtures.js';
import { PgValueParseError } from './values/errors.js';
import { ARRAY_ELEMENT_OIDS, TypeOid } from './values/oids.js';
import { parseValue } from './values/parse.js';

// Change the seed to explore; a failure message prints the seed and iteration so it reproduces.
const SEED = 0x5eed_2026;
const TAGS = [...'BCORYIUDTMSEcAbPKrp'].map((c) => c.charCodeAt(0));

function outcome(fn: () => unknown, allowed: new (...args: never[]) => Error): 'ok' | 'error' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof allowed) return 'error';
    throw err;
  }
}

function mutate(random: () => number, input: Uint8Array): Uint8Array {
  const out = Uint8Array.from(input);
  const at = (n: number) => Math.floor(random() * n);
  switch (at(6)) {
    case 0: // bit flips
      for (let i = 1 + at(3); i > 0 && out.length > 0; i--) {
        const p = at(out.length);
        out[p] = out[p]! ^ (1 << at(8));
      }
      return out;
    case 1: // a random byte
      if (out.length > 0) out[at(out.length)] = at(256);
      return out;
    case 2: {
      // a corrupted Int32 (lengths and counts), including huge and negative values
      if (out.length < 4) return out;
      const p = at(out.length - 3);
      const values = [0x7fff_ffff, 0xffff_ffff, 0x8000_0000, 0x0001_0000, at(0x1_0000_0000)];
      new DataView(out.buffer).setUint32(p, values[at(values.length)]!);
      return out;
    }
    case 3: // truncation
      return out.subarray(0, at(out.length + 1));
    case 4: {
      // extra bytes
      const longer = new Uint8Array(out.length + 1 + at(16));
      longer.set(out);
      for (let i = out.length; i < longer.length; i++) longer[i] = at(256);
      return longer;
    }
    default: {
      // a chunk duplicated or removed
      const start = at(out.length + 1);
      const end = start + at(out.length - start + 1);
      return random() < 0.5
        ? Uint8Array.from([...out.subarray(0, end), ...out.subarray(start)])
        : Uint8Array.from([...out.subarray(0, start), ...out.subarray(end)]);
    }
  }
}

describe('fuzzing (deterministic seed)', () => {
  it('random bytes either decode or throw a PgOutputDecodeError, never anything else', () => {
    const random = seededRandom(SEED);
    const decoders = [1, 2, 3, 4].map((v) => new PgOutputDecoder({ protocolVersion: v as 1 | 2 | 3 | 4 }));
    const counts = { ok: 0, error: 0 };
    for (let i = 0; i < 20_000; i++) {
      const input = new Uint8Array(Math.floor(random() * 80));
      for (let j = 0; j < input.length; j++) input[j] = Math.floor(random() * 256);
      if (input.length > 0 && random() < 0.8) input[0] = TAGS[Math.floor(random() * TAGS.length)]!;
      const decoder = decoders[i % 4]!;
      try {
        counts[outcome(() => decoder.decode(input), PgOutputDecodeError)]++;
      } catch (err) {
        throw new Error(`seed ${SEED}, iteration ${i}: ${String(err)}`, { cause: err });
      }
    }
    expect(counts.ok + counts.error).toBe(20_000);
    expect(counts.error).toBeGreaterThan(0);
  });

  it('mutated valid messages (bit flips, corrupted lengths, cuts, extra bytes) decode or throw a PgOutputDecodeError', () => {
    const random = seededRandom(SEED + 1);
    const decoders = [1, 2, 3, 4].map((v) => new PgOutputDecoder({ protocolVersion: v as 1 | 2 | 3 | 4 }));
    const counts = { ok: 0, error: 0 };
    for (let i = 0; i < 20_000; i++) {
      const fixture = fixtures[Math.floor(random() * fixtures.length)]!;
      let input = mutate(random, fixture.bytes);
      if (random() < 0.3) input = mutate(random, input);
      const decoder = decoders[i % 4]!;
      try {
        counts[outcome(() => decoder.decode(input), PgOutputDecodeError)]++;
      } catch (err) {
        throw new Error(`seed ${SEED + 1}, iteration ${i}, fixture ${fixture.name}: ${String(err)}`, {
          cause: err,
        });
      }
    }
    // Some mutations keep a message valid, most do not: both paths were exercised.
    expect(counts.ok).toBeGreaterThan(0);
    expect(counts.error).toBeGreaterThan(0);
  });

  it('random CopyData payloads either decode or throw a PgOutputDecodeError', () => {
    const random = seededRandom(SEED + 2);
    for (let i = 0; i < 5_000; i++) {
      const input = new Uint8Array(Math.floor(random() * 40));
      for (let j = 0; j < input.length; j++) input[j] = Math.floor(random() * 256);
      if (input.length > 0 && random() < 0.8) input[0] = random() < 0.5 ? 0x77 : 0x6b;
      expect(['ok', 'error']).toContain(outcome(() => decodeReplicationMessage(input), PgOutputDecodeError));
    }
  });

  it('random and mutated column texts either parse or throw a PgValueParseError, for every typed OID', () => {
    const random = seededRandom(SEED + 3);
    const alphabet = '0123456789-+:. TtFfPYMDHS{}[]=",\\NULLnulxaé\u0000';
    const samples = [
      '2024-01-02 03:04:05.123456+05:30',
      '2024-01-02 03:04:05',
      '1 year 2 mons 3 days 04:05:06.5',
      '{1,NULL,"a \\"b\\"",{2,3}}',
      '[1:2]={"x","y"}',
      '\\x0a1b',
      '{"a":[1,2]}',
      '-1.5e10',
    ];
    const oids = [...Object.values(TypeOid), ...ARRAY_ELEMENT_OIDS.keys()];
    for (let i = 0; i < 20_000; i++) {
      let text: string;
      if (random() < 0.5) {
        text = '';
        for (let n = Math.floor(random() * 30); n > 0; n--)
          text += alphabet[Math.floor(random() * alphabet.length)];
      } else {
        const chars = [...samples[Math.floor(random() * samples.length)]!];
        for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
          chars[Math.floor(random() * chars.length)] = alphabet[Math.floor(random() * alphabet.length)]!;
        }
        text = chars.join('');
      }
      const oid = oids[i % oids.length]!;
      try {
        outcome(() => parseValue(text, oid), PgValueParseError);
      } catch (err) {
        throw new Error(
          `seed ${SEED + 3}, iteration ${i}, OID ${oid}, text ${JSON.stringify(text)}: ${String(err)}`,
          {
            cause: err,
          },
        );
      }
    }
  });
});
