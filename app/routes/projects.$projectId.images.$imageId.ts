import type { LoaderFunctionArgs } from "@remix-run/node";
import { requireUserId } from "~/auth/session.server";
import { db } from "~/db.server";
import { imageResponse, ownedImage } from "~/models/prompt-images.server";

/** An image attached to a prompt, for its owner only (anyone else, or a wrong id: 404). Decision 036. */
export async function loader({ request, params }: LoaderFunctionArgs) {
  const userId = await requireUserId(request);
  const image = await ownedImage(db, {
    userId,
    projectId: params.projectId ?? "",
    imageId: params.imageId ?? "",
  });
  if (!image) throw new Response("Image not found", { status: 404, headers: { "Content-Type": "text/plain" } });
  return imageResponse(image);
}
