import { ConfigError } from '@sluice/core';
import { migrate, migrationSql } from '@sluice/schema';
import pg from 'pg';
import { printFatal } from './cli.js';
import { loadConfig } from './config.js';
import { createLogger } from './logger.js';

/** `sluice migrate [--print] [flags]`: applies (or prints) Sluice's own schema migrations. */
export async function runMigrate(env: NodeJS.ProcessEnv, argv: string[]): Promise<number> {
  const print = argv.includes('--print');
  const rest = argv.filter((a) => a !== '--print');
  if (print) {
    process.stdout.write(migrationSql());
    return 0;
  }
  let pool: pg.Pool | undefined;
  try {
    const { config } = loadConfig(env, rest);
    const logger = createLogger(config.logLevel);
    pool = new pg.Pool({ connectionString: config.databaseUrl, max: 1, application_name: 'sluice-migrate' });
    const { applied } = await migrate(pool, { logger });
    logger.info({ applied }, applied.length ? 'migrations applied' : 'schema sluice is up to date');
    return 0;
  } catch (err) {
    printFatal(err);
    return err instanceof ConfigError ? 2 : 1;
  } finally {
    await pool?.end();
  }
}
