ALTER TYPE "public"."agent_entry_kind" ADD VALUE 'stopped';--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "model" text DEFAULT '' NOT NULL;