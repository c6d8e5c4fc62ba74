ALTER TYPE "public"."agent_entry_kind" ADD VALUE 'summary';--> statement-breakpoint
ALTER TYPE "public"."agent_entry_kind" ADD VALUE 'note';--> statement-breakpoint
CREATE INDEX "runs_user_idx" ON "runs" USING btree ("user_id","created_at");