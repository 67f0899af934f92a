import { readFileSync } from 'node:fs';
import { ConfigError, SluiceError } from '@sluice/core';
import { helpText } from './help.js';
import { redactString } from './redact.js';
import { settingByKey } from './settings.js';

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Prints a start-up failure for a person: what went wrong and the fix, no stack for known errors. */
export function printFatal(err: unknown): void {
  // Messages may quote a connection string (NATS servers, a Postgres URL): scrub like the logger.
  if (err instanceof SluiceError) {
    // Packages name their options (`tables`); a person sets SLUICE_TABLES or --tables.
    const spec = err instanceof ConfigError ? settingByKey(err.setting) : undefined;
    const where = spec ? `\n  setting: ${spec.env} (${spec.flag})` : '';
    process.stderr.write(`sluice: ${redactString(err.message)}${where}\n`);
  } else {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`sluice: unexpected error: ${redactString(text)}\n`);
  }
}

/** Returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command = 'help', ...rest] = argv;
  switch (command) {
    case 'run': {
      const { runRelay } = await import('./run.js');
      return runRelay(process.env, rest);
    }
    case 'backfill': {
      const { runBackfill } = await import('./backfill.js');
      return runBackfill(process.env, rest);
    }
    case 'migrate': {
      const { runMigrate } = await import('./migrate.js');
      return runMigrate(process.env, rest);
    }
    case 'version':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(helpText());
      return 0;
    default:
      process.stderr.write(`sluice: unknown command "${command}"\n\n${helpText()}`);
      return 2;
  }
}
