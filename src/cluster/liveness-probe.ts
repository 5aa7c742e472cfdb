/**
 * A fast witness of a dead process, beside SWIM: the controller opens a TCP connection
 * to each live broker's cluster port every pass. A refused connection means the host
 * answered and nothing listens there any more: the process died (SIGKILL, crash) or is
 * stopping. SWIM needs seconds of missed probes and suspicion to say the same, because
 * silence may be a slow network or a paused process; a refusal is not silence, so the
 * controller may fence at once. Anything else (connected, timed out, unreachable) says
 * nothing here and is left to SWIM. Fencing a broker that is in fact alive only costs
 * availability for a moment: elections pick from the ISR either way.
 */
import { connect } from "node:net";
import type { Timers } from "../util/timers.ts";

/** How long one probe waits for a connection before it counts as silence. */
export const PROBE_TIMEOUT_MS = 300;

/** Resolves true when the port refused the connection, false otherwise. */
export function connectionRefused(
  host: string,
  port: number,
  timers: Timers,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let settled = false;
    const settle = (refused: boolean) => {
      if (settled) return;
      settled = true;
      cancel();
      socket.destroy();
      resolve(refused);
    };
    const cancel = timers.after(timeoutMs, () => settle(false));
    socket.once("connect", () => settle(false));
    socket.once("error", (error: NodeJS.ErrnoException) => settle(error.code === "ECONNREFUSED"));
  });
}
