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
    '  migrate          apply Sluice’s own migrations (schema sluice) under an advisory lock',
    '  migrate --print  print the migration SQL for a DBA instead of applying it',
    '  backfill <schema.table>... [--where <condition>]',
    '                   ask the relay streaming from the slot (now, or the next to start) to publish',
    "                   the tables' rows again as read events, while changes stream; see docs/backfill.md",
    '  backfill --list  backfill requests with their state and progress',
    '  backfill --cancel <id>',
    '                   stop a backfill request',
    '  help             this text',
    '  version          print the version',
    '',
    'Settings (environment variable, flag, default, meaning):',
    ...rows,
    '',
  ].join('\n');
}
