ALTER TABLE "git_remotes" ADD COLUMN "last_pushed_number" integer;--> statement-breakpoint
ALTER TABLE "git_remotes" ADD COLUMN "push_state" text;--> statement-breakpoint
ALTER TABLE "git_remotes" ADD COLUMN "push_number" integer;--> statement-breakpoint
ALTER TABLE "git_remotes" ADD COLUMN "push_requested_at" timestamp with time zone;