import { readFileSync } from 'node:fs';
import { ConfigError, certificateFailure, SluiceError } from '@sluice/core';
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
  // A certificate that does not verify, from a command that did not say so itself (migrate,
  // backfill, dlq…): name the settings to check.
  const certificate = err instanceof SluiceError && err.code === 'tls' ? undefined : certificateFailure(err);
  if (certificate) {
    process.stderr.write(
      `sluice: a server certificate does not verify (${redactString(certificate)})\n  fix: for Postgres, sslrootcert in SLUICE_DATABASE_URL must name the CA that signed its certificate and the host must be a name the certificate holds; for NATS, SLUICE_NATS_TLS_CA\n`,
    );
    return;
  }
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
    case 'dlq': {
      const { runDlq } = await import('./dlq.js');
      return runDlq(process.env, rest);
    }
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      return runDemo(process.env, rest);
    }
    case 'tail': {
      const { runTail } = await import('./tail.js');
      return runTail(process.env, rest);
    }
    case 'status': {
      const { runStatus } = await import('./status.js');
      return runStatus(process.env, rest);
    }
    case 'slot': {
      const { runSlot } = await import('./slot.js');
      return runSlot(process.env, rest);
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
