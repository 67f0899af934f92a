/** Resume tokens for unit tests. */

// The insert event's token from the MongoDB manual ("Change Events" → insert, MongoDB 6.0+: a v2
// token). Decoded by hand: 82 = Timestamp (635019A0, 1), 2B 04 = version 2, 2C 0100 = tokenType 128,
// 29 = txnOpIndex 0, 6E = fromInvalidate false, then the collection UUID and the event identifier.
export const MANUAL_INSERT_TOKEN =
  '82635019A0000000012B042C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F463C6F7065726174696F6E54797065003C696E736572740046646F63756D656E744B65790046645F69640064635019A078BE67426D7CF4D2000004';

/** A v1 token (MongoDB 4.2–5.x) of the 4th operation of a transaction: txnOpIndex 3. */
export const V1_TXN_TOKEN =
  '82635019A1000000022B022C0100' +
  '2B06' +
  '6E5A1004AB1154ACACD849A48C61756D70D3B21F46645F69640064635019A078BE67426D7CF4D2000004';

/** A v2 high-water mark (postBatchResumeToken of an idle stream): tokenType 0, UUID null (14), no event. */
export const HIGH_WATER_MARK = '82635019A2000000012B0429296E1404';
