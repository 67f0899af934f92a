import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type PostgresServer, postgresBinaries, startPostgres } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The npm package's Postgres (what `npm start` runs on a machine with only Node) serves logical
// replication with pgoutput, as the system's does.
describe("npm's Postgres binaries", () => {
  let server: PostgresServer;

  beforeAll(async () => {
    server = await startPostgres({ binDir: postgresBinaries({ source: 'npm' }).binDir });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('run a Postgres 18 with logical decoding through pgoutput', async () => {
    const [shown] = await server.query<{ server_version_num: string }>('SHOW server_version_num');
    expect(Number(shown?.server_version_num)).toBeGreaterThanOrEqual(180000);
    await server.query('CREATE TABLE t (id int PRIMARY KEY, note text)');
    await server.query('CREATE PUBLICATION p FOR TABLE t');
    await server.query("SELECT pg_create_logical_replication_slot('s', 'pgoutput')");
    await server.query("INSERT INTO t VALUES (1, 'hello')");
    const changes = await server.query<{ data: Buffer }>(
      "SELECT data FROM pg_logical_slot_get_binary_changes('s', NULL, NULL, 'proto_version', '1', 'publication_names', 'p')",
    );
    // Begin, Relation, Insert, Commit.
    expect(changes.map((c) => String.fromCharCode(c.data[0] as number))).toEqual(['B', 'R', 'I', 'C']);
  });
});

// As root, Postgres runs as the postgres OS user, which cannot enter a private home such as /root
// where a project (and its node_modules) may live: it then runs a copy of the binaries in /tmp.
describe.runIf(process.getuid?.() === 0)(
  "npm's Postgres binaries behind a directory the server user cannot enter",
  () => {
    let server: PostgresServer | undefined;
    let home: string;
    let copies: string[];

    beforeAll(() => {
      copies = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('sluice-postgres-'));
      home = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-private-home-'));
      fs.chmodSync(home, 0o700);
      // The project as it would sit in the private home: its install reached through that directory.
      fs.symlinkSync(path.dirname(postgresBinaries({ source: 'npm' }).binDir), path.join(home, 'native'));
    });
    afterAll(async () => {
      await server?.dispose();
      fs.rmSync(home, { recursive: true, force: true });
      for (const name of fs.readdirSync(os.tmpdir())) {
        if (name.startsWith('sluice-postgres-') && !copies.includes(name)) {
          fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
        }
      }
    });

    it('run from a copy the server user can reach', async () => {
      server = await startPostgres({ binDir: path.join(home, 'native', 'bin') });
      const [row] = await server.query<{ v: string }>("SELECT current_setting('server_version') AS v");
      expect(row?.v).toMatch(/^18\./);
      const made = fs.readdirSync(os.tmpdir()).filter((n) => /^sluice-postgres-[0-9a-f]{16}$/.test(n));
      expect(made.length).toBeGreaterThan(0);
    });
  },
);
