/**
 * Startup benchmark: time from spawning a broker process to its "Node serving" line, on
 * a data dir of 1,000 partitions with several segments each. A script, not a test:
 *
 *   ./node_modules/.bin/bun test/bench/startup.bench.ts [--partitions N] [--segments N] [--runs N]
 *
 * Figures (median of --runs starts each):
 *
 * - empty: a fresh data dir; the machine's floor for starting the process at all.
 * - clean: after SIGTERM (checkpoints and the clean-shutdown marker written): no segment
 *   is verified; each log reads its index files and its active segment's tail headers.
 * - kill -9: the steady state of a running broker, then SIGKILL: every partition rolled,
 *   the cleaner wrote its recovery-point checkpoint (every 5 s), then one more small
 *   batch per partition. Only the active segments (past the recovery point) are verified.
 * - kill -9, no checkpoint: the same with the recovery-point checkpoint removed, so every
 *   segment of every log is verified (what the recovery point saves).
 *
 * Each figure comes with the broker's own account (segments scanned, .log bytes read,
 * ms spent loading logs). Figures never fail anything; the data dir is deleted.
 *
 * `run.ts` reuses `buildStartupDataDir` for its "start to ready, 1,000 partitions" row.
 */
import { rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import { startBroker, tempDir, type TestBroker } from "../helpers/broker.ts";
import { RawClient } from "../helpers/raw-client.ts";

const PRODUCE = 0,
  CREATE_TOPICS = 19;
const PARTITIONS_PER_TOPIC = 100;
const SEGMENT_BYTES = 16 * 1024;
const READY_MS = 300_000;

function argument(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} needs a positive integer`);
  return value;
}

const topicName = (t: number) => `bench-${t}`;
const topicsOf = (partitions: number) => Math.ceil(partitions / PARTITIONS_PER_TOPIC);
const partitionsOf = (partitions: number, t: number) =>
  Math.min(PARTITIONS_PER_TOPIC, partitions - t * PARTITIONS_PER_TOPIC);

/** About 12 KiB: one batch per 16 KiB segment, so every round rolls every partition. */
const BATCH = buildBatch({
  baseTimestamp: Date.now(),
  records: Array.from({ length: 12 }, (_, i) => ({ key: `k${i}`, value: "v".repeat(1000) })),
});
/** Fits beside a BATCH in a segment: unflushed data that does not roll. */
const SMALL_BATCH = buildBatch({
  baseTimestamp: Date.now(),
  records: [{ value: "s".repeat(100) }],
});
/** Longer than the cleaner's checkpoint interval (5 s) plus one tick. */
const CHECKPOINT_WAIT_MS = 6_500;

interface Start {
  broker: TestBroker;
  ms: number;
  account: string;
}

async function timedStart(dataDir: string): Promise<Start> {
  const began = performance.now();
  const broker = await startBroker({ dataDir, readyMs: READY_MS });
  const ms = performance.now() - began;
  const line = /Logs (?:loaded|recovered)[^\n]*/.exec(broker.stderr())?.[0] ?? "";
  const field = (name: string) =>
    /\b(\w+)=/.test(line) ? (new RegExp(`${name}=(\\d+)`).exec(line)?.[1] ?? "?") : "?";
  const account =
    `segments=${field("segments")} scanned=${field("segmentsScanned")} ` +
    `bytesRead=${field("bytesRead")} loadMs=${field("ms")}`;
  return { broker, ms, account };
}

async function produceRound(
  broker: TestBroker,
  partitions: number,
  records = BATCH,
): Promise<void> {
  const client = await RawClient.connect(broker.port);
  const answers = [];
  for (let t = 0; t < topicsOf(partitions); t++) {
    const partitionData = Array.from({ length: partitionsOf(partitions, t) }, (_, index) => ({
      index,
      records,
    }));
    answers.push(
      client.request(PRODUCE, 9, {
        transactionalId: null,
        acks: 1,
        timeoutMs: 30_000,
        topicData: [{ name: topicName(t), partitionData }],
      }),
    );
  }
  for (const answer of await Promise.all(answers)) {
    for (const p of answer.responses[0].partitionResponses)
      if (p.errorCode !== 0) throw new Error(`Produce failed: ${p.errorCode}`);
  }
  client.close();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function report(label: string, starts: Start[]): void {
  const ms = median(starts.map((s) => s.ms));
  console.log(
    `${label.padEnd(26)} ${ms.toFixed(0).padStart(6)} ms  (runs: ${starts.map((s) => s.ms.toFixed(0)).join(", ")})  ${starts.at(-1)!.account}`,
  );
}

export interface StartupDataDirOptions {
  dataDir: string;
  partitions: number;
  segmentsPerPartition: number;
  /** How to run Brook: default `bun src/main.ts`; run.ts passes the built executable. */
  command?: string[];
}

/**
 * Fills `dataDir` with `partitions` partitions (topics of 100), each with at least
 * `segmentsPerPartition` segments of about 12 KiB, then stops the broker cleanly.
 */
export async function buildStartupDataDir(options: StartupDataDirOptions): Promise<void> {
  const { dataDir, partitions } = options;
  const broker = await startBroker({ dataDir, readyMs: READY_MS, command: options.command });
  try {
    const admin = await RawClient.connect(broker.port);
    const created = await admin.request(CREATE_TOPICS, 7, {
      topics: Array.from({ length: topicsOf(partitions) }, (_, t) => ({
        name: topicName(t),
        numPartitions: partitionsOf(partitions, t),
        replicationFactor: 1,
        assignments: [],
        configs: [{ name: "segment.bytes", value: String(SEGMENT_BYTES) }],
      })),
      timeoutMs: 30_000,
    });
    for (const topic of created.topics)
      if (topic.errorCode !== 0) throw new Error(`CreateTopics failed: ${topic.errorCode}`);
    admin.close();
    for (let round = 0; round < options.segmentsPerPartition; round++)
      await produceRound(broker, partitions);
  } finally {
    await broker.stop();
  }
}

async function main(): Promise<void> {
  const partitions = argument("partitions", 1000);
  const segmentsPerPartition = argument("segments", 4);
  const runs = argument("runs", 3);
  const topics = topicsOf(partitions);
  const dataDir = tempDir("brook-bench-startup-");
  const emptyDir = tempDir("brook-bench-empty-");
  try {
    await buildStartupDataDir({ dataDir, partitions, segmentsPerPartition });
    let broker: TestBroker;
    console.log(
      `data dir: ${partitions} partitions in ${topics} topics, ${segmentsPerPartition}+ segments of ~12 KiB each per partition`,
    );

    const empty: Start[] = [];
    for (let run = 0; run < runs; run++) {
      rmSync(emptyDir, { recursive: true, force: true });
      const start = await timedStart(emptyDir);
      empty.push(start);
      await start.broker.stop();
    }

    const clean: Start[] = [];
    for (let run = 0; run < runs; run++) {
      const start = await timedStart(dataDir);
      clean.push(start);
      await start.broker.stop();
    }

    const killed: Start[] = [];
    broker = (await timedStart(dataDir)).broker;
    for (let run = 0; run < runs; run++) {
      await produceRound(broker, partitions);
      await new Promise((resolve) => setTimeout(resolve, CHECKPOINT_WAIT_MS));
      await produceRound(broker, partitions, SMALL_BATCH);
      await broker.kill();
      const start = await timedStart(dataDir);
      killed.push(start);
      broker = start.broker;
    }

    const unchecked: Start[] = [];
    for (let run = 0; run < runs; run++) {
      await produceRound(broker, partitions);
      await broker.kill();
      unlinkSync(join(dataDir, "checkpoints", "recovery-point-offset-checkpoint"));
      const start = await timedStart(dataDir);
      unchecked.push(start);
      broker = start.broker;
    }
    await broker.stop();

    console.log('startup: spawn to "Node serving", median');
    report("empty data dir", empty);
    report("after clean stop", clean);
    report("after kill -9", killed);
    report("kill -9, no checkpoint", unchecked);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(emptyDir, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
