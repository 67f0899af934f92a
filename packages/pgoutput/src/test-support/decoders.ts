import { PgOutputDecoder, type ProtocolVersion } from '../decoder.js';
import { bytes } from './bytes.js';
import { type Fixture, XID } from './fixtures.js';

export const STREAM_START = bytes().tag('S').int32(XID).int8(1).build();

/** A decoder in the state the fixture needs (inside a streamed transaction, or not). */
export function decoderFor(fixture: Fixture, protocolVersion: ProtocolVersion = 4): PgOutputDecoder {
  const decoder = new PgOutputDecoder({ protocolVersion });
  if (fixture.inStream) decoder.decode(STREAM_START);
  return decoder;
}
