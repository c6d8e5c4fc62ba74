/**
 * Reading a form post in an action: every action calls readForm instead of
 * request.formData(), so a wrong method, a body that is not a form, a broken
 * one or one over the route's size limit is answered with a short 4xx instead
 * of a 500. The size limit itself is enforced on the stream by the server
 * (server/body-limit.ts), before anything here buffers the body.
 */

/** What the app's forms send: <Form> and fetchers use the first, file inputs the second. */
const FORM_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data"];
const FORM_METHODS = ["POST"];
/** The Allow header of a page whose action takes forms: its loader answers GET (and HEAD). */
const PAGE_METHODS = "GET, HEAD, POST";

function refusal(status: number, statusText: string, message: string, headers: Record<string, string> = {}): Response {
  return new Response(message, {
    status,
    statusText,
    headers: { "Content-Type": "text/plain; charset=utf-8", ...headers },
  });
}

/** Throws a 405 (with Allow) unless the request is a POST. */
function requirePost(request: Request): void {
  if (!FORM_METHODS.includes(request.method.toUpperCase())) {
    throw refusal(405, "Method Not Allowed", `${request.method} is not allowed here; send the form with POST.`, {
      Allow: PAGE_METHODS,
    });
  }
}

/** The posted form; throws a 405, 415, 413 or 400 Response (an action lets it propagate) when there is none to read. */
export async function readForm(request: Request): Promise<FormData> {
  requirePost(request);
  const type = (request.headers.get("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (!FORM_TYPES.includes(type)) {
    throw refusal(
      415,
      "Unsupported Media Type",
      "Send this form as application/x-www-form-urlencoded or multipart/form-data.",
    );
  }
  try {
    return await request.formData();
  } catch (error) {
    if (isBodyTooLarge(error)) throw refusal(413, "Payload Too Large", error.message);
    // A multipart body without its boundary, cut short or malformed.
    throw refusal(400, "Bad Request", "That form could not be read.");
  }
}

/** server/body-limit.ts's BodyTooLargeError, known by its code: in development Vite loads the app apart from the server. */
function isBodyTooLarge(error: unknown): error is Error {
  return error instanceof Error && (error as { code?: unknown }).code === "BODY_TOO_LARGE";
}
