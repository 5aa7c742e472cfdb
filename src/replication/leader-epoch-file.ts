/**
 * The leader-epoch cache on disk: `leader-epoch-checkpoint` in each partition's
 * directory, in Kafka's text format, written atomically (temporary file, fsync, rename):
 *
 * ```
 * 0            version
 * 2            number of entries
 * 0 0          epoch, start offset
 * 3 1200
 * ```
 *
 * It is written whenever an entry changes (a new epoch, a truncation), which happens on
 * leader changes, not per append. A missing or malformed file is rebuilt from the
 * batches' own partition leader epochs (`PartitionLog.epochStarts`), so the file is a
 * shortcut, never the only record.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomically } from "../storage/checkpoint.ts";
import type { EpochEntry } from "./leader-epoch-cache.ts";

export const LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint";
const VERSION = "0";

export function writeLeaderEpochs(dir: string, entries: readonly EpochEntry[]): void {
  let text = `${VERSION}\n${entries.length}\n`;
  for (const { epoch, startOffset } of entries) text += `${epoch} ${startOffset}\n`;
  writeFileAtomically(join(dir, LEADER_EPOCH_CHECKPOINT), dir, text);
}

/** The stored entries, or null when the file is missing or not well formed. */
export function readLeaderEpochs(dir: string): EpochEntry[] | null {
  let text: string;
  try {
    text = readFileSync(join(dir, LEADER_EPOCH_CHECKPOINT), "utf8");
  } catch {
    return null;
  }
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const count = Number(lines[1]);
  if (lines[0] !== VERSION || !Number.isSafeInteger(count) || lines.length !== count + 2)
    return null;
  const entries: EpochEntry[] = [];
  for (const line of lines.slice(2)) {
    const match = /^(\d+) (\d+)$/.exec(line);
    if (match === null) return null;
    const epoch = Number(match[1]);
    const startOffset = Number(match[2]);
    const previous = entries.at(-1);
    if (!Number.isSafeInteger(epoch) || !Number.isSafeInteger(startOffset)) return null;
    if (previous !== undefined && (epoch <= previous.epoch || startOffset <= previous.startOffset))
      return null;
    entries.push({ epoch, startOffset });
  }
  return entries;
}
