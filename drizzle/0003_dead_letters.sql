CREATE TABLE "sluice"."dead_letters" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "sluice"."dead_letters_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"relay" text NOT NULL,
	"event_id" text NOT NULL,
	"event_key" text NOT NULL,
	"kind" text NOT NULL,
	"source" text NOT NULL,
	"subject" text,
	"headers" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"body" text,
	"error_code" text NOT NULL,
	"error_message" text NOT NULL,
	"attempts" integer NOT NULL,
	"first_seen" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen" timestamp with time zone DEFAULT now() NOT NULL,
	"parks" boolean NOT NULL,
	"state" text DEFAULT 'open' NOT NULL,
	"resolved_at" timestamp with time zone,
	"resolved_by" text,
	CONSTRAINT "dead_letters_state_check" CHECK (state in ('open', 'replayed', 'discarded'))
);
--> statement-breakpoint
CREATE TABLE "sluice"."parked_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "sluice"."parked_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"relay" text NOT NULL,
	"event_key" text NOT NULL,
	"event_id" text NOT NULL,
	"kind" text NOT NULL,
	"source" text NOT NULL,
	"subject" text NOT NULL,
	"headers" jsonb NOT NULL,
	"body" text NOT NULL,
	"parked_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "dead_letters_relay_event_id_idx" ON "sluice"."dead_letters" USING btree ("relay","event_id");--> statement-breakpoint
CREATE INDEX "dead_letters_relay_state_key_idx" ON "sluice"."dead_letters" USING btree ("relay","state","event_key");--> statement-breakpoint
CREATE UNIQUE INDEX "parked_events_relay_event_id_idx" ON "sluice"."parked_events" USING btree ("relay","event_id");--> statement-breakpoint
CREATE INDEX "parked_events_relay_key_idx" ON "sluice"."parked_events" USING btree ("relay","event_key","id");