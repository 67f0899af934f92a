import { describe, expect, it } from 'vitest';
import { TruncatedMessageError } from './errors.js';
import { decoderFor } from './test-support/decoders.js';
import { fixtures } from './test-support/fixtures.js';

describe('a message cut at any length', () => {
  for (const fixture of fixtures) {
    it(`${fixture.name}: every cut fails with TruncatedMessageError naming the type and offset`, () => {
      let failures = 0;
      for (let cut = 0; cut < fixture.bytes.length; cut++) {
        const prefix = fixture.bytes.subarray(0, cut);
        // The parallel Stream Abort fields are optional, so its first 9 bytes are a whole message.
        if (fixture.expected.tag === 'stream_abort' && cut === 9) {
          expect(decoderFor(fixture).decode(prefix)).toMatchObject({ tag: 'stream_abort', abortLsn: null });
          continue;
        }
        let caught: unknown;
        try {
          decoderFor(fixture).decode(prefix);
        } catch (err) {
          caught = err;
        }
        expect(caught, `cut at ${cut}`).toBeInstanceOf(TruncatedMessageError);
        const err = caught as TruncatedMessageError;
        expect(err.messageType, `cut at ${cut}`).toBe(cut === 0 ? 'unknown' : fixture.expected.tag);
        expect(err.offset, `cut at ${cut}`).toBeLessThanOrEqual(cut);
        expect(err.message, `cut at ${cut}`).toContain(
          `${err.messageType} message, field ${err.field} at byte ${err.offset}:`,
        );
        failures++;
      }
      expect(failures).toBeGreaterThanOrEqual(fixture.bytes.length - 1);
    });
  }
});
