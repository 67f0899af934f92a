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
    '  help             this text',
    '  version          print the version',
    '',
    'Settings (environment variable, flag, default, meaning):',
    ...rows,
    '',
  ].join('\n');
}
