import type { TableRef } from '@sluice/source-postgres';

/** The table `sluice demo` writes its orders to; `npm start` captures it when SLUICE_TABLES is unset. */
export const DEMO_TABLE: TableRef = { schema: 'demo', table: 'orders' };

/**
 * REPLICA IDENTITY FULL: updates carry the row before, so events name the changed columns
 * (`changed`), which is what `sluice tail` shows.
 */
export const DEMO_SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer text NOT NULL,
  status text NOT NULL DEFAULT 'placed',
  total numeric(10, 2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE demo.orders REPLICA IDENTITY FULL;
`;
