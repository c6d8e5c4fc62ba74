import { type ActionFunctionArgs, redirect } from "@remix-run/node";
import { signOutAndRedirect } from "~/auth/session.server";
import { readForm } from "~/http/form.server";

/** POST only: a link or an image cannot sign anyone out. */
export async function action({ request }: ActionFunctionArgs) {
  await readForm(request); // a POSTed form (the Sign out button) and nothing else
  return signOutAndRedirect(request);
}

export async function loader() {
  return redirect("/");
}
