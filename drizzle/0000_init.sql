CREATE TABLE "sluice"."outbox" (
	"id" uuid PRIMARY KEY NOT NULL,
	"aggregatetype" varchar(255) NOT NULL,
	"aggregateid" varchar(255) NOT NULL,
	"type" varchar(255) NOT NULL,
	"payload" jsonb,
	"headers" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sluice"."snapshot_progress" (
	"slot" text NOT NULL,
	"schema_name" text NOT NULL,
	"table_name" text NOT NULL,
	"snapshot_id" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"last_key" jsonb,
	"rows_emitted" bigint DEFAULT 0 NOT NULL,
	"rows_estimate" bigint,
	"started_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "snapshot_progress_slot_schema_name_table_name_pk" PRIMARY KEY("slot","schema_name","table_name"),
	CONSTRAINT "snapshot_progress_status_check" CHECK (status in ('pending', 'running', 'done'))
);
--> statement-breakpoint
CREATE INDEX "outbox_created_at_idx" ON "sluice"."outbox" USING btree ("created_at");