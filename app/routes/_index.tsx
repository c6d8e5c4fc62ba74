import { type LoaderFunctionArgs, redirect } from "@remix-run/node";
import { getUser } from "~/auth/session.server";

/** The front door: your projects when signed in, the sign-in page otherwise. */
export async function loader({ request }: LoaderFunctionArgs) {
  throw redirect((await getUser(request)) ? "/projects" : "/login");
}
