import { copySource, encodeEnvelope, PermanentError, type RelayEvent } from '@sluice/core';

const CRLF = /[\r\n]/g;
const HAS_CRLF = /[\r\n]/;

/**
 * One NDJSON line (without the trailing newline) per event:
 *
 * - row change: `{"id","kind":"change","op","schema","table","key","before","after","changed"?,"unchanged","source"}`,
 *   i.e. the message body the NATS sink publishes, with the id and kind in front (raw line breaks
 *   between the tokens of a json column's text removed);
 * - outbox: `{"id","kind":"outbox","aggregateType","aggregateId","type","headers","source","payload"}`,
 *   where `payload` is the event's JSON embedded as-is (not re-serialised, so big numbers and
 *   key order survive), only with raw line breaks between tokens removed to keep it one line.
 */
export function formatLine(event: RelayEvent): string {
  const head = `{"id":${JSON.stringify(event.id)},"kind":"${event.kind}",`;
  if (event.kind === 'change') {
    const body = encodeEnvelope(event);
    // Only a json column's verbatim text can hold a raw line break, and only between tokens.
    return head + (HAS_CRLF.test(body) ? body.replace(CRLF, '') : body).slice(1);
  }
  try {
    JSON.parse(event.payload);
  } catch (err) {
    throw new PermanentError(
      `outbox event ${event.id} (${event.aggregateType}/${event.type}) has a payload that is not JSON`,
      { cause: err, hint: 'write valid JSON text to the outbox payload column' },
    );
  }
  // In valid JSON a raw CR or LF can only be whitespace between tokens: dropping it is lossless.
  const payload = event.payload.replace(CRLF, '');
  const s = event.source;
  return (
    head +
    `"aggregateType":${JSON.stringify(event.aggregateType)},` +
    `"aggregateId":${JSON.stringify(event.aggregateId)},` +
    `"type":${JSON.stringify(event.type)},` +
    `"headers":${JSON.stringify(event.headers)},` +
    `"source":${JSON.stringify(copySource(s))},` +
    `"payload":${payload}}`
  );
}
