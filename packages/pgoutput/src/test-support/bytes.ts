// Builds protocol messages byte by byte, field by field as the documentation lists them:
// https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
import type { TupleValue } from '../messages.js';
import { UNCHANGED_TOAST } from '../messages.js';

const encoder = new TextEncoder();

/** Big-endian writer; each method is one protocol field type (Byte1, Int8, Int16, Int32, Int64, String…). */
export class Bytes {
  private readonly out: number[] = [];

  /** Byte1('x'): a one-character tag. */
  tag(char: string): this {
    this.out.push(char.charCodeAt(0));
    return this;
  }

  int8(value: number): this {
    this.out.push(value & 0xff);
    return this;
  }

  int16(value: number): this {
    this.out.push((value >>> 8) & 0xff, value & 0xff);
    return this;
  }

  int32(value: number): this {
    this.out.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
    return this;
  }

  int64(value: bigint): this {
    const unsigned = BigInt.asUintN(64, value);
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.out.push(Number((unsigned >> shift) & 0xffn));
    return this;
  }

  /** String: UTF-8 text and a NUL terminator. */
  cstring(text: string): this {
    this.out.push(...encoder.encode(text), 0);
    return this;
  }

  /** Byten: raw bytes. */
  raw(bytes: Uint8Array | readonly number[]): this {
    for (const b of bytes) this.out.push(b);
    return this;
  }

  /**
   * TupleData: Int16 column count, then per column 'n' (null), 'u' (unchanged TOAST), 't' + Int32 length +
   * UTF-8 text, or 'b' + Int32 length + bytes.
   */
  tuple(values: readonly TupleValue[]): this {
    this.int16(values.length);
    for (const value of values) {
      if (value === null) {
        this.tag('n');
      } else if (value === UNCHANGED_TOAST) {
        this.tag('u');
      } else if (typeof value === 'string') {
        const bytes = encoder.encode(value);
        this.tag('t').int32(bytes.length).raw(bytes);
      } else {
        this.tag('b').int32(value.length).raw(value);
      }
    }
    return this;
  }

  get length(): number {
    return this.out.length;
  }

  build(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

export function bytes(): Bytes {
  return new Bytes();
}

/** Deterministic PRNG (mulberry32) so that fuzz failures reproduce from the printed seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
