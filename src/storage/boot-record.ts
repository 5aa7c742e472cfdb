/**
 * Whether this start may have lost writes that the last run had not fsynced (a "lossy"
 * start). Brook, like Kafka, does not fsync every append: a process crash (kill -9)
 * leaves them in the page cache, a machine crash (power loss, kernel panic, hard reset)
 * does not. The kernel's boot id tells the two apart: `<data-dir>/checkpoints/boot`
 * records the boot id of the run that last used this data dir, so a start without the
 * clean-shutdown marker and under another boot id follows a machine crash.
 *
 * A lossy start must be reported to the controller (the `lossy` flag of the broker's
 * registration, src/cluster/eligible-leaders.ts): until that registration is
 * committed, the flag stays in the file, so a process that dies before registering
 * passes it on to the next start, whatever that start's boot id.
 *
 * Without a boot id (a kernel without /proc) every unclean start counts as lossy.
 * A data dir without the file (new, or from before it existed) is not lossy.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomically } from "./checkpoint.ts";

export const BOOT_RECORD_FILE = "boot";
const BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id";

interface BootRecord {
  bootId: string | null;
  /** A lossy start not yet reported to the controller. */
  lossyPending: boolean;
}

/** This machine's boot id, or null where the kernel does not tell. */
export function currentBootId(): string | null {
  try {
    return readFileSync(BOOT_ID_PATH, "utf8").trim() || null;
  } catch {
    return null;
  }
}

export class BootRecorder {
  readonly #dir: string;
  readonly #bootId: string | null;
  /** Whether this start may have lost unsynced writes. */
  readonly lossy: boolean;

  /**
   * Decides whether this start is lossy and records this boot, synced, before anything
   * else is written. `checkpointsDir` exists; `cleanShutdown`: the marker was there.
   */
  constructor(checkpointsDir: string, cleanShutdown: boolean, bootId = currentBootId()) {
    this.#dir = checkpointsDir;
    this.#bootId = bootId;
    const last = readBootRecord(join(checkpointsDir, BOOT_RECORD_FILE));
    const machineRestarted = last !== null && (bootId === null || last.bootId !== bootId);
    this.lossy = last?.lossyPending === true || (!cleanShutdown && machineRestarted);
    this.#write(this.lossy);
  }

  /** The controller has this start's registration: nothing is pending any more. */
  reported(): void {
    if (this.lossy) this.#write(false);
  }

  #write(lossyPending: boolean): void {
    const record: BootRecord = { bootId: this.#bootId, lossyPending };
    writeFileAtomically(join(this.#dir, BOOT_RECORD_FILE), this.#dir, JSON.stringify(record));
  }
}

function readBootRecord(path: string): BootRecord | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<BootRecord>;
    return {
      bootId: typeof parsed.bootId === "string" ? parsed.bootId : null,
      lossyPending: parsed.lossyPending === true,
    };
  } catch {
    // Torn or damaged (it is written atomically, so only by hand): assume the worst.
    return { bootId: null, lossyPending: true };
  }
}
