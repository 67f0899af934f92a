CREATE TABLE "sluice"."backfill" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "sluice"."backfill_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"slot" text NOT NULL,
	"predicate" text,
	"state" text DEFAULT 'pending' NOT NULL,
	"requested_at" timestamp with time zone DEFAULT now() NOT NULL,
	"requested_by" text DEFAULT session_user NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"error" text,
	CONSTRAINT "backfill_state_check" CHECK (state in ('pending', 'running', 'done', 'cancelled', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "sluice"."backfill_table" (
	"backfill_id" bigint NOT NULL,
	"position" integer NOT NULL,
	"schema_name" text NOT NULL,
	"table_name" text NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"last_key" jsonb,
	"rows_read" bigint DEFAULT 0 NOT NULL,
	"rows_estimate" bigint,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "backfill_table_backfill_id_schema_name_table_name_pk" PRIMARY KEY("backfill_id","schema_name","table_name"),
	CONSTRAINT "backfill_table_state_check" CHECK (state in ('pending', 'running', 'done'))
);
--> statement-breakpoint
ALTER TABLE "sluice"."snapshot_progress" DROP CONSTRAINT "snapshot_progress_status_check";--> statement-breakpoint
ALTER TABLE "sluice"."backfill_table" ADD CONSTRAINT "backfill_table_backfill_id_backfill_id_fk" FOREIGN KEY ("backfill_id") REFERENCES "sluice"."backfill"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "backfill_slot_state_idx" ON "sluice"."backfill" USING btree ("slot","state");--> statement-breakpoint
ALTER TABLE "sluice"."snapshot_progress" ADD CONSTRAINT "snapshot_progress_status_check" CHECK (status in ('pending', 'running', 'done', 'skipped'));