/**
 * Bytes that are not a well-formed pgoutput (or replication CopyData) message. Always permanent:
 * decoding the same bytes again fails the same way. Names the message type, the field and the byte
 * offset (from the start of the buffer passed to `decode`) so a capture can be inspected with a hex dump.
 */
export class PgOutputDecodeError extends Error {
  override name = 'PgOutputDecodeError';
  /** The message's tag name (`'insert'`), or for an unknown tag the byte as `'0x5a'`. */
  readonly messageType: string;
  /** The field being read, as the protocol documentation names it. */
  readonly field: string;
  /** Byte offset of that field in the buffer given to the decoder. */
  readonly offset: number;

  constructor(
    problem: string,
    where: { messageType: string; field: string; offset: number },
    options: { cause?: unknown } = {},
  ) {
    super(`${where.messageType} message, field ${where.field} at byte ${where.offset}: ${problem}`, options);
    this.messageType = where.messageType;
    this.field = where.field;
    this.offset = where.offset;
  }
}

/** The message ends before a field (or the bytes a length field announces) is complete. */
export class TruncatedMessageError extends PgOutputDecodeError {
  override name = 'TruncatedMessageError';
  /** Bytes the field needs from `offset`. */
  readonly needed: number;
  /** Bytes left in the message from `offset`. */
  readonly available: number;

  constructor(
    where: { messageType: string; field: string; offset: number },
    needed: number,
    available: number,
  ) {
    super(
      `message truncated: needs ${needed} byte(s), ${available} left; the CopyData frame was cut or the stream is out of sync`,
      where,
    );
    this.needed = needed;
    this.available = available;
  }
}

/** The first byte is not a message tag this decoder knows (for the configured protocol version). */
export class UnknownMessageTypeError extends PgOutputDecodeError {
  override name = 'UnknownMessageTypeError';
  /** The tag byte, or -1 for an empty message. */
  readonly tagByte: number;

  constructor(where: { messageType: string; field: string; offset: number }, tagByte: number, hint: string) {
    super(hint, where);
    this.tagByte = tagByte;
  }
}

/** A field holds a value the protocol does not allow (unknown tuple kind, negative length, trailing bytes…). */
export class InvalidFieldError extends PgOutputDecodeError {
  override name = 'InvalidFieldError';
}

/** Text that is not an LSN of the form `XXXXXXXX/XXXXXXXX`, or a bigint outside 0 … 2^64-1. */
export class InvalidLsnError extends Error {
  override name = 'InvalidLsnError';
  readonly input: unknown;

  constructor(input: unknown, options: { cause?: unknown } = {}) {
    const shown = typeof input === 'bigint' ? `${input}n` : (JSON.stringify(input) ?? String(input));
    super(
      `invalid LSN ${shown}: expected two hexadecimal numbers of 1-8 digits separated by '/' (e.g. '0/16B3748'), or a bigint in 0 … 2^64-1`,
      options,
    );
    this.input = input;
  }
}
