import { describe, expect, it } from 'vitest';
import { startReplicationCommand } from './replication-session.js';
import { protocolVersionFor, qualifiedName, quoteLiteral } from './sql.js';
import type { StartupReport } from './startup.js';

describe('protocolVersionFor', () => {
  it.each([
    [170004, 4],
    [160000, 4],
    [150020, 3],
    [140000, 2],
    [130015, 1],
  ])('server_version_num %i speaks proto_version %i', (version, proto) => {
    expect(protocolVersionFor(version)).toBe(proto);
  });
});

describe('quoting', () => {
  it('quotes identifiers and literals, doubling embedded quotes', () => {
    expect(qualifiedName('my schema', 'Say "hi"')).toBe('"my schema"."Say ""hi"""');
    expect(quoteLiteral("it's")).toBe("'it''s'");
  });
});

describe('startReplicationCommand', () => {
  const report = (serverVersionNum: number, protocolVersion: 1 | 2 | 3 | 4) =>
    ({ serverVersionNum, protocolVersion }) as StartupReport;

  it('asks for logical messages, never for streaming, with the publication quoted inside the literal', () => {
    expect(startReplicationCommand(report(150000, 3), 'sluice', "pub's")).toBe(
      `START_REPLICATION SLOT "sluice" LOGICAL 0/0 (proto_version '3', publication_names '"pub''s"', messages 'true')`,
    );
  });

  it('leaves out the messages option on servers before 14, which do not know it', () => {
    expect(startReplicationCommand(report(130000, 1), 'sluice', 'sluice')).toBe(
      `START_REPLICATION SLOT "sluice" LOGICAL 0/0 (proto_version '1', publication_names '"sluice"')`,
    );
  });
});
