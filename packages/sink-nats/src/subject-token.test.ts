import { describe, expect, it } from 'vitest';
import { decodeSubjectToken, MAX_TOKEN_BYTES, SHORTENED_MARK, subjectToken } from './subject-token.js';

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');

/** What nats-server accepts as one literal token of a published subject. */
function isOneToken(token: string): boolean {
  return (
    token.length > 0 &&
    !token.includes('.') &&
    token !== '*' &&
    token !== '>' &&
    // nats-server refuses whitespace; control characters and non-UTF-8 are refused here too.
    !/[\s\p{Cc}\p{Cs}]/u.test(token) &&
    !token.includes('*') &&
    !token.includes('>')
  );
}

describe('subjectToken', () => {
  it('keeps plain names as they are, so existing subjects stay', () => {
    for (const name of ['orders', 'Order_items-2', 'public', 'A', '0']) expect(subjectToken(name)).toBe(name);
  });

  it('escapes the escape character, dots, wildcards, whitespace and control characters as %XX', () => {
    expect(subjectToken('my.schema')).toBe('my%2Eschema');
    expect(subjectToken('Order Items')).toBe('Order%20Items');
    expect(subjectToken('a*b')).toBe('a%2Ab');
    expect(subjectToken('>')).toBe('%3E');
    expect(subjectToken('100%')).toBe('100%25');
    expect(subjectToken('a\tb\r\n')).toBe('a%09b%0D%0A');
    expect(subjectToken('a\u0000\u007f\u0085')).toBe('a%00%7F%C2%85');
    expect(subjectToken('no\u00a0break')).toBe('no%C2%A0break');
    expect(subjectToken('ideographic\u3000space')).toBe('ideographic%E3%80%80space');
  });

  it('keeps other characters NATS allows: punctuation, quotes and Unicode', () => {
    expect(subjectToken('a,b')).toBe('a,b');
    expect(subjectToken('we"ird')).toBe('we"ird');
    expect(subjectToken('Ünïcode')).toBe('Ünïcode');
    expect(subjectToken('表😀')).toBe('表😀');
    expect(subjectToken('$x~y')).toBe('$x~y');
  });

  it('gives the empty name the token "%", which no other name gets', () => {
    expect(subjectToken('')).toBe('%');
    expect(subjectToken('%')).toBe('%25');
  });

  it('no longer merges names the old "_" replacement merged', () => {
    expect(subjectToken('a.b')).not.toBe(subjectToken('a_b'));
    expect(subjectToken('a b')).not.toBe(subjectToken('a_b'));
    expect(subjectToken('')).not.toBe(subjectToken('_'));
  });

  it('never shortens an escaped Postgres identifier (63 bytes, every byte escaped)', () => {
    const worst = '.'.repeat(63);
    expect(subjectToken(worst)).toBe('%2E'.repeat(63));
    expect(utf8(subjectToken(worst))).toBe(189);
    const wide = '\u00a0'.repeat(31); // 62 bytes, 6 escaped bytes per character
    expect(decodeSubjectToken(subjectToken(wide))).toBe(wide);
  });

  it('shortens a long value to 192 bytes: its first bytes, %~ and a hash of all of it', () => {
    const long = `order.${'x'.repeat(500)}`;
    const token = subjectToken(long);
    expect(utf8(token)).toBeLessThanOrEqual(MAX_TOKEN_BYTES);
    expect(token).toMatch(/^order%2Ex+%~[0-9a-f]{32}$/);
    expect(subjectToken(`order.${'x'.repeat(499)}y`)).not.toBe(token);
    expect(decodeSubjectToken(token)).toBeUndefined();
    // Never cut inside an escape or a character.
    const escapes = subjectToken('.'.repeat(300));
    expect(escapes).toMatch(/^(%2E)+%~[0-9a-f]{32}$/);
    const wide = subjectToken('表'.repeat(100));
    expect(wide).toMatch(/^表+%~[0-9a-f]{32}$/);
    expect(utf8(wide)).toBeLessThanOrEqual(MAX_TOKEN_BYTES);
  });
});

describe('decodeSubjectToken', () => {
  it('gives back the name', () => {
    for (const name of ['orders', 'my.schema', 'Order Items', '', '%', 'we"ird', 'a\u0000b', '\ud800x']) {
      expect(decodeSubjectToken(subjectToken(name))).toBe(name);
    }
  });

  it('refuses text subjectToken never writes', () => {
    for (const token of ['', 'a.b', 'a b', '%2e', '%2', '%G0', '%41', '%C0%AE', '%ED', '%F8%80%80%80']) {
      expect(decodeSubjectToken(token), token).toBeUndefined();
    }
  });
});

/** Seeded, so a failure names a reproducible case. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

// Characters where collisions would hide: the escape, its hex digits, separators, wildcards,
// whitespace of every kind, controls, surrogate halves, multi-byte characters, the old "_".
const ALPHABET = [
  'a',
  'A',
  'f',
  'F',
  '0',
  '2',
  'E',
  'e',
  '_',
  '-',
  '%',
  '~',
  '.',
  '*',
  '>',
  ' ',
  '\t',
  '\n',
  '\r',
  '\u0000',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\u2028',
  '\u3000',
  '\ufeff',
  'é',
  'Ü',
  '表',
  '😀',
  '\ud800',
  '\udc00',
  '"',
  ',',
  '$',
];

describe('subjectToken as a property', () => {
  it('is one valid token, reversible and injective over random names, short and long', () => {
    const random = seeded(20261121);
    const seen = new Map<string, string>();
    for (let n = 0; n < 10_000; n++) {
      const length = random() < 0.05 ? 60 + Math.floor(random() * 200) : Math.floor(random() * 12);
      let name = '';
      for (let i = 0; i < length; i++) name += ALPHABET[Math.floor(random() * ALPHABET.length)];
      const token = subjectToken(name);
      expect(isOneToken(token), JSON.stringify(name)).toBe(true);
      expect(utf8(token)).toBeLessThanOrEqual(MAX_TOKEN_BYTES);
      if (!token.includes(SHORTENED_MARK)) expect(decodeSubjectToken(token)).toBe(name);
      const before = seen.get(token);
      if (before !== undefined && before !== name) {
        throw new Error(`${JSON.stringify(before)} and ${JSON.stringify(name)} share the token ${token}`);
      }
      seen.set(token, name);
    }
    expect(seen.size).toBeGreaterThan(7_000);
  });

  it('never shortens a name of at most 63 UTF-8 bytes (any Postgres identifier)', () => {
    const random = seeded(7);
    for (let n = 0; n < 5_000; n++) {
      let name = '';
      for (;;) {
        const ch = ALPHABET[Math.floor(random() * ALPHABET.length)] as string;
        if (utf8(name + ch) > 63) break;
        name += ch;
      }
      expect(subjectToken(name)).not.toContain(SHORTENED_MARK);
    }
  });
});
