import { SETTINGS } from './settings.js';

export function helpText(): string {
  const rows = SETTINGS.map((s) => {
    const fallbacks = 'envFallbacks' in s ? ` (or ${s.envFallbacks.join(', ')})` : '';
    return `  ${s.env.padEnd(28)} ${s.flag.padEnd(24)} ${('default' in s && s.default !== '' ? s.default : '-').padEnd(12)} ${s.description}${fallbacks}`;
  });
  return [
    'Usage: sluice <command> [flags]',
    '',
    'Commands:',
    '  run              stream changes from Postgres to the sink until SIGTERM/SIGINT',
    '  run --embedded   the same with a local Postgres and nats-server (what npm start runs)',
    '  demo [--rate <n/s>] [--count <n>]',
    '                   write sample orders (demo.orders) and their outbox events until Ctrl-C',
    '  tail [subject] [--from-start] [--json] [--count <n>]',
    "                   print the stream's events as they arrive, one line each (subject, id, op, key, changes)",
    '  status [--json]  slot position, lag and retained WAL, stream, backfills, dead letters',
    '                   (demo, tail and status find the servers of npm start in this directory; see docs/cli.md)',
    '  migrate          apply Sluice’s own migrations (schema sluice) under an advisory lock',
    '  migrate --print  print the migration SQL for a DBA instead of applying it',
    '  slot reset --resnapshot [--force]',
    '                   after a lost or invalidated slot: drop it and clear its snapshot progress, so',
    '                   the next run creates it anew and reads every table again; see docs/operations.md',
    '  backfill <schema.table>... [--where <condition>]',
    '                   ask the relay streaming from the slot (now, or the next to start) to publish',
    "                   the tables' rows again as read events, while changes stream; see docs/backfill.md",
    '  backfill --list  backfill requests with their state and progress',
    '  backfill --cancel <id>',
    '                   stop a backfill request',
    '  dlq list [--table <t>] [--since <time|2h>] [--resolved]',
    '                   dead letters of the relay (SLUICE_SLOT): events JetStream refused for good',
    '  dlq show <id> [--body]',
    '                   one dead letter: error, headers, body',
    '  dlq replay <id> | --all [--table <t>]',
    '                   publish it again (same Nats-Msg-Id), then the events parked behind it, in order',
    '  dlq discard <id> | --before <time|2h> [--table <t>]',
    '                   drop it and publish the events parked behind it; see docs/dead-letters.md',
    '  help             this text',
    '  version          print the version',
    '',
    'Settings (environment variable, flag, default, meaning):',
    ...rows,
    '',
    'Any variable may be given as a file instead: <VARIABLE>_FILE=/path reads its value from the file',
    '(e.g. SLUICE_NATS_PASSWORD_FILE, SLUICE_NATS_CREDS_FILE, SLUICE_DATABASE_URL_FILE); see docs/security.md.',
    '',
  ].join('\n');
}
