// Every pgoutput message type and tuple kind, built byte by byte from the specification:
// https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
import type { PgOutputMessage } from '../messages.js';
import { UNCHANGED_TOAST } from '../messages.js';
import { bytes } from './bytes.js';

export interface Fixture {
  name: string;
  bytes: Uint8Array;
  expected: PgOutputMessage;
  /** Decode between Stream Start and Stream Stop (the message then carries a leading xid). */
  inStream: boolean;
  /** The lowest protocol version that produces this message. */
  protocolVersion: 1 | 2 | 3 | 4;
}

export const LSN = 0x0000_0001_6b37_4800n; // 1/6B374800
export const END_LSN = 0x0000_0001_6b37_4a10n;
/** 2024-01-02 03:04:05.123456 UTC in microseconds since 2000-01-01. */
export const TIME = 757_479_845_123_456n;
export const LATER = TIME + 2_000_000n;
export const XID = 0x0000_0304; // 772
/** Above 2^31: transaction ids and OIDs are unsigned. */
export const BIG_XID = 0xffff_fff0;
export const SUB_XID = 0x0000_0305;
export const REL = 16_384;
export const BIG_REL = 0x8000_0001;

const binary = new Uint8Array([0xde, 0xad, 0x00, 0xbe, 0xef]);

function fixture(
  name: string,
  built: Uint8Array,
  expected: PgOutputMessage,
  options: { inStream?: boolean; protocolVersion?: 1 | 2 | 3 | 4 } = {},
): Fixture {
  return {
    name,
    bytes: built,
    expected,
    inStream: options.inStream ?? false,
    protocolVersion: options.protocolVersion ?? 1,
  };
}

export const fixtures: readonly Fixture[] = [
  fixture('Begin', bytes().tag('B').int64(LSN).int64(TIME).int32(XID).build(), {
    tag: 'begin',
    finalLsn: LSN,
    commitTime: TIME,
    xid: XID,
  }),
  fixture('Begin with an xid above 2^31', bytes().tag('B').int64(LSN).int64(TIME).int32(BIG_XID).build(), {
    tag: 'begin',
    finalLsn: LSN,
    commitTime: TIME,
    xid: BIG_XID,
  }),
  fixture('Commit', bytes().tag('C').int8(0).int64(LSN).int64(END_LSN).int64(TIME).build(), {
    tag: 'commit',
    flags: 0,
    commitLsn: LSN,
    endLsn: END_LSN,
    commitTime: TIME,
  }),
  fixture('Origin', bytes().tag('O').int64(LSN).cstring('pg_16389').build(), {
    tag: 'origin',
    originLsn: LSN,
    originName: 'pg_16389',
  }),
  fixture(
    'Relation',
    bytes()
      .tag('R')
      .int32(REL)
      .cstring('public')
      .cstring('orders')
      .tag('d')
      .int16(3)
      .int8(1)
      .cstring('id')
      .int32(20)
      .int32(-1)
      .int8(0)
      .cstring('note')
      .int32(1043)
      .int32(68)
      .int8(0)
      .cstring('données')
      .int32(3802)
      .int32(-1)
      .build(),
    {
      tag: 'relation',
      xid: undefined,
      relationOid: REL,
      schema: 'public',
      name: 'orders',
      replicaIdentity: 'default',
      columns: [
        { isKey: true, name: 'id', typeOid: 20, typeModifier: -1 },
        { isKey: false, name: 'note', typeOid: 1043, typeModifier: 68 },
        { isKey: false, name: 'données', typeOid: 3802, typeModifier: -1 },
      ],
    },
  ),
  ...(
    [
      ['n', 'nothing'],
      ['f', 'full'],
      ['i', 'index'],
    ] as const
  ).map(([byte, identity]) =>
    fixture(
      `Relation with replica identity ${identity}`,
      bytes().tag('R').int32(BIG_REL).cstring('').cstring('t').tag(byte).int16(0).build(),
      {
        tag: 'relation',
        xid: undefined,
        relationOid: BIG_REL,
        schema: '',
        name: 't',
        replicaIdentity: identity,
        columns: [],
      },
    ),
  ),
  fixture(
    'Relation in a streamed transaction',
    bytes()
      .tag('R')
      .int32(XID)
      .int32(REL)
      .cstring('public')
      .cstring('t')
      .tag('f')
      .int16(1)
      .int8(1)
      .cstring('id')
      .int32(23)
      .int32(-1)
      .build(),
    {
      tag: 'relation',
      xid: XID,
      relationOid: REL,
      schema: 'public',
      name: 't',
      replicaIdentity: 'full',
      columns: [{ isKey: true, name: 'id', typeOid: 23, typeModifier: -1 }],
    },
    { inStream: true, protocolVersion: 2 },
  ),
  fixture('Type', bytes().tag('Y').int32(16_500).cstring('public').cstring('mood').build(), {
    tag: 'type',
    xid: undefined,
    typeOid: 16_500,
    schema: 'public',
    name: 'mood',
  }),
  fixture(
    'Type in a streamed transaction',
    bytes().tag('Y').int32(BIG_XID).int32(16_500).cstring('public').cstring('mood').build(),
    { tag: 'type', xid: BIG_XID, typeOid: 16_500, schema: 'public', name: 'mood' },
    { inStream: true, protocolVersion: 2 },
  ),
  fixture(
    'Insert with every tuple kind (text, null, unchanged TOAST, binary)',
    bytes()
      .tag('I')
      .int32(REL)
      .tag('N')
      .tuple(['42', null, UNCHANGED_TOAST, binary, '', 'naïve ☃ 🎉'])
      .build(),
    {
      tag: 'insert',
      xid: undefined,
      relationOid: REL,
      new: ['42', null, UNCHANGED_TOAST, binary, '', 'naïve ☃ 🎉'],
    },
  ),
  fixture(
    'Insert in a streamed transaction',
    bytes().tag('I').int32(XID).int32(BIG_REL).tag('N').tuple(['1']).build(),
    { tag: 'insert', xid: XID, relationOid: BIG_REL, new: ['1'] },
    { inStream: true, protocolVersion: 2 },
  ),
  fixture('Insert with no columns', bytes().tag('I').int32(REL).tag('N').tuple([]).build(), {
    tag: 'insert',
    xid: undefined,
    relationOid: REL,
    new: [],
  }),
  fixture('Update without old tuple', bytes().tag('U').int32(REL).tag('N').tuple(['1', 'b']).build(), {
    tag: 'update',
    xid: undefined,
    relationOid: REL,
    oldKind: null,
    old: null,
    new: ['1', 'b'],
  }),
  fixture(
    'Update with old key (K)',
    bytes().tag('U').int32(REL).tag('K').tuple(['1', null]).tag('N').tuple(['2', UNCHANGED_TOAST]).build(),
    {
      tag: 'update',
      xid: undefined,
      relationOid: REL,
      oldKind: 'key',
      old: ['1', null],
      new: ['2', UNCHANGED_TOAST],
    },
  ),
  fixture(
    'Update with old row (O, replica identity full)',
    bytes().tag('U').int32(REL).tag('O').tuple(['1', 'a']).tag('N').tuple(['1', 'b']).build(),
    {
      tag: 'update',
      xid: undefined,
      relationOid: REL,
      oldKind: 'old',
      old: ['1', 'a'],
      new: ['1', 'b'],
    },
  ),
  fixture(
    'Update in a streamed transaction',
    bytes().tag('U').int32(XID).int32(REL).tag('K').tuple(['1']).tag('N').tuple(['2']).build(),
    { tag: 'update', xid: XID, relationOid: REL, oldKind: 'key', old: ['1'], new: ['2'] },
    { inStream: true, protocolVersion: 2 },
  ),
  fixture('Delete with old key (K)', bytes().tag('D').int32(REL).tag('K').tuple(['1', null]).build(), {
    tag: 'delete',
    xid: undefined,
    relationOid: REL,
    oldKind: 'key',
    old: ['1', null],
  }),
  fixture('Delete with old row (O)', bytes().tag('D').int32(REL).tag('O').tuple(['1', 'a']).build(), {
    tag: 'delete',
    xid: undefined,
    relationOid: REL,
    oldKind: 'old',
    old: ['1', 'a'],
  }),
  fixture(
    'Delete in a streamed transaction',
    bytes().tag('D').int32(XID).int32(REL).tag('O').tuple(['1']).build(),
    { tag: 'delete', xid: XID, relationOid: REL, oldKind: 'old', old: ['1'] },
    { inStream: true, protocolVersion: 2 },
  ),
  fixture('Truncate', bytes().tag('T').int32(2).int8(0).int32(REL).int32(BIG_REL).build(), {
    tag: 'truncate',
    xid: undefined,
    cascade: false,
    restartIdentity: false,
    relationOids: [REL, BIG_REL],
  }),
  fixture('Truncate with CASCADE', bytes().tag('T').int32(1).int8(1).int32(REL).build(), {
    tag: 'truncate',
    xid: undefined,
    cascade: true,
    restartIdentity: false,
    relationOids: [REL],
  }),
  fixture('Truncate with RESTART IDENTITY', bytes().tag('T').int32(1).int8(2).int32(REL).build(), {
    tag: 'truncate',
    xid: undefined,
    cascade: false,
    restartIdentity: true,
    relationOids: [REL],
  }),
  fixture(
    'Truncate in a streamed transaction, CASCADE and RESTART IDENTITY',
    bytes().tag('T').int32(XID).int32(1).int8(3).int32(REL).build(),
    { tag: 'truncate', xid: XID, cascade: true, restartIdentity: true, relationOids: [REL] },
    { inStream: true, protocolVersion: 2 },
  ),
  fixture(
    'Message, transactional',
    bytes()
      .tag('M')
      .int8(1)
      .int64(LSN)
      .cstring('outbox')
      .int32(5)
      .raw([0x7b, 0x22, 0x61, 0x7d, 0x00])
      .build(),
    {
      tag: 'message',
      xid: undefined,
      transactional: true,
      lsn: LSN,
      prefix: 'outbox',
      content: new Uint8Array([0x7b, 0x22, 0x61, 0x7d, 0x00]),
    },
  ),
  fixture(
    'Message, non-transactional, empty content',
    bytes().tag('M').int8(0).int64(LSN).cstring('ping').int32(0).build(),
    {
      tag: 'message',
      xid: undefined,
      transactional: false,
      lsn: LSN,
      prefix: 'ping',
      content: new Uint8Array(0),
    },
  ),
  fixture(
    'Message in a streamed transaction',
    bytes().tag('M').int32(XID).int8(1).int64(LSN).cstring('outbox').int32(2).raw([0x7b, 0x7d]).build(),
    {
      tag: 'message',
      xid: XID,
      transactional: true,
      lsn: LSN,
      prefix: 'outbox',
      content: new Uint8Array([0x7b, 0x7d]),
    },
    { inStream: true, protocolVersion: 2 },
  ),
  fixture(
    'Stream Start, first segment',
    bytes().tag('S').int32(XID).int8(1).build(),
    { tag: 'stream_start', xid: XID, firstSegment: true },
    { protocolVersion: 2 },
  ),
  fixture(
    'Stream Start, later segment',
    bytes().tag('S').int32(XID).int8(0).build(),
    { tag: 'stream_start', xid: XID, firstSegment: false },
    { protocolVersion: 2 },
  ),
  fixture(
    'Stream Stop',
    bytes().tag('E').build(),
    { tag: 'stream_stop' },
    { inStream: true, protocolVersion: 2 },
  ),
  fixture(
    'Stream Commit',
    bytes().tag('c').int32(XID).int8(0).int64(LSN).int64(END_LSN).int64(TIME).build(),
    { tag: 'stream_commit', xid: XID, flags: 0, commitLsn: LSN, endLsn: END_LSN, commitTime: TIME },
    { protocolVersion: 2 },
  ),
  fixture(
    'Stream Abort',
    bytes().tag('A').int32(XID).int32(SUB_XID).build(),
    { tag: 'stream_abort', xid: XID, subXid: SUB_XID, abortLsn: null, abortTime: null },
    { protocolVersion: 2 },
  ),
  fixture(
    'Stream Abort with abort LSN and time (protocol 4, streaming = parallel)',
    bytes().tag('A').int32(XID).int32(SUB_XID).int64(END_LSN).int64(LATER).build(),
    { tag: 'stream_abort', xid: XID, subXid: SUB_XID, abortLsn: END_LSN, abortTime: LATER },
    { protocolVersion: 4 },
  ),
  fixture(
    'Begin Prepare',
    bytes().tag('b').int64(LSN).int64(END_LSN).int64(TIME).int32(XID).cstring('pg_gid_16390_772').build(),
    {
      tag: 'begin_prepare',
      prepareLsn: LSN,
      endLsn: END_LSN,
      prepareTime: TIME,
      xid: XID,
      gid: 'pg_gid_16390_772',
    },
    { protocolVersion: 3 },
  ),
  fixture(
    'Prepare',
    bytes().tag('P').int8(0).int64(LSN).int64(END_LSN).int64(TIME).int32(XID).cstring('tx-1').build(),
    { tag: 'prepare', flags: 0, prepareLsn: LSN, endLsn: END_LSN, prepareTime: TIME, xid: XID, gid: 'tx-1' },
    { protocolVersion: 3 },
  ),
  fixture(
    'Commit Prepared',
    bytes().tag('K').int8(0).int64(LSN).int64(END_LSN).int64(LATER).int32(XID).cstring('tx-1').build(),
    {
      tag: 'commit_prepared',
      flags: 0,
      commitLsn: LSN,
      endLsn: END_LSN,
      commitTime: LATER,
      xid: XID,
      gid: 'tx-1',
    },
    { protocolVersion: 3 },
  ),
  fixture(
    'Rollback Prepared',
    bytes()
      .tag('r')
      .int8(0)
      .int64(LSN)
      .int64(END_LSN)
      .int64(TIME)
      .int64(LATER)
      .int32(XID)
      .cstring('tx-1')
      .build(),
    {
      tag: 'rollback_prepared',
      flags: 0,
      prepareEndLsn: LSN,
      rollbackEndLsn: END_LSN,
      prepareTime: TIME,
      rollbackTime: LATER,
      xid: XID,
      gid: 'tx-1',
    },
    { protocolVersion: 3 },
  ),
  fixture(
    'Stream Prepare',
    bytes().tag('p').int8(0).int64(LSN).int64(END_LSN).int64(TIME).int32(XID).cstring('tx-2').build(),
    {
      tag: 'stream_prepare',
      flags: 0,
      prepareLsn: LSN,
      endLsn: END_LSN,
      prepareTime: TIME,
      xid: XID,
      gid: 'tx-2',
    },
    { protocolVersion: 3 },
  ),
];
