/**
 * @module
 * The consume group's librdkafka rows (`run.ts`, group "consume"): the page-cache drain
 * as a librdkafka consumer (`rdlat.c -m drain`, default fetch sizes) gets it from Brook,
 * beside a null broker driven by the same client, run by run alternately. The null
 * broker here stamps each answer with the fetch offset (a copy per answer), which
 * librdkafka needs and the load generator does not, so it is a second null broker
 * started for these rows.
 */
import { join } from "node:path";
import { type NullBrokerOptions, startNullBroker } from "../processes.ts";
import type { GroupHarness } from "../report.ts";
import { summarize } from "../stats.ts";
import { buildRdlat, missingRdkafka, rdDrain, type RdDrainResult } from "./rdkafka.ts";

export interface RdkafkaDrainOptions {
  work: string;
  /** The harness's null broker options (this group starts its own with stamping). */
  nullOptions: NullBrokerOptions;
  brook: { port: number; pid: number };
  /** A one-partition topic on Brook holding `messages` messages, just written. */
  topic: string;
  messages: number;
  /** Row label: what the backlog is. */
  size: string;
  log: (message: string) => void;
}

export async function rdkafkaDrain(
  harness: GroupHarness,
  options: RdkafkaDrainOptions,
): Promise<void> {
  const { work, brook, topic, messages, size, log } = options;
  const row = {
    id: "consume.rdkafka.MBps",
    section: "consume",
    label: `librdkafka drain from page cache (default fetch sizes): ${size}`,
    unit: "MB/s",
    better: "higher" as const,
  };
  const missing = missingRdkafka();
  if (missing !== null) {
    harness.missing(row, missing);
    return;
  }
  const binary = join(work, "rdlat-drain");
  await buildRdlat(binary);
  const nullBroker = await startNullBroker({
    ...options.nullOptions,
    dir: join(work, "null-rdkafka"),
    stampFetchOffsets: true,
  });
  const onBrook: RdDrainResult[] = [];
  const onNull: RdDrainResult[] = [];
  try {
    await harness.repeat(async (run) => {
      const brookRun = await rdDrain(binary, {
        port: brook.port,
        topic,
        partitions: 1,
        messages,
        serverPid: brook.pid,
      });
      const nullRun = await rdDrain(binary, {
        port: nullBroker.kafkaPort,
        topic,
        partitions: 1,
        messages,
        serverPid: nullBroker.pid,
      });
      log(
        `librdkafka drain run ${run < 0 ? "warm-up" : run + 1}: brook ${brookRun.payloadMBPerSec.toFixed(0)} MB/s, ` +
          `null broker ${nullRun.payloadMBPerSec.toFixed(0)} MB/s`,
      );
      if (run < 0) return;
      onBrook.push(brookRun);
      onNull.push(nullRun);
    });
  } finally {
    await nullBroker.stop();
  }
  const cores = (runs: RdDrainResult[]) => ({
    brokerCores: median(runs.map((r) => r.serverCpuSeconds / r.seconds)),
    clientCores: median(runs.map((r) => r.clientCpuSeconds / r.seconds)),
  });
  harness.figure(
    {
      ...row,
      limitId: "limit.null.consume.rdkafka.MBps",
      limitName: "null",
      ...cores(onBrook),
      detail: onBrook,
    },
    onBrook.map((r) => r.payloadMBPerSec),
  );
  harness.figure(
    {
      id: "limit.null.consume.rdkafka.MBps",
      section: "limit",
      label:
        "null broker fetch from memory, the same librdkafka consumer (answers stamped with the fetch offset)",
      unit: "MB/s",
      better: "higher",
      ...cores(onNull),
    },
    onNull.map((r) => r.payloadMBPerSec),
  );
}

function median(values: number[]): number {
  return summarize(values).median;
}
