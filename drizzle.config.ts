import { defineConfig } from 'drizzle-kit';

// Sluice's own migrations: only the `sluice` schema, bookkeeping in `sluice.__drizzle_migrations`,
// never the application's tables or its drizzle bookkeeping. `drizzle-kit generate` needs no database.
export default defineConfig({
  dialect: 'postgresql',
  schema: './packages/schema/src/tables.ts',
  out: './drizzle',
  schemaFilter: ['sluice'],
  migrations: { schema: 'sluice', table: '__drizzle_migrations' },
  strict: true,
  verbose: true,
});
