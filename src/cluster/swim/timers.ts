/** SWIM's timers are the process's one `Timers` interface (src/util/timers.ts). */
export type { Timers } from "../../util/timers.ts";
