import type { ActionFunctionArgs } from "@remix-run/node";
import { redirect } from "@remix-run/node";
import { signOutAndRedirect } from "~/auth/session.server";

/** POST only: a link or an image cannot sign anyone out. */
export async function action({ request }: ActionFunctionArgs) {
  return signOutAndRedirect(request);
}

export async function loader() {
  return redirect("/");
}
