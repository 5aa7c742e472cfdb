/**
 * The leader-epoch-checkpoint file across a restart: the cache drops, at load, an epoch
 * begun at the log end with no batch after it, but the file is rewritten only with the
 * next change (one synced write per partition per start instead of two). That change
 * must come before this node appends anything: as a follower it may fetch batches of an
 * older epoch at that offset, and a file still naming the newer epoch there would, after
 * a crash, describe those batches wrongly.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MetadataImage, type MetadataRecord } from "../cluster/metadata-image.ts";
import { LogManager } from "../storage/log-manager.ts";
import { ManualClock } from "../util/clock.ts";
import { systemTimers } from "../util/timers.ts";
import { readLeaderEpochs } from "./leader-epoch-file.ts";
import { ReplicaManager } from "./replica-manager.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Node 1's process `incarnation` on `dataDir`, after `records` were applied. */
function start(dataDir: string, incarnation: string, records: MetadataRecord[]) {
  const clock = new ManualClock();
  const image = new MetadataImage();
  const logs = new LogManager({ dataDir, nodeId: 1, clock, image, replicated: true });
  const replicas = new ReplicaManager({
    nodeId: 1,
    incarnation,
    image,
    logs,
    clock,
    timers: systemTimers,
    submitAlterPartition: () => new Promise(() => {}),
  });
  for (const record of records) image.apply(record);
  return { logs, replicas, image };
}

const broker = (nodeId: number, incarnation: string): MetadataRecord => ({
  type: "registerBroker",
  nodeId,
  host: "127.0.0.1",
  port: 9000 + nodeId,
  rack: null,
  incarnation,
});

const partition = (leader: number, leaderEpoch: number): MetadataRecord => ({
  type: "partition",
  topicId: "id-t",
  partition: 0,
  replicas: [1, 2],
  leader,
  leaderEpoch,
  isr: [1, 2],
  partitionEpoch: leaderEpoch,
});

test("replica manager: an epoch cut at load is written out before the partition follows", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "brook-replica-manager-"));
  dirs.push(dataDir);
  const topic: MetadataRecord = { type: "topic", name: "t", topicId: "id-t" };
  // Node 1 leads epoch 3 of an empty log: the file says epoch 3 begins at 0.
  const first = start(dataDir, "a", [broker(1, "a"), broker(2, "b"), topic, partition(1, 3)]);
  const dir = first.logs.get("t", 0)!.dir;
  expect(readLeaderEpochs(dir)).toEqual([{ epoch: 3, startOffset: 0 }]);
  first.logs.close();

  // A new process whose metadata so far still has that leadership: it leads nothing
  // (not registered yet), and the file keeps the entry the cache dropped.
  const second = start(dataDir, "c", [broker(1, "a"), broker(2, "b"), topic, partition(1, 3)]);
  expect(readLeaderEpochs(dir)).toEqual([{ epoch: 3, startOffset: 0 }]);
  expect(second.replicas.followed()).toEqual([]);
  // Registered, and node 2 leads epoch 5: before fetching, the file matches the cache.
  second.image.apply(broker(1, "c"));
  second.image.apply(partition(2, 5));
  expect(second.replicas.followed().map((f) => f.leaderId)).toEqual([2]);
  expect(readLeaderEpochs(dir)).toEqual([]);
  second.logs.close();
});
