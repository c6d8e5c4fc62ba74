CREATE TYPE "public"."steer_state" AS ENUM('queued', 'delivered', 'withdrawn', 'resent');--> statement-breakpoint
ALTER TYPE "public"."agent_entry_kind" ADD VALUE 'steer';--> statement-breakpoint
CREATE TABLE "steer_messages" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"run_id" uuid NOT NULL,
	"project_id" uuid NOT NULL,
	"content" text NOT NULL,
	"state" "steer_state" DEFAULT 'queued' NOT NULL,
	"delivered_iteration" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"settled_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "steer_messages" ADD CONSTRAINT "steer_messages_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "steer_messages" ADD CONSTRAINT "steer_messages_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "steer_messages_run_idx" ON "steer_messages" USING btree ("run_id","state");--> statement-breakpoint
CREATE INDEX "steer_messages_project_idx" ON "steer_messages" USING btree ("project_id");