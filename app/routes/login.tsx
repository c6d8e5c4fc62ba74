import { type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction, data, redirect } from "@remix-run/node";
import { useActionData, useSearchParams } from "@remix-run/react";
import { authFormError, readCredentials } from "~/auth/form.server";
import { TooManyAttemptsError } from "~/auth/rate-limit.server";
import { getUser, safeRedirect, signInAndRedirect } from "~/auth/session.server";
import { InvalidLoginError, verifyLogin } from "~/auth/users.server";
import { AuthForm } from "~/components/auth-form";
import { readForm } from "~/http/form.server";

export const meta: MetaFunction = () => [{ title: "Sign in · Dyno" }];

export async function loader({ request }: LoaderFunctionArgs) {
  if (await getUser(request)) throw redirect(safeRedirect(new URL(request.url).searchParams.get("redirectTo")));
  return null;
}

export async function action({ request, context }: ActionFunctionArgs) {
  const form = await readForm(request);
  try {
    const user = await verifyLogin(readCredentials(form), context.clientAddress);
    return await signInAndRedirect(user.id, safeRedirect(form.get("redirectTo")));
  } catch (error) {
    const result = authFormError(error, form, [InvalidLoginError, TooManyAttemptsError]);
    return data(result, { status: error instanceof TooManyAttemptsError ? 429 : 400 });
  }
}

export default function Login() {
  const result = useActionData<typeof action>();
  const [params] = useSearchParams();
  return (
    <AuthForm
      mode="login"
      redirectTo={params.get("redirectTo") ?? "/projects"}
      error={result?.error}
      email={result?.email}
    />
  );
}
