ALTER TYPE "public"."agent_entry_kind" ADD VALUE 'summary';--> statement-breakpoint
ALTER TYPE "public"."agent_entry_kind" ADD VALUE 'note';