import { Form } from "@remix-run/react";
import type { SteerView } from "~/models/steering.server";

/**
 * A message the builder sent while a run worked (decision 033), with where it
 * stands: waiting for the agent's next step (it can be withdrawn), read at a
 * step, or not read because the run ended first (it can be sent as a prompt).
 */
export function SteerMessage({ steer }: { steer: SteerView }) {
  return (
    <li className={`message message-user message-steer steer-${steer.status}`} data-steer={steer.status}>
      <span className="visually-hidden">You, while the agent worked:</span>
      <p>{steer.content}</p>
      {steer.status === "delivered" ? (
        <p className="steer-status">{`Read by the agent at step ${steer.iteration}`}</p>
      ) : (
        <Form method="post" className="steer-status" preventScrollReset>
          <input type="hidden" name="steerId" value={steer.id} />
          {steer.status === "queued" ? (
            <>
              <span>Queued for the agent&apos;s next step.</span>
              <button type="submit" name="intent" value="steer-withdraw" className="ghost small">
                Withdraw
              </button>
            </>
          ) : (
            <>
              <span>Not read: the run ended first.</span>
              <button type="submit" name="intent" value="steer-send" className="ghost small">
                Send as a prompt
              </button>
              <button type="submit" name="intent" value="steer-withdraw" className="ghost small">
                Discard
              </button>
            </>
          )}
        </Form>
      )}
    </li>
  );
}
