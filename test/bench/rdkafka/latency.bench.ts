/**
 * @module
 * The latency group's librdkafka rows (`run.ts`, group "latency"): end-to-end and
 * acknowledgement latency as a librdkafka user sees it (`rdlat.c`: linger.ms=0,
 * acks=all, 8 partitions of a fresh topic, every message timed from when it was due).
 *
 * - idle: each of the group's rates on an otherwise idle broker.
 * - noisy neighbour: the first rate while, on the same node, a producer writes as fast
 *   as it can into another topic (4 connections, 6 partitions, acks=1) and a consumer
 *   drains a backlog of a third, evicted from the page cache first where the harness may
 *   (drop_caches). The neighbour's rate is set beside what it gets alone in the same run.
 */
import { join } from "node:path";
import type { ConsumeResult, ProduceResult, ProduceSpec } from "../loadgen.ts";
import { createTopic, deleteTopic, dropCaches, runLoadgen } from "../processes.ts";
import type { GroupHarness } from "../report.ts";
import { buildRdlat, missingRdkafka, rdLatency, type RdLatencyResult } from "./rdkafka.ts";

const MB = 1e6;
const PARTITIONS = 8;
const NEIGHBOUR_PARTITIONS = 6;

export interface RdkafkaLatencySizes {
  latencyRates: number[];
  latencyMs: number;
  backlogBytes: number;
  batchBytes: number;
  window: number;
  fetchMaxBytes: number;
}

export interface RdkafkaLatencyOptions {
  work: string;
  sizes: RdkafkaLatencySizes;
  /** The harness's single node, and its process (for the CPU it uses). */
  port: number;
  pid: number;
  log: (message: string) => void;
}

export async function rdkafkaLatency(
  harness: GroupHarness,
  options: RdkafkaLatencyOptions,
): Promise<void> {
  const { work, sizes, port, pid, log } = options;
  const missing = missingRdkafka();
  if (missing !== null) {
    for (const rate of sizes.latencyRates) {
      harness.missing(
        {
          id: `${idOf(rate)}.p99`,
          section: "latency",
          label: `librdkafka ${rate / MB} MB/s`,
          unit: "ms",
          better: "lower",
        },
        missing,
      );
    }
    return;
  }
  const binary = join(work, "rdlat");
  log(`built the librdkafka latency client in ${(await buildRdlat(binary)).toFixed(1)} s`);
  const once = (topic: string, rate: number) =>
    rdLatency(binary, {
      port,
      topic,
      partitions: PARTITIONS,
      rateBytesPerSec: rate,
      messageBytes: 1024,
      seconds: sizes.latencyMs / 1000,
      acks: "all",
      serverPid: pid,
    });

  for (const rate of sizes.latencyRates) {
    const runs: RdLatencyResult[] = [];
    const cores: number[] = [];
    await harness.repeat(async (run) => {
      const topic = `rdlat-${rate / MB}-${run + 1}`;
      await createTopic(port, topic, PARTITIONS);
      const result = await once(topic, rate);
      // rdlat reads the broker's CPU over its measured window (from /proc).
      const brokerCores = result.serverCpuSeconds / result.seconds;
      await deleteTopic(port, topic);
      log(
        `librdkafka latency ${rate / MB} MB/s run ${runName(run)}: ${summary(result)}; broker ${brokerCores.toFixed(2)} cores`,
      );
      if (run >= 0) {
        runs.push(result);
        cores.push(brokerCores);
      }
    });
    figures(harness, idOf(rate), `${what(rate)}, idle broker`, runs);
    harness.figure(
      {
        id: `${idOf(rate)}.broker.cores`,
        section: "latency",
        unit: "cores",
        better: "lower",
        label: `broker CPU (cores) serving librdkafka at ${what(rate)}: one record per batch`,
      },
      cores,
    );
  }

  // The noisy neighbour, at the first rate.
  const rate = sizes.latencyRates[0]!;
  const backlog = "rdlat-neighbour-backlog";
  await createTopic(port, backlog, 1);
  const fill = await runLoadgen<ProduceResult>({
    mode: "produce",
    host: "127.0.0.1",
    port,
    topic: backlog,
    partitions: 1,
    connections: 1,
    messageBytes: 1024,
    batchBytes: sizes.batchBytes,
    compression: "none",
    acks: 1,
    window: sizes.window,
    payloadBytesTarget: sizes.backlogBytes,
  });
  const neighbourMs = sizes.latencyMs + 3000; // rdlat connects for 2 s before it measures
  const neighbour = (topic: string): ProduceSpec => ({
    mode: "produce",
    host: "127.0.0.1",
    port,
    topic,
    partitions: NEIGHBOUR_PARTITIONS,
    connections: 4,
    messageBytes: 1024,
    batchBytes: sizes.batchBytes,
    compression: "none",
    acks: 1,
    window: sizes.window,
    durationMs: neighbourMs,
  });
  const runs: RdLatencyResult[] = [];
  const alone: number[] = [];
  const during: number[] = [];
  const drained: number[] = [];
  let cold: string | null = null;
  await harness.repeat(async (run) => {
    const neighbourTopic = `rdlat-neighbour-${run + 1}`;
    const topic = `rdlat-noisy-${run + 1}`;
    await createTopic(port, neighbourTopic, NEIGHBOUR_PARTITIONS);
    await createTopic(port, topic, PARTITIONS);
    const byItself = await runLoadgen<ProduceResult>(neighbour(neighbourTopic));
    cold = dropCaches();
    const [writer, reader, result] = await Promise.all([
      runLoadgen<ProduceResult>(neighbour(neighbourTopic)),
      runLoadgen<ConsumeResult>({
        mode: "consume",
        host: "127.0.0.1",
        port,
        topic: backlog,
        partitions: 1,
        messageBytes: 1024,
        wireBytesTarget: fill.batchBytes,
        maxBytes: sizes.fetchMaxBytes,
        partitionMaxBytes: sizes.fetchMaxBytes,
        durationMs: neighbourMs,
      }),
      once(topic, rate),
    ]);
    await deleteTopic(port, topic);
    await deleteTopic(port, neighbourTopic);
    log(
      `librdkafka latency ${rate / MB} MB/s, noisy neighbour, run ${runName(run)}: ${summary(result)}; ` +
        `neighbour ${writer.payloadMBPerSec.toFixed(0)} MB/s (alone ${byItself.payloadMBPerSec.toFixed(0)}), ` +
        `backlog drained at ${reader.batchMBPerSec.toFixed(0)} MB/s`,
    );
    if (run < 0) return;
    runs.push(result);
    alone.push(byItself.payloadMBPerSec);
    during.push(writer.payloadMBPerSec);
    drained.push(reader.batchMBPerSec);
  });
  await deleteTopic(port, backlog);
  const backlogLabel = `${(fill.batchBytes / 2 ** 20).toFixed(0)} MiB backlog${cold === null ? ", cold" : ", warm (drop_caches not permitted)"}`;
  figures(
    harness,
    `latency.rdkafka.noisy.${rate / MB}MBps`,
    `${what(rate)}, beside a producer flat out and a drain of a ${backlogLabel}`,
    runs,
  );
  const neighbourLabel = `neighbour producer: 1 KiB msgs, 4 connections, ${NEIGHBOUR_PARTITIONS} parts, acks=1`;
  harness.figure(
    {
      id: "latency.noisy.neighbour.alone.MBps",
      section: "latency",
      unit: "MB/s",
      better: "higher",
      label: `${neighbourLabel}, alone`,
    },
    alone,
  );
  harness.figure(
    {
      id: "latency.noisy.neighbour.MBps",
      section: "latency",
      unit: "MB/s",
      better: "higher",
      label: `${neighbourLabel}, beside the librdkafka latency run and the drain (target ≥ 0.8 of alone)`,
      limitId: "latency.noisy.neighbour.alone.MBps",
      limitName: "alone",
    },
    during,
  );
  harness.figure(
    {
      id: "latency.noisy.drain.MBps",
      section: "latency",
      unit: "MB/s",
      better: "higher",
      label: `the drain of the ${backlogLabel}, beside them`,
    },
    drained,
  );
}

function idOf(rate: number): string {
  return `latency.rdkafka.${rate / MB}MBps`;
}

function what(rate: number): string {
  return `${rate / MB} MB/s of 1 KiB msgs, ${PARTITIONS} parts, acks=all, linger.ms=0`;
}

function runName(run: number): string {
  return run < 0 ? "warm-up" : String(run + 1);
}

function summary(r: RdLatencyResult): string {
  return (
    `p50 ${r.p50Ms.toFixed(2)} p99 ${r.p99Ms.toFixed(2)} p99.9 ${r.p999Ms.toFixed(2)} max ${r.maxMs.toFixed(1)} ms, ` +
    `ack p99 ${r.ackP99Ms.toFixed(2)} ms, ${r.stallsOver50Ms} stalls over 50 ms`
  );
}

/** End-to-end p50/p99/p99.9/max, acknowledgement p99 and stalls, each over the runs. */
function figures(harness: GroupHarness, id: string, label: string, runs: RdLatencyResult[]): void {
  const rows = [
    ["p50", "p50Ms", "produce → consume p50"],
    ["p99", "p99Ms", "produce → consume p99"],
    ["p99.9", "p999Ms", "produce → consume p99.9"],
    ["max", "maxMs", "produce → consume max"],
    ["ack.p99", "ackP99Ms", "produce → acknowledgement p99"],
  ] as const;
  for (const [p, key, what] of rows) {
    harness.figure(
      {
        id: `${id}.${p}`,
        section: "latency",
        unit: "ms",
        better: "lower",
        label: `librdkafka ${what}, ${label}`,
        ...(p === "p50" ? { detail: runs } : {}),
      },
      runs.map((r) => r[key]),
    );
  }
  harness.figure(
    {
      id: `${id}.stalls`,
      section: "latency",
      unit: "stalls",
      better: "lower",
      label: `librdkafka: stalls (runs of messages over 50 ms end to end), ${label}`,
    },
    runs.map((r) => r.stallsOver50Ms),
  );
}
