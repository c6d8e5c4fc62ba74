CREATE TYPE "public"."version_kind" AS ENUM('run-start', 'step', 'run-end', 'restore');--> statement-breakpoint
ALTER TYPE "public"."agent_entry_kind" ADD VALUE 'restored';--> statement-breakpoint
CREATE TABLE "git_remotes" (
	"project_id" uuid PRIMARY KEY NOT NULL,
	"url" text NOT NULL,
	"branch" text DEFAULT 'dyno' NOT NULL,
	"token" text,
	"last_pushed_at" timestamp with time zone,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "versions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"project_id" uuid NOT NULL,
	"number" integer NOT NULL,
	"run_id" uuid,
	"iteration" integer DEFAULT 0 NOT NULL,
	"kind" "version_kind" NOT NULL,
	"tool" text,
	"commit_sha" text NOT NULL,
	"tree_sha" text NOT NULL,
	"parent_sha" text,
	"files_added" integer DEFAULT 0 NOT NULL,
	"files_changed" integer DEFAULT 0 NOT NULL,
	"files_deleted" integer DEFAULT 0 NOT NULL,
	"skipped" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"restored_from" uuid,
	"run_status" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "git_remotes" ADD CONSTRAINT "git_remotes_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "versions" ADD CONSTRAINT "versions_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "versions" ADD CONSTRAINT "versions_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "versions_project_number_idx" ON "versions" USING btree ("project_id","number");--> statement-breakpoint
CREATE UNIQUE INDEX "versions_step_idx" ON "versions" USING btree ("run_id","iteration","kind");--> statement-breakpoint
CREATE INDEX "versions_run_idx" ON "versions" USING btree ("run_id");