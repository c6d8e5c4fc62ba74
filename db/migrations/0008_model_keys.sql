CREATE TYPE "public"."model_key_provider" AS ENUM('openai', 'anthropic', 'openai-compatible');--> statement-breakpoint
CREATE TABLE "model_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"provider" "model_key_provider" NOT NULL,
	"label" text NOT NULL,
	"base_url" text,
	"models" jsonb NOT NULL,
	"sealed_key" text,
	"key_hint" text,
	"last_checked_at" timestamp with time zone,
	"last_check_ok" boolean,
	"last_check_message" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "model" text;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "model_key_id" uuid;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "fallback_model" text;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "fallback_key_id" uuid;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "model_key_id" uuid;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "fallback_model" text;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "fallback_key_id" uuid;--> statement-breakpoint
ALTER TABLE "model_keys" ADD CONSTRAINT "model_keys_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "model_keys_user_idx" ON "model_keys" USING btree ("user_id","created_at");