ALTER TABLE "sluice"."outbox" ADD COLUMN "txid" "xid8" DEFAULT pg_current_xact_id() NOT NULL;--> statement-breakpoint
ALTER TABLE "sluice"."outbox" ADD COLUMN "position" bigint NOT NULL GENERATED ALWAYS AS IDENTITY (sequence name "sluice"."outbox_position_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1);--> statement-breakpoint
ALTER TABLE "sluice"."outbox" ADD COLUMN "published_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "outbox_txid_position_idx" ON "sluice"."outbox" USING btree ("txid","position");