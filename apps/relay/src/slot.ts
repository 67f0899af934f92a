import { ConfigError, PermanentError, SluiceError } from '@sluice/core';
import pg from 'pg';
import { printFatal } from './cli.js';
import { unreachable } from './demo.js';
import { toolConfig } from './local-servers.js';
import { splitToolArgs } from './tool-args.js';

export const SLOT_USAGE = 'sluice slot reset --resnapshot [--force]';

interface SlotRow {
  active_pid: number | null;
  wal_status: string | null;
  conflicting: boolean | null;
  invalidation_reason: string | null;
}

/**
 * `sluice slot reset --resnapshot`: the explicit recovery from a lost or invalidated slot. The
 * relay never drops and recreates a slot by itself, since changes made after the slot's position
 * can no longer be streamed one by one; a person decides to start over. Drops the slot and clears
 * its snapshot progress, so the next `sluice run` creates a new slot and reads every table again as
 * `read` events (SLUICE_SNAPSHOT=initial). A healthy slot is reset only with --force; a slot in use
 * never (stop the relays first). Exit 0 on success, 1 on refusal, 2 on bad arguments.
 */
export async function runSlot(env: NodeJS.ProcessEnv, argv: string[]): Promise<number> {
  let client: pg.Client | undefined;
  try {
    const args = splitToolArgs(argv, { resnapshot: 'switch', force: 'switch' }, 'slot', SLOT_USAGE);
    if (args.positional[0] !== 'reset' || args.positional.length > 1) {
      throw new ConfigError('slot', `expected "reset", got "${args.positional.join(' ')}"`, {
        hint: `usage: ${SLOT_USAGE}`,
      });
    }
    if (!args.own['resnapshot']) {
      throw new ConfigError(
        'slot',
        'slot reset drops the replication slot: changes after its position are not streamed one by one, so the tables must be read again',
        { hint: `say so with --resnapshot: ${SLOT_USAGE}` },
      );
    }
    const tool = toolConfig(env, args.settings);
    const { slot } = tool.config;
    client = new pg.Client({ connectionString: tool.config.databaseUrl, application_name: 'sluice-slot' });
    await client.connect().catch((err: unknown) => {
      throw unreachable(err, tool);
    });
    const version = Number(
      (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v,
    );
    const { rows } = await client.query<SlotRow>(
      `SELECT active_pid, ${version >= 130000 ? 'wal_status' : 'NULL::text AS wal_status'},
              ${version >= 160000 ? 'conflicting' : 'NULL::boolean AS conflicting'},
              ${version >= 170000 ? 'invalidation_reason' : 'NULL::text AS invalidation_reason'}
         FROM pg_replication_slots WHERE slot_name = $1`,
      [slot],
    );
    const row = rows[0];
    if (row?.active_pid != null) {
      throw new PermanentError(`replication slot "${slot}" is in use (walsender pid ${row.active_pid})`, {
        hint: 'stop every relay using it (the active one and its standby), then run the reset again',
      });
    }
    const state = row ? describeSlot(row) : 'absent';
    if (row && state === 'usable' && !args.own['force']) {
      throw new PermanentError(
        `replication slot "${slot}" is usable (wal_status = ${row.wal_status ?? 'unknown'}): resetting it would discard its position for nothing`,
        { hint: 'start the relay to resume from it; add --force to reset it anyway' },
      );
    }
    const progress = await client
      .query('DELETE FROM sluice.snapshot_progress WHERE slot = $1', [slot])
      .then((r) => r.rowCount ?? 0)
      .catch((err: unknown) => {
        // No sluice schema yet: nothing was snapshotted for any slot.
        if ((err as { code?: string }).code === '42P01') return 0;
        throw err;
      });
    if (row) await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
    process.stdout.write(
      `${row ? `dropped replication slot "${slot}" (${state})` : `no replication slot "${slot}"`}; cleared the snapshot progress of ${progress} table(s).\n` +
        `The next \`sluice run\` creates the slot anew and, with SLUICE_SNAPSHOT=initial (the default), reads every table again as read events.\n`,
    );
    return 0;
  } catch (err) {
    printFatal(
      err instanceof SluiceError
        ? err
        : new PermanentError(`sluice slot: ${String(err instanceof Error ? err.message : err)}`, {
            cause: err,
          }),
    );
    return err instanceof ConfigError ? 2 : 1;
  } finally {
    await client?.end().catch(() => {});
  }
}

function describeSlot(row: SlotRow): string {
  if (row.invalidation_reason) return `invalidated: ${row.invalidation_reason}`;
  if (row.wal_status === 'lost') return 'invalidated: wal_status = lost';
  if (row.conflicting) return 'invalidated: conflicting with recovery';
  return 'usable';
}
