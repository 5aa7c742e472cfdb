/**
 * The benchmark harness (`npm run bench`): one run, one table. It builds the single
 * executable, starts it on loopback with a fresh data dir, starts the null broker (the
 * machine's limit, also compiled), drives both with the same load generator
 * (`loadgen.ts`, a process of its own per run) and kcat, and prints one markdown table;
 * the same rows go to `bench/results/<ISO date>.json` with a machine description.
 *
 *   bun test/bench/run.ts [--quick | --full] [--runs N] [--only REGEX] [--out PATH]
 *
 * - default: a representative subset (see PRODUCE_DEFAULT), about 8 minutes (10 with the
 *   peers installed).
 * - --quick: tiny sizes, one counted run per figure, under 2 minutes (CI runs this; it
 *   checks that every path works, its figures mean little). Results go to
 *   bench/results/tmp/ (ignored by git).
 * - --full: the whole produce matrix, 2 GB consume backlog, longer runs.
 * - --only: run only the groups whose name matches (tcp, produce, kcat, consume,
 *   latency, cluster, backlog, peers, footprint, storage).
 *
 * The backlog group (a consumer 10 GiB behind while producers write) and the storage
 * group (a 20 GB log) write that much to the temporary directory's filesystem: each
 * checks first that it has the bytes plus 10 GiB free, and says "not measured: only N
 * GiB free" in its rows instead when not.
 *
 * Every figure is the median (and min–max) of its counted runs, each figure preceded by
 * one uncounted warm-up run: these machines hand idle memory back to the host, so the
 * first large write after a pause is slow. Brook and its limit alternate run by run, so
 * a noisy neighbour hits both. Figures never fail anything; an error in a group (a
 * broker answering an error code, a crash) is shown in its row and makes the exit code 1.
 * Everything started is stopped by pid; data dirs are removed.
 *
 * The peers group (NATS JetStream, Redis Streams) runs only what is installed (the
 * harness installs nothing): it starts each peer on loopback, builds the Go JetStream
 * driver into the temporary directory, and measures Brook again beside them run by run
 * (`peers/peers.ts`, bench/README.md "peers").
 */
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO, type TestBroker } from "../helpers/broker.ts";
import type {
  ConsumeResult,
  ConsumeSpec,
  LatencyResult,
  ProduceResult,
  ProduceSpec,
  TcpResult,
} from "./loadgen.ts";
import { describeMachine, diskShortfall } from "./machine.ts";
import {
  brookArgs,
  buildExecutable,
  cpuSeconds,
  createTopic,
  deleteTopic,
  dropCaches,
  endOffsets,
  EXECUTABLE,
  installed,
  kcatProduce,
  type NullBroker,
  nullBrokerArgs,
  type NullBrokerOptions,
  RssSampler,
  runLoadgen,
  type Server,
  startBrook,
  startNullBroker,
  startToReady,
  writeKcatFile,
} from "./processes.ts";
import {
  buildJetStreamDriver,
  JETSTREAM_WINDOW,
  jetStreamConsume,
  jetStreamPublish,
  missingPeer,
  type PeerName,
  type PeerRun,
  redisRun,
  startNats,
  startRedis,
} from "./peers/peers.ts";
import { formatNumber, ratio, renderTable, type Better, type Row } from "./report.ts";
import { clusterBench } from "./cluster.bench.ts";
import { rdkafkaDrain } from "./rdkafka/drain.bench.ts";
import { rdkafkaLatency } from "./rdkafka/latency.bench.ts";
import { buildStartupDataDir } from "./startup.bench.ts";
import {
  type LogFigures,
  measureStorageRead,
  pageCacheShare,
  setupStorageRead,
} from "./storage-read.bench.ts";
import { summarize } from "./stats.ts";
import type { BenchCompression } from "./workload.ts";

const KIB = 1024;
const MIB = 1024 * 1024;
const MB = 1e6;
const GB = 1e9;

type Mode = "quick" | "default" | "full";

interface Options {
  mode: Mode;
  runs: number;
  only: RegExp | null;
  out: string | null;
}

function parseOptions(argv: string[]): Options {
  const value = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i < 0 ? null : (argv[i + 1] ?? null);
  };
  const quick = argv.includes("--quick");
  const full = argv.includes("--full");
  if (quick && full) throw new Error("Choose --quick or --full, not both");
  const mode: Mode = quick ? "quick" : full ? "full" : "default";
  const runs = Number(value("runs") ?? (quick ? 1 : 3));
  if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs needs a positive integer");
  const only = value("only");
  return { mode, runs, only: only === null ? null : new RegExp(only), out: value("out") };
}

/** Sizes per mode: the default must stay near 10 minutes, quick under 2. */
interface Sizes {
  produceMs: number;
  batchBytes: number;
  window: number;
  tcpBytes: number;
  kcatMessages: number;
  backlogBytes: number;
  fetchMaxBytes: number;
  latencyMs: number;
  latencyRates: number[];
  idleMs: number;
  startupPartitions: number;
  startupSegments: number;
  /** The storage group's two logs: read and append cost must not depend on the size. */
  storageSmallBytes: number;
  storageBigBytes: number;
  storageReads: number;
  storageAppends: number;
  /** The backlog group: how far behind its consumer starts (the backlog it drains). */
  behindBytes: number;
  /** Messages per peer produce run, by message size; Brook's runs last produceMs. */
  peerMessages100B: number;
  peerMessages1KiB: number;
  /** The cluster group: leader kills measured, and the log a wiped follower copies again. */
  failoverKills: number;
  rereplicateBytes: number;
}

const SIZES: Record<Mode, Sizes> = {
  quick: {
    produceMs: 400,
    batchBytes: 64 * KIB,
    window: 32,
    tcpBytes: 256 * MIB,
    kcatMessages: 20_000,
    backlogBytes: 16 * MIB,
    fetchMaxBytes: 32 * MIB,
    latencyMs: 1000,
    latencyRates: [10 * MB],
    idleMs: 500,
    startupPartitions: 100,
    startupSegments: 1,
    storageSmallBytes: 16 * MIB,
    storageBigBytes: 256 * MIB,
    storageReads: 2000,
    storageAppends: 20,
    behindBytes: 64 * MIB,
    peerMessages100B: 40_000,
    peerMessages1KiB: 20_000,
    failoverKills: 2,
    rereplicateBytes: 32 * MIB,
  },
  default: {
    produceMs: 4000,
    batchBytes: 64 * KIB,
    window: 32,
    tcpBytes: 2048 * MIB,
    kcatMessages: 1_000_000,
    backlogBytes: 1024 * MIB,
    fetchMaxBytes: 32 * MIB,
    latencyMs: 5000,
    latencyRates: [10 * MB, 50 * MB],
    idleMs: 2000,
    startupPartitions: 1000,
    startupSegments: 4,
    storageSmallBytes: GB,
    storageBigBytes: 20 * GB,
    storageReads: 10_000,
    storageAppends: 50,
    behindBytes: 10 * 1024 * MIB,
    peerMessages100B: 800_000,
    peerMessages1KiB: 400_000,
    failoverKills: 10,
    rereplicateBytes: GB,
  },
  full: {
    produceMs: 5000,
    batchBytes: 64 * KIB,
    window: 32,
    tcpBytes: 4096 * MIB,
    kcatMessages: 2_000_000,
    backlogBytes: 2048 * MIB,
    fetchMaxBytes: 32 * MIB,
    latencyMs: 10_000,
    latencyRates: [10 * MB, 50 * MB],
    idleMs: 2000,
    startupPartitions: 1000,
    startupSegments: 4,
    storageSmallBytes: GB,
    storageBigBytes: 20 * GB,
    storageReads: 20_000,
    storageAppends: 100,
    behindBytes: 10 * 1024 * MIB,
    peerMessages100B: 1_600_000,
    peerMessages1KiB: 800_000,
    failoverKills: 20,
    rereplicateBytes: GB,
  },
};

interface ProduceConfig {
  messageBytes: number;
  producers: number;
  partitions: number;
  acks: number;
  compression: BenchCompression;
}

function configId(c: ProduceConfig): string {
  return `${c.messageBytes}B.${c.producers}prod.${c.partitions}part.acks${c.acks}.${c.compression}`;
}

function configLabel(c: ProduceConfig): string {
  const size = c.messageBytes >= KIB ? `${c.messageBytes / KIB} KiB` : `${c.messageBytes} B`;
  return `${size}, ${c.producers} prod, ${c.partitions} part, acks=${c.acks}, ${c.compression}`;
}

const PRODUCE_FULL: ProduceConfig[] = [];
for (const messageBytes of [100, 1024]) {
  for (const producers of [1, 4]) {
    for (const partitions of [1, 8]) {
      for (const acks of [1, -1]) {
        for (const compression of ["none", "lz4"] as const)
          PRODUCE_FULL.push({ messageBytes, producers, partitions, acks, compression });
      }
    }
  }
}

/** One change at a time from the 1 KiB baseline, plus a corner with all of them. */
const PRODUCE_DEFAULT: ProduceConfig[] = [
  { messageBytes: 1024, producers: 1, partitions: 1, acks: 1, compression: "none" },
  { messageBytes: 100, producers: 1, partitions: 1, acks: 1, compression: "none" },
  { messageBytes: 1024, producers: 4, partitions: 8, acks: 1, compression: "none" },
  { messageBytes: 1024, producers: 1, partitions: 1, acks: -1, compression: "none" },
  { messageBytes: 1024, producers: 1, partitions: 1, acks: 1, compression: "lz4" },
  { messageBytes: 100, producers: 4, partitions: 8, acks: -1, compression: "lz4" },
];

/** Baseline and the corner: every code path (100 B, 4 producers, 8 partitions, acks=-1, lz4). */
const PRODUCE_QUICK: ProduceConfig[] = [PRODUCE_DEFAULT[0]!, PRODUCE_DEFAULT[5]!];

/** The config whose runs give the "RSS under produce load" row: the heaviest, 1 KiB if run. */
function rssConfig(configs: readonly ProduceConfig[]): ProduceConfig | undefined {
  const heavy = configs.filter((c) => c.producers === 4 && c.partitions === 8);
  return heavy.find((c) => c.messageBytes === 1024) ?? heavy[0];
}
const CONSUME_MESSAGE_BYTES = 1024;

/** The backlog group's producers: the produce group's 1 KiB, 4 producers, 8 partitions, acks=1. */
const BEHIND_PRODUCE: ProduceConfig = PRODUCE_DEFAULT[2]!;

/** A peer produce config: Brook runs it on one partition, acks=1, no compression. */
interface PeerConfig {
  messageBytes: number;
  producers: number;
}

const PEERS_QUICK: PeerConfig[] = [
  { messageBytes: 100, producers: 4 },
  { messageBytes: 1024, producers: 4 },
];
const PEERS_DEFAULT: PeerConfig[] = PEERS_QUICK;
const PEERS_FULL: PeerConfig[] = [
  ...PEERS_DEFAULT,
  { messageBytes: 100, producers: 1 },
  { messageBytes: 1024, producers: 1 },
];
/** Redis XADDs in flight per connection, and per write. */
const REDIS_WINDOW = 256;
const REDIS_CHUNK = 32;
/** Entries per XRANGE when draining. */
const REDIS_RANGE_COUNT = 10_000;
const PEER_TITLE: Record<PeerName, string> = {
  jetstream: "NATS JetStream",
  redis: "Redis Streams",
};
const PEER_SHORT: Record<PeerName, string> = { jetstream: "JetStream", redis: "Redis" };

function sizeLabel(bytes: number): string {
  return bytes >= KIB ? `${bytes / KIB} KiB` : `${bytes} B`;
}

/** 16 MiB, 1 GiB, 20 GB: a size as the rows name it (and their ids, without the space). */
function bytesLabel(bytes: number): string {
  if (bytes >= GB && bytes % GB === 0) return `${bytes / GB} GB`;
  return bytes >= 1024 * MIB && bytes % (1024 * MIB) === 0
    ? `${bytes / (1024 * MIB)} GiB`
    : `${Math.round(bytes / MIB)} MiB`;
}

function countLabel(count: number): string {
  if (count >= 1e6) return `${(count / 1e6).toFixed(2).replace(/\.?0+$/, "")}M`;
  return count >= 1e3 ? `${Math.round(count / 1e3)}k` : String(count);
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const median = (values: number[]) => summarize(values).median;

class Harness {
  readonly rows: Row[] = [];
  errors = 0;
  constructor(
    readonly options: Options,
    readonly sizes: Sizes,
  ) {}

  /** Runs `once(-1)` as the uncounted warm-up, then `once(0..runs-1)`; returns counted. */
  async repeat<T>(once: (run: number) => Promise<T>): Promise<T[]> {
    await once(-1);
    const counted: T[] = [];
    for (let run = 0; run < this.options.runs; run++) counted.push(await once(run));
    return counted;
  }

  figure(row: Omit<Row, "summary">, values: number[]): Row {
    const full: Row = { ...row, summary: values.length > 0 ? summarize(values) : null };
    this.rows.push(full);
    return full;
  }

  missing(row: Omit<Row, "summary" | "note">, note: string): void {
    this.rows.push({ ...row, summary: null, note });
  }

  async group(name: string, body: () => Promise<void>): Promise<void> {
    if (this.options.only !== null && !this.options.only.test(name)) return;
    const started = performance.now();
    log(`${name}…`);
    try {
      await body();
    } catch (error) {
      this.errors++;
      log(`${name} failed: ${errorMessage(error)}`);
      this.rows.push({
        id: `${name}.error`,
        section: name,
        label: "group failed",
        unit: "",
        better: "higher",
        summary: null,
        note: `error: ${errorMessage(error)}`,
      });
    }
    log(`${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

interface Measured<T> {
  result: T;
  /** Cores the server process used over the run (CPU seconds / the run's seconds). */
  serverCores: number;
  clientCores: number;
  rssPeakBytes: number;
}

/** One loadgen run against a server process, watching its CPU time and RSS. */
function measured<T extends { seconds: number }>(
  serverPid: number,
  spec: Parameters<typeof runLoadgen>[0],
): Promise<Measured<T>> {
  return measuredBy(serverPid, () => runLoadgen<T>(spec));
}

/** One driver run against a server process, watching its CPU time and RSS. */
async function measuredBy<T extends { seconds: number }>(
  serverPid: number,
  drive: () => Promise<T & { clientCpuSeconds: number }>,
): Promise<Measured<T>> {
  const cpuBefore = cpuSeconds(serverPid);
  const sampler = new RssSampler(serverPid);
  let result: T & { clientCpuSeconds: number };
  let rssPeakBytes: number;
  try {
    result = await drive();
  } finally {
    rssPeakBytes = sampler.stop();
  }
  return {
    result,
    serverCores: (cpuSeconds(serverPid) - cpuBefore) / result.seconds,
    clientCores: result.clientCpuSeconds / result.seconds,
    rssPeakBytes,
  };
}

/** Reads every .log file of a partition directory once with 1 MiB reads; MB/s. */
function rawSequentialRead(dir: string): number {
  const buffer = Buffer.allocUnsafe(MIB);
  const started = performance.now();
  let bytes = 0;
  for (const name of readdirSync(dir)
    .filter((file) => file.endsWith(".log"))
    .sort()) {
    const fd = openSync(join(dir, name), "r");
    try {
      for (;;) {
        const read = readSync(fd, buffer, 0, MIB, null);
        if (read === 0) break;
        bytes += read;
      }
    } finally {
      closeSync(fd);
    }
  }
  return bytes / MB / ((performance.now() - started) / 1000);
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const sizes = SIZES[options.mode];
  const harness = new Harness(options, sizes);
  const startedAt = new Date();
  const wallStarted = performance.now();
  const machine = describeMachine();
  log(`mode ${options.mode}, ${options.runs} counted run(s) per figure after one warm-up`);

  const work = mkdtempSync(join(tmpdir(), "brook-bench-"));
  const nullExecutable = join(work, "null-broker");
  const buildSeconds = await buildExecutable();
  await buildExecutable("test/bench/null-broker.ts", nullExecutable);
  log(`built ${EXECUTABLE} in ${buildSeconds.toFixed(1)} s`);

  const nullOptions: NullBrokerOptions = {
    executable: nullExecutable,
    dir: join(work, "null"),
    fetchMessageBytes: CONSUME_MESSAGE_BYTES,
    fetchBatchBytes: sizes.batchBytes,
  };
  let brook: TestBroker | null = null;
  let nullBroker: NullBroker | null = null;
  try {
    nullBroker = await startNullBroker(nullOptions);
    brook = await startBrook(join(work, "brook-data"));
    const brookPid = brook.pid;
    const brookPort = brook.port;
    const nullPid = nullBroker.pid;
    /** What deleting a Brook topic does to its page cache, done to the null broker's file. */
    const emptyNullTopic = (name: string) => {
      const file = join(nullOptions.dir, `${name}.bin`);
      if (existsSync(file)) truncateSync(file, 0);
    };
    const nullPort = nullBroker.kafkaPort;
    log(
      `brook pid ${brookPid} on 127.0.0.1:${brookPort}; null broker pid ${nullPid} on 127.0.0.1:${nullPort}`,
    );

    await harness.group("tcp", async () => {
      const runs = await harness.repeat(() =>
        runLoadgen<TcpResult>({
          mode: "tcp",
          host: "127.0.0.1",
          port: nullBroker!.sinkPort,
          bytes: sizes.tcpBytes,
          writeBytes: MIB,
        }),
      );
      harness.figure(
        {
          id: "limit.tcp.MBps",
          section: "limit",
          label: `raw loopback TCP, 1 MiB writes, ${sizes.tcpBytes / MIB} MiB`,
          unit: "MB/s",
          better: "higher",
          clientCores: median(runs.map((r) => r.clientCpuSeconds / r.seconds)),
        },
        runs.map((r) => r.MBPerSec),
      );
    });

    await harness.group("produce", async () => {
      const configs =
        options.mode === "full"
          ? PRODUCE_FULL
          : options.mode === "quick"
            ? PRODUCE_QUICK
            : PRODUCE_DEFAULT;
      const rssWatched = rssConfig(configs);
      for (const [index, config] of configs.entries()) {
        const topic = `produce-${index}`;
        await createTopic(brookPort, topic, config.partitions);
        const spec = (port: number, name: string): ProduceSpec => ({
          mode: "produce",
          host: "127.0.0.1",
          port,
          topic: name,
          partitions: config.partitions,
          connections: config.producers,
          messageBytes: config.messageBytes,
          batchBytes: sizes.batchBytes,
          compression: config.compression,
          acks: config.acks,
          window: sizes.window,
          durationMs: sizes.produceMs,
        });
        const brookRuns: Measured<ProduceResult>[] = [];
        const nullRuns: Measured<ProduceResult>[] = [];
        await harness.repeat(async (run) => {
          const onNull = await measured<ProduceResult>(
            nullPid,
            spec(nullPort, `${topic}-p${config.partitions}`),
          );
          const onBrook = await measured<ProduceResult>(brookPid, spec(brookPort, topic));
          log(
            `produce ${configLabel(config)} run ${run < 0 ? "warm-up" : run + 1}: brook ${onBrook.result.payloadMBPerSec.toFixed(0)} MB/s, null ${onNull.result.payloadMBPerSec.toFixed(0)} MB/s`,
          );
          if (run < 0) return;
          brookRuns.push(onBrook);
          nullRuns.push(onNull);
        });
        await deleteTopic(brookPort, topic);
        emptyNullTopic(`${topic}-p${config.partitions}`);
        const id = configId(config);
        const label = configLabel(config);
        const cores = (runs: Measured<unknown>[]) => ({
          brokerCores: median(runs.map((r) => r.serverCores)),
          clientCores: median(runs.map((r) => r.clientCores)),
        });
        harness.figure(
          {
            id: `produce.${id}.MBps`,
            section: "produce",
            label,
            unit: "MB/s",
            better: "higher",
            limitId: `limit.null.produce.${id}.MBps`,
            limitName: "null",
            ...cores(brookRuns),
            detail: brookRuns.map((r) => r.result),
          },
          brookRuns.map((r) => r.result.payloadMBPerSec),
        );
        harness.figure(
          {
            id: `produce.${id}.msgps`,
            section: "produce",
            label,
            unit: "msg/s",
            better: "higher",
            limitId: `limit.null.produce.${id}.msgps`,
            limitName: "null",
          },
          brookRuns.map((r) => r.result.messagesPerSec),
        );
        harness.figure(
          {
            id: `limit.null.produce.${id}.MBps`,
            section: "limit",
            label: `null broker produce: ${label}`,
            unit: "MB/s",
            better: "higher",
            limitId: "limit.tcp.MBps",
            limitName: "TCP",
            ...cores(nullRuns),
            detail: nullRuns.map((r) => r.result),
          },
          nullRuns.map((r) => r.result.payloadMBPerSec),
        );
        harness.figure(
          {
            id: `limit.null.produce.${id}.msgps`,
            section: "limit",
            label: `null broker produce: ${label}`,
            unit: "msg/s",
            better: "higher",
            hidden: true,
          },
          nullRuns.map((r) => r.result.messagesPerSec),
        );
        if (config === rssWatched) {
          harness.figure(
            {
              id: "footprint.rss.produce.MiB",
              section: "footprint",
              label: `RSS under produce load (peak, ${label})`,
              unit: "MiB",
              better: "lower",
              limitId: "limit.null.rss.produce.MiB",
              limitName: "null",
            },
            brookRuns.map((r) => r.rssPeakBytes / MIB),
          );
          harness.figure(
            {
              id: "limit.null.rss.produce.MiB",
              section: "limit",
              label: `null broker RSS under the same load (peak)`,
              unit: "MiB",
              better: "lower",
            },
            nullRuns.map((r) => r.rssPeakBytes / MIB),
          );
        }
      }
    });

    await harness.group("kcat", async () => {
      const base = { id: "produce.kcat", section: "produce", better: "higher" as Better };
      if (!installed("kcat")) {
        harness.missing(
          { ...base, label: "kcat -P (librdkafka)", unit: "MB/s" },
          "not installed (see bench/README.md)",
        );
        return;
      }
      const messageBytes = 1024;
      const file = join(work, "kcat-input.txt");
      writeKcatFile(file, sizes.kcatMessages, messageBytes);
      const topic = "kcat-0";
      await createTopic(brookPort, topic, 1);
      const brookRuns: { MBps: number; msgps: number; cores: number }[] = [];
      const nullRuns: { MBps: number; msgps: number; cores: number }[] = [];
      const one = async (pid: number, port: number, name: string) => {
        const before = cpuSeconds(pid);
        const result = await kcatProduce({
          port,
          topic: name,
          file,
          messages: sizes.kcatMessages,
          messageBytes,
        });
        return {
          MBps: result.payloadMBPerSec,
          msgps: result.messagesPerSec,
          cores: (cpuSeconds(pid) - before) / result.seconds,
        };
      };
      await harness.repeat(async (run) => {
        const onNull = await one(nullPid, nullPort, "kcat");
        const onBrook = await one(brookPid, brookPort, topic);
        log(
          `kcat run ${run < 0 ? "warm-up" : run + 1}: brook ${onBrook.MBps.toFixed(0)} MB/s, null ${onNull.MBps.toFixed(0)} MB/s`,
        );
        if (run < 0) return;
        brookRuns.push(onBrook);
        nullRuns.push(onNull);
      });
      const offsets = await endOffsets(brookPort, topic, 1);
      const expected = sizes.kcatMessages * (options.runs + 1);
      const note =
        offsets[0] === expected ? undefined : `log end offset ${offsets[0]}, expected ${expected}`;
      if (note !== undefined) throw new Error(`kcat produce lost messages: ${note}`);
      await deleteTopic(brookPort, topic);
      emptyNullTopic("kcat");
      const label = `kcat -P (librdkafka) of a file, 1 KiB lines, 1 part, acks=1, none`;
      harness.figure(
        {
          ...base,
          id: "produce.kcat.MBps",
          label,
          unit: "MB/s",
          limitId: "limit.null.kcat.MBps",
          limitName: "null",
          brokerCores: median(brookRuns.map((r) => r.cores)),
        },
        brookRuns.map((r) => r.MBps),
      );
      harness.figure(
        {
          ...base,
          id: "produce.kcat.msgps",
          label,
          unit: "msg/s",
          limitId: "limit.null.kcat.msgps",
          limitName: "null",
        },
        brookRuns.map((r) => r.msgps),
      );
      harness.figure(
        {
          id: "limit.null.kcat.MBps",
          section: "limit",
          label: `null broker: ${label}`,
          unit: "MB/s",
          better: "higher",
          limitId: "limit.tcp.MBps",
          limitName: "TCP",
          brokerCores: median(nullRuns.map((r) => r.cores)),
        },
        nullRuns.map((r) => r.MBps),
      );
      harness.figure(
        {
          id: "limit.null.kcat.msgps",
          section: "limit",
          label: `null broker: ${label}`,
          unit: "msg/s",
          better: "higher",
          hidden: true,
        },
        nullRuns.map((r) => r.msgps),
      );
    });

    await harness.group("consume", async () => {
      const topic = "backlog";
      await createTopic(brookPort, topic, 1);
      const fill = await runLoadgen<ProduceResult>({
        mode: "produce",
        host: "127.0.0.1",
        port: brookPort,
        topic,
        partitions: 1,
        connections: 1,
        messageBytes: CONSUME_MESSAGE_BYTES,
        batchBytes: sizes.batchBytes,
        compression: "none",
        acks: 1,
        window: sizes.window,
        payloadBytesTarget: sizes.backlogBytes,
      });
      log(`backlog: ${(fill.batchBytes / MIB).toFixed(0)} MiB in ${fill.seconds.toFixed(1)} s`);
      const spec = (port: number, name: string): ConsumeSpec => ({
        mode: "consume",
        host: "127.0.0.1",
        port,
        topic: name,
        partitions: 1,
        messageBytes: CONSUME_MESSAGE_BYTES,
        wireBytesTarget: fill.batchBytes,
        maxBytes: sizes.fetchMaxBytes,
        partitionMaxBytes: sizes.fetchMaxBytes,
      });
      const size = `${(fill.batchBytes / MIB).toFixed(0)} MiB backlog, 1 part, 1 KiB msgs, fetch max ${sizes.fetchMaxBytes / MIB} MiB`;
      const hot: Measured<ConsumeResult>[] = [];
      const nullHot: Measured<ConsumeResult>[] = [];
      await harness.repeat(async (run) => {
        const onNull = await measured<ConsumeResult>(nullPid, spec(nullPort, "backlog"));
        const onBrook = await measured<ConsumeResult>(brookPid, spec(brookPort, topic));
        if (onBrook.result.batchBytes !== fill.batchBytes) {
          throw new Error(
            `Consumer read ${onBrook.result.batchBytes} bytes of a ${fill.batchBytes}-byte backlog`,
          );
        }
        log(
          `consume run ${run < 0 ? "warm-up" : run + 1}: brook ${onBrook.result.payloadMBPerSec.toFixed(0)} MB/s, null ${onNull.result.payloadMBPerSec.toFixed(0)} MB/s`,
        );
        if (run < 0) return;
        hot.push(onBrook);
        nullHot.push(onNull);
      });
      harness.figure(
        {
          id: "consume.hot.MBps",
          section: "consume",
          label: `drain from page cache: ${size}`,
          unit: "MB/s",
          better: "higher",
          limitId: "limit.null.consume.MBps",
          limitName: "null",
          brokerCores: median(hot.map((r) => r.serverCores)),
          clientCores: median(hot.map((r) => r.clientCores)),
          detail: hot.map((r) => r.result),
        },
        hot.map((r) => r.result.payloadMBPerSec),
      );
      harness.figure(
        {
          id: "limit.null.consume.MBps",
          section: "limit",
          label: "null broker fetch from memory, same consumer",
          unit: "MB/s",
          better: "higher",
          limitId: "limit.tcp.MBps",
          limitName: "TCP",
          brokerCores: median(nullHot.map((r) => r.serverCores)),
          clientCores: median(nullHot.map((r) => r.clientCores)),
        },
        nullHot.map((r) => r.result.payloadMBPerSec),
      );
      await rdkafkaDrain(harness, {
        work,
        nullOptions,
        brook: { port: brookPort, pid: brookPid },
        topic,
        messages: fill.messages,
        size,
        log,
      });

      const cannot = dropCaches();
      if (cannot !== null) {
        harness.missing(
          {
            id: "consume.cold.MBps",
            section: "consume",
            label: `drain, cold cache: ${size}`,
            unit: "MB/s",
            better: "higher",
          },
          `not measured: drop_caches not permitted (${cannot})`,
        );
      } else {
        const cold: Measured<ConsumeResult>[] = [];
        const raw: number[] = [];
        const partitionDir = join(brook!.dataDir, `${topic}-0`);
        await harness.repeat(async (run) => {
          dropCaches();
          const onBrook = await measured<ConsumeResult>(brookPid, spec(brookPort, topic));
          dropCaches();
          const rawMBps = rawSequentialRead(partitionDir);
          log(
            `cold consume run ${run < 0 ? "warm-up" : run + 1}: brook ${onBrook.result.batchMBPerSec.toFixed(0)} MB/s, raw read ${rawMBps.toFixed(0)} MB/s`,
          );
          if (run < 0) return;
          cold.push(onBrook);
          raw.push(rawMBps);
        });
        // Raw reads count file bytes, so the cold ratio compares batch bytes with them.
        harness.figure(
          {
            id: "consume.cold.MBps",
            section: "consume",
            label: `drain, cold cache (drop_caches before each run), batch bytes: ${size}`,
            unit: "MB/s",
            better: "higher",
            limitId: "limit.rawread.cold.MBps",
            limitName: "raw read",
            brokerCores: median(cold.map((r) => r.serverCores)),
            clientCores: median(cold.map((r) => r.clientCores)),
          },
          cold.map((r) => r.result.batchMBPerSec),
        );
        harness.figure(
          {
            id: "limit.rawread.cold.MBps",
            section: "limit",
            label: "raw sequential read of the same .log files, cold, 1 MiB reads",
            unit: "MB/s",
            better: "higher",
          },
          raw,
        );
      }
      await deleteTopic(brookPort, topic);
    });

    await harness.group("latency", async () => {
      for (const rate of sizes.latencyRates) {
        const runs: LatencyResult[] = [];
        await harness.repeat(async (run) => {
          const topic = `latency-${rate / MB}-${run + 1}`;
          await createTopic(brookPort, topic, 1);
          const result = await runLoadgen<LatencyResult>({
            mode: "latency",
            host: "127.0.0.1",
            port: brookPort,
            topic,
            messageBytes: 1024,
            rateBytesPerSec: rate,
            durationMs: sizes.latencyMs,
          });
          await deleteTopic(brookPort, topic);
          log(
            `latency ${rate / MB} MB/s run ${run < 0 ? "warm-up" : run + 1}: p50 ${result.p50Ms.toFixed(2)} p99 ${result.p99Ms.toFixed(2)} p99.9 ${result.p999Ms.toFixed(2)} ms (${result.messages} msgs)`,
          );
          if (run >= 0) runs.push(result);
        });
        const label = (p: string) =>
          `produce → long-poll consumer ${p}, ${rate / MB} MB/s of 1 KiB msgs, acks=1`;
        for (const [p, key] of [
          ["p50", "p50Ms"],
          ["p99", "p99Ms"],
          ["p99.9", "p999Ms"],
        ] as const) {
          harness.figure(
            {
              id: `latency.${rate / MB}MBps.${p}`,
              section: "latency",
              label: label(p),
              unit: "ms",
              better: "lower",
              detail: p === "p50" ? runs : undefined,
            },
            runs.map((r) => r[key]),
          );
        }
      }
      await rdkafkaLatency(harness, { work, sizes, port: brookPort, pid: brookPid, log });
    });

    await harness.group("cluster", async () => {
      await clusterBench(harness, {
        work,
        sizes,
        single: { pid: brookPid, port: brookPort },
        log,
      });
    });

    await harness.group("backlog", async () => {
      const behind = bytesLabel(sizes.behindBytes);
      const config = BEHIND_PRODUCE;
      const ids = {
        alone: "backlog.produce.alone.MBps",
        during: "backlog.produce.behind.MBps",
        consumer: "backlog.consume.behind.MBps",
      };
      const labels = {
        alone: `produce alone: ${configLabel(config)}, ${sizes.produceMs / 1000} s, a fresh topic per run`,
        during: `the same producers while one consumer drains a ${behind} backlog from offset 0 (another topic)`,
        consumer: `that consumer, ${behind} behind: 1 part, 1 KiB msgs, fetch max ${sizes.fetchMaxBytes / MIB} MiB, while the producers write`,
      };
      const base = { section: "backlog", unit: "MB/s", better: "higher" as Better };
      const short = diskShortfall(work, sizes.behindBytes);
      if (short !== null) {
        for (const key of ["alone", "during", "consumer"] as const)
          harness.missing({ ...base, id: ids[key], label: labels[key] }, short);
        return;
      }
      const topic = "behind";
      await createTopic(brookPort, topic, 1);
      const alone: Measured<ProduceResult>[] = [];
      const during: Measured<ProduceResult>[] = [];
      const consumer: (ConsumeResult & { clientCpuSeconds: number })[] = [];
      /** Share of the backlog's files in the page cache before each counted run with the consumer (fincore). */
      const cached: number[] = [];
      try {
        const fill = await runLoadgen<ProduceResult>({
          mode: "produce",
          host: "127.0.0.1",
          port: brookPort,
          topic,
          partitions: 1,
          connections: 1,
          messageBytes: CONSUME_MESSAGE_BYTES,
          batchBytes: sizes.batchBytes,
          compression: "none",
          acks: 1,
          window: sizes.window,
          payloadBytesTarget: sizes.behindBytes,
        });
        // The fill leaves gigabytes of dirty pages; their writeback would slow the first runs.
        const synced = performance.now();
        spawnSync("sync");
        log(
          `backlog: ${(fill.batchBytes / MIB).toFixed(0)} MiB in ${fill.seconds.toFixed(1)} s, then sync in ` +
            `${((performance.now() - synced) / 1000).toFixed(1)} s`,
        );
        const producers = (name: string): ProduceSpec => ({
          mode: "produce",
          host: "127.0.0.1",
          port: brookPort,
          topic: name,
          partitions: config.partitions,
          connections: config.producers,
          messageBytes: config.messageBytes,
          batchBytes: sizes.batchBytes,
          compression: config.compression,
          acks: config.acks,
          window: sizes.window,
          durationMs: sizes.produceMs,
        });
        // Stops with the producers (or at the backlog's end, which only --quick reaches).
        const drain: ConsumeSpec = {
          mode: "consume",
          host: "127.0.0.1",
          port: brookPort,
          topic,
          partitions: 1,
          messageBytes: CONSUME_MESSAGE_BYTES,
          wireBytesTarget: fill.batchBytes,
          maxBytes: sizes.fetchMaxBytes,
          partitionMaxBytes: sizes.fetchMaxBytes,
          durationMs: sizes.produceMs,
        };
        /** One run of the producers on a fresh topic, deleted after it (so its bytes leave disk and page cache). */
        const once = async (name: string, withConsumer: boolean) => {
          await createTopic(brookPort, name, config.partitions);
          try {
            if (!withConsumer)
              return {
                producers: await measured<ProduceResult>(brookPid, producers(name)),
                consumer: null,
              };
            // Both processes run to their end before anything else happens, even if one fails.
            const [produced, consumed] = await Promise.allSettled([
              measured<ProduceResult>(brookPid, producers(name)),
              runLoadgen<ConsumeResult>(drain),
            ]);
            if (produced.status === "rejected") throw produced.reason;
            if (consumed.status === "rejected") throw consumed.reason;
            return { producers: produced.value, consumer: consumed.value };
          } finally {
            await deleteTopic(brookPort, name);
          }
        };
        await harness.repeat(async (run) => {
          const name = `behind-produce-${run < 0 ? "w" : run + 1}`;
          const a = await once(`${name}-alone`, false);
          const share = pageCacheShare(join(brook!.dataDir, `${topic}-0`));
          const b = await once(`${name}-during`, true);
          log(
            `backlog run ${run < 0 ? "warm-up" : run + 1}: produce alone ${a.producers.result.payloadMBPerSec.toFixed(0)} MB/s, ` +
              `with the consumer ${b.producers.result.payloadMBPerSec.toFixed(0)} MB/s; consumer ${b.consumer!.payloadMBPerSec.toFixed(0)} MB/s ` +
              `(${(b.consumer!.batchBytes / MIB).toFixed(0)} MiB${b.consumer!.reachedEnd ? ", reached the end" : ""}` +
              `${share === null ? "" : `; backlog ${(share * 100).toFixed(0)}% in page cache before`})`,
          );
          if (run < 0) return;
          if (share !== null) cached.push(share);
          alone.push(a.producers);
          during.push(b.producers);
          consumer.push(b.consumer!);
        });
      } finally {
        await deleteTopic(brookPort, topic);
      }
      const cores = (runs: Measured<unknown>[]) => ({
        brokerCores: median(runs.map((r) => r.serverCores)),
        clientCores: median(runs.map((r) => r.clientCores)),
      });
      harness.figure(
        {
          ...base,
          id: ids.alone,
          label: labels.alone,
          ...cores(alone),
          detail: alone.map((r) => r.result),
        },
        alone.map((r) => r.result.payloadMBPerSec),
      );
      harness.figure(
        {
          ...base,
          id: ids.during,
          label: labels.during,
          limitId: ids.alone,
          limitName: "alone",
          ...cores(during),
          detail: during.map((r) => r.result),
        },
        during.map((r) => r.result.payloadMBPerSec),
      );
      harness.figure(
        {
          ...base,
          id: ids.consumer,
          label: labels.consumer,
          limitId: "consume.hot.MBps",
          limitName: "drain alone",
          note:
            cached.length === 0
              ? undefined
              : `${(median(cached) * 100).toFixed(0)}% of the backlog in page cache before a run`,
          clientCores: median(consumer.map((r) => r.clientCpuSeconds / r.seconds)),
          detail: consumer,
        },
        consumer.map((r) => r.payloadMBPerSec),
      );
    });

    await harness.group("peers", async () => {
      const peers: PeerName[] = [];
      for (const peer of ["jetstream", "redis"] as const) {
        const missing = missingPeer(peer);
        if (missing === null) peers.push(peer);
        else
          harness.missing(
            {
              id: `peers.${peer}`,
              section: "peers",
              label: PEER_TITLE[peer],
              unit: "msg/s",
              better: "higher",
            },
            missing,
          );
      }
      if (peers.length === 0) return;
      const driver = join(work, "jsbench");
      const servers: Partial<Record<PeerName, Server>> = {};
      const dirs: Record<PeerName, string> = {
        jetstream: join(work, "nats"),
        redis: join(work, "redis"),
      };
      try {
        if (peers.includes("jetstream")) {
          const seconds = await buildJetStreamDriver(driver, work);
          log(`built the JetStream driver in ${seconds.toFixed(1)} s`);
          servers.jetstream = await startNats(dirs.jetstream);
        }
        if (peers.includes("redis")) servers.redis = await startRedis(dirs.redis);
        for (const peer of peers)
          log(`${PEER_TITLE[peer]} pid ${servers[peer]!.pid} on 127.0.0.1:${servers[peer]!.port}`);
        const cores = (runs: Measured<unknown>[]) => ({
          brokerCores: median(runs.map((r) => r.serverCores)),
          clientCores: median(runs.map((r) => r.clientCores)),
        });
        /** The peer's msg/s and MB/s rows, then Brook's runs ÷ each peer (msg/s; MB/s is the same ratio). */
        const compare = (
          kind: string,
          id: string,
          peerLabel: Record<PeerName, string>,
          brookLabel: string,
          brookRuns: Measured<ProduceResult | ConsumeResult>[],
          peerRuns: Record<PeerName, Measured<PeerRun>[]>,
        ) => {
          for (const peer of peers) {
            const runs = peerRuns[peer];
            harness.figure(
              {
                id: `peers.${peer}.${kind}.${id}.msgps`,
                section: "peers",
                label: peerLabel[peer],
                unit: "msg/s",
                better: "higher",
                ...cores(runs),
                detail: runs.map((r) => r.result),
              },
              runs.map((r) => r.result.messagesPerSec),
            );
            harness.figure(
              {
                id: `peers.${peer}.${kind}.${id}.MBps`,
                section: "peers",
                label: peerLabel[peer],
                unit: "MB/s",
                better: "higher",
              },
              runs.map((r) => r.result.payloadMBPerSec),
            );
          }
          for (const peer of peers) {
            harness.figure(
              {
                id: `peers.brook.${kind}.${id}.vs-${peer}.msgps`,
                section: "peers",
                label: `${brookLabel} ÷ ${PEER_SHORT[peer]}`,
                unit: "msg/s",
                better: "higher",
                limitId: `peers.${peer}.${kind}.${id}.msgps`,
                limitName: PEER_SHORT[peer],
                ...cores(brookRuns),
              },
              brookRuns.map((r) => r.result.messagesPerSec),
            );
          }
          harness.figure(
            {
              id: `peers.brook.${kind}.${id}.MBps`,
              section: "peers",
              label: brookLabel,
              unit: "MB/s",
              better: "higher",
              hidden: true,
              detail: brookRuns.map((r) => r.result),
            },
            brookRuns.map((r) => r.result.payloadMBPerSec),
          );
        };
        const show = (name: string, run: { result: { messagesPerSec: number } } | undefined) =>
          run === undefined ? "" : `, ${name} ${formatNumber(run.result.messagesPerSec)} msg/s`;

        const configs =
          options.mode === "full"
            ? PEERS_FULL
            : options.mode === "quick"
              ? PEERS_QUICK
              : PEERS_DEFAULT;
        for (const [index, config] of configs.entries()) {
          const messages =
            config.messageBytes >= KIB ? sizes.peerMessages1KiB : sizes.peerMessages100B;
          const topic = `peers-${index}`;
          await createTopic(brookPort, topic, 1);
          const brookRuns: Measured<ProduceResult>[] = [];
          const peerRuns: Record<PeerName, Measured<PeerRun>[]> = { jetstream: [], redis: [] };
          await harness.repeat(async (run) => {
            const onBrook = await measured<ProduceResult>(brookPid, {
              mode: "produce",
              host: "127.0.0.1",
              port: brookPort,
              topic,
              partitions: 1,
              connections: config.producers,
              messageBytes: config.messageBytes,
              batchBytes: sizes.batchBytes,
              compression: "none",
              acks: 1,
              window: sizes.window,
              durationMs: sizes.produceMs,
            });
            // One stream and one key for every config: each run first deletes the last one's.
            const onPeer: Partial<Record<PeerName, Measured<PeerRun>>> = {};
            if (servers.jetstream !== undefined) {
              onPeer.jetstream = await measuredBy(servers.jetstream.pid, () =>
                jetStreamPublish(driver, servers.jetstream!.port, {
                  stream: "PRODUCE",
                  messages,
                  messageBytes: config.messageBytes,
                  publishers: config.producers,
                  window: JETSTREAM_WINDOW,
                }),
              );
            }
            if (servers.redis !== undefined) {
              onPeer.redis = await measuredBy(servers.redis.pid, () =>
                redisRun({
                  mode: "xadd",
                  host: "127.0.0.1",
                  port: servers.redis!.port,
                  key: "produce",
                  messages,
                  messageBytes: config.messageBytes,
                  connections: config.producers,
                  window: REDIS_WINDOW,
                  chunk: REDIS_CHUNK,
                }),
              );
            }
            log(
              `peers produce ${sizeLabel(config.messageBytes)} ×${config.producers} run ${run < 0 ? "warm-up" : run + 1}: ` +
                `brook ${formatNumber(onBrook.result.messagesPerSec)} msg/s${show("JetStream", onPeer.jetstream)}${show("Redis", onPeer.redis)}`,
            );
            if (run < 0) return;
            brookRuns.push(onBrook);
            for (const peer of peers) peerRuns[peer].push(onPeer[peer]!);
          });
          await deleteTopic(brookPort, topic);
          const size = sizeLabel(config.messageBytes);
          const [each, s] = config.producers === 1 ? ["", ""] : [" each", "s"];
          compare(
            "produce",
            `${config.messageBytes}B.${config.producers}prod`,
            {
              jetstream: `JetStream publish: ${size}, ${config.producers} publisher${s} (Go, async, ${JETSTREAM_WINDOW} acks in flight${each}), file storage, ${countLabel(messages)} msgs`,
              redis: `Redis XADD: ${size}, ${config.producers} connection${s} (pipelined, ${REDIS_WINDOW} in flight${each}), AOF everysec, ${countLabel(messages)} msgs`,
            },
            `Brook produce (same runs): ${size}, ${config.producers} prod, 1 part, acks=1, none`,
            brookRuns,
            peerRuns,
          );
        }

        // Consume: the consume group's backlog size in 1 KiB messages, in each system, just
        // written (so in the page cache).
        const backlog = Math.round(sizes.backlogBytes / CONSUME_MESSAGE_BYTES);
        const topic = "peers-backlog";
        await createTopic(brookPort, topic, 1);
        const fill = await runLoadgen<ProduceResult>({
          mode: "produce",
          host: "127.0.0.1",
          port: brookPort,
          topic,
          partitions: 1,
          connections: 1,
          messageBytes: CONSUME_MESSAGE_BYTES,
          batchBytes: sizes.batchBytes,
          compression: "none",
          acks: 1,
          window: sizes.window,
          payloadBytesTarget: backlog * CONSUME_MESSAGE_BYTES,
        });
        if (servers.jetstream !== undefined) {
          await jetStreamPublish(driver, servers.jetstream.port, {
            stream: "BACKLOG",
            messages: backlog,
            messageBytes: CONSUME_MESSAGE_BYTES,
            publishers: 4,
            window: JETSTREAM_WINDOW,
          });
        }
        if (servers.redis !== undefined) {
          await redisRun({
            mode: "xadd",
            host: "127.0.0.1",
            port: servers.redis.port,
            key: "backlog",
            messages: backlog,
            messageBytes: CONSUME_MESSAGE_BYTES,
            connections: 4,
            window: REDIS_WINDOW,
            chunk: REDIS_CHUNK,
          });
        }
        log(`peers backlog: ${countLabel(backlog)} × 1 KiB in each (Brook ${fill.messages} msgs)`);
        const brookRuns: Measured<ConsumeResult>[] = [];
        const peerRuns: Record<PeerName, Measured<PeerRun>[]> = { jetstream: [], redis: [] };
        await harness.repeat(async (run) => {
          const onBrook = await measured<ConsumeResult>(brookPid, {
            mode: "consume",
            host: "127.0.0.1",
            port: brookPort,
            topic,
            partitions: 1,
            messageBytes: CONSUME_MESSAGE_BYTES,
            wireBytesTarget: fill.batchBytes,
            maxBytes: sizes.fetchMaxBytes,
            partitionMaxBytes: sizes.fetchMaxBytes,
          });
          if (onBrook.result.batchBytes !== fill.batchBytes) {
            throw new Error(
              `Consumer read ${onBrook.result.batchBytes} bytes of a ${fill.batchBytes}-byte backlog`,
            );
          }
          const onPeer: Partial<Record<PeerName, Measured<PeerRun>>> = {};
          if (servers.jetstream !== undefined) {
            onPeer.jetstream = await measuredBy(servers.jetstream.pid, () =>
              jetStreamConsume(driver, servers.jetstream!.port, "BACKLOG", backlog),
            );
          }
          if (servers.redis !== undefined) {
            onPeer.redis = await measuredBy(servers.redis.pid, () =>
              redisRun({
                mode: "xrange",
                host: "127.0.0.1",
                port: servers.redis!.port,
                key: "backlog",
                messages: backlog,
                count: REDIS_RANGE_COUNT,
              }),
            );
          }
          log(
            `peers consume run ${run < 0 ? "warm-up" : run + 1}: brook ${formatNumber(onBrook.result.messagesPerSec)} msg/s` +
              `${show("JetStream", onPeer.jetstream)}${show("Redis", onPeer.redis)}`,
          );
          if (run < 0) return;
          brookRuns.push(onBrook);
          for (const peer of peers) peerRuns[peer].push(onPeer[peer]!);
        });
        await deleteTopic(brookPort, topic);
        const count = countLabel(backlog);
        compare(
          "consume",
          "1024B",
          {
            jetstream: `JetStream drain: ${count} × 1 KiB, file storage, ordered consumer (Go), just written`,
            redis: `Redis drain: ${count} × 1 KiB, XRANGE COUNT ${REDIS_RANGE_COUNT / 1000}k, one at a time`,
          },
          `Brook drain from page cache (same runs): ${count} × 1 KiB, 1 part, fetch max ${sizes.fetchMaxBytes / MIB} MiB`,
          brookRuns,
          peerRuns,
        );
      } finally {
        for (const peer of peers) {
          await servers[peer]?.stop();
          rmSync(dirs[peer], { recursive: true, force: true });
        }
      }
    });

    const stopped = await brook.stop();
    if (stopped !== 0) log(`brook exited with ${stopped} on SIGTERM`);
    brook = null;
    await nullBroker.stop();
    nullBroker = null;

    await harness.group("footprint", async () => {
      const startup = async (
        dataDir: () => string,
        command: string,
        args: (dir: string, port: number) => string[],
      ) => {
        const ms: number[] = [];
        const rss: number[] = [];
        await harness.repeat(async (run) => {
          const dir = dataDir();
          const result = await startToReady(command, (port) => args(dir, port), sizes.idleMs);
          if (run < 0) return;
          ms.push(result.ms);
          rss.push(result.idleRssBytes / MIB);
        });
        return { ms, rss };
      };
      const emptyDir = join(work, "empty-data");
      const fresh = () => {
        rmSync(emptyDir, { recursive: true, force: true });
        return emptyDir;
      };
      const nullStart = await startup(fresh, nullExecutable, (dir, port) =>
        nullBrokerArgs({ ...nullOptions, dir }, port),
      );
      const empty = await startup(fresh, EXECUTABLE, brookArgs);
      harness.figure(
        {
          id: "footprint.rss.idle.MiB",
          section: "footprint",
          label: `idle RSS, ${sizes.idleMs} ms after ready, empty data dir`,
          unit: "MiB",
          better: "lower",
          limitId: "limit.null.rss.idle.MiB",
          limitName: "null",
        },
        empty.rss,
      );
      harness.figure(
        {
          id: "footprint.ready.empty.ms",
          section: "footprint",
          label: "spawn to first Metadata answer, empty data dir",
          unit: "ms",
          better: "lower",
          limitId: "limit.null.ready.ms",
          limitName: "null",
        },
        empty.ms,
      );
      const partitionsDir = join(work, "partitions-data");
      const built = performance.now();
      await buildStartupDataDir({
        dataDir: partitionsDir,
        partitions: sizes.startupPartitions,
        segmentsPerPartition: sizes.startupSegments,
        command: [EXECUTABLE],
      });
      log(
        `built a data dir of ${sizes.startupPartitions} partitions in ${((performance.now() - built) / 1000).toFixed(1)} s`,
      );
      const loaded = await startup(() => partitionsDir, EXECUTABLE, brookArgs);
      harness.figure(
        {
          id: "footprint.ready.partitions.ms",
          section: "footprint",
          label: `spawn to first Metadata answer, ${sizes.startupPartitions} partitions × ${sizes.startupSegments}+ segments, after clean stop`,
          unit: "ms",
          better: "lower",
          limitId: "limit.null.ready.ms",
          limitName: "null",
        },
        loaded.ms,
      );
      harness.figure(
        {
          id: "footprint.rss.partitions.MiB",
          section: "footprint",
          label: `idle RSS, ${sizes.startupPartitions} partitions`,
          unit: "MiB",
          better: "lower",
          limitId: "limit.null.rss.idle.MiB",
          limitName: "null",
        },
        loaded.rss,
      );
      harness.figure(
        {
          id: "limit.null.ready.ms",
          section: "limit",
          label: "null broker (compiled) spawn to first Metadata answer",
          unit: "ms",
          better: "lower",
        },
        nullStart.ms,
      );
      harness.figure(
        {
          id: "limit.null.rss.idle.MiB",
          section: "limit",
          label: "null broker idle RSS (the runtime's floor)",
          unit: "MiB",
          better: "lower",
        },
        nullStart.rss,
      );
      rmSync(partitionsDir, { recursive: true, force: true });
      rmSync(emptyDir, { recursive: true, force: true });
    });

    await harness.group("storage", async () => {
      const small = bytesLabel(sizes.storageSmallBytes);
      const big = bytesLabel(sizes.storageBigBytes);
      const [s, b] = [small.replace(" ", ""), big.replace(" ", "")];
      const setup = setupStorageRead({
        smallBytes: sizes.storageSmallBytes,
        bigBytes: sizes.storageBigBytes,
        parent: work,
      });
      try {
        const built = (what: string, done: { seconds: number } | null, bytes: number) =>
          done === null
            ? ""
            : `${what} ${(bytes / MIB / done.seconds).toFixed(0)} MiB/s (${done.seconds.toFixed(1)} s)`;
        log(
          `storage logs built: ${built(big, setup.big, sizes.storageBigBytes) || `${big}: ${setup.bigMissing}`}, ` +
            `${built(small, setup.small, sizes.storageSmallBytes)}`,
        );
        const runs = await harness.repeat(async (run) => {
          const figures = measureStorageRead(setup, {
            reads: sizes.storageReads,
            appends: sizes.storageAppends,
          });
          const us = (value: number) => `${value.toFixed(0)} µs`;
          const share = (value: number | null) =>
            value === null ? "" : ` (${(value * 100).toFixed(0)}% cached)`;
          log(
            `storage run ${run < 0 ? "warm-up" : run + 1}: read ${small} ${us(figures.small.read.meanUs)}${share(figures.small.cachedShare)}` +
              (figures.big === null
                ? ""
                : `, ${big} ${us(figures.big.read.meanUs)}${share(figures.big.cachedShare)}`) +
              `; append ${small} ${us(figures.small.append.meanUs)}` +
              (figures.big === null ? "" : `, ${big} ${us(figures.big.append.meanUs)}`),
          );
          return figures;
        });
        const row = (
          id: string,
          label: string,
          values: number[],
          limitId?: string,
          limitName?: string,
          more?: Partial<Row>,
        ) =>
          harness.figure(
            {
              id,
              section: "storage",
              label,
              unit: "µs",
              better: "lower",
              limitId,
              limitName,
              ...more,
            },
            values,
          );
        const limit = (id: string, label: string, values: number[], more?: Partial<Row>) =>
          harness.figure(
            { id, section: "limit", label, unit: "µs", better: "lower", ...more },
            values,
          );
        /**
         * As a row note: the share of a log in the page cache before a counted run (fincore)
         * and what was read back from disk after eviction during the reads of both logs,
         * which alternate read by read (machine-wide; both medians).
         */
        const cachedNote = (figures: LogFigures[]) => {
          const known = (values: (number | null)[]) =>
            values.filter((value): value is number => value !== null);
          const shares = known(figures.map((f) => f.cachedShare));
          const refaulted = known(figures.map((f) => f.refaultedBytes));
          const notes = [
            ...(shares.length === 0
              ? []
              : [`${(median(shares) * 100).toFixed(0)}% of it in page cache before a run`]),
            ...(refaulted.length === 0
              ? []
              : [
                  `${(median(refaulted) / MIB).toFixed(0)} MiB read back from disk during the reads of both logs`,
                ]),
          ];
          return notes.length === 0 ? undefined : notes.join(", ");
        };
        const read = (size: string) =>
          `PartitionLog.read of a 1 MiB batch at a random offset, ${size} log (mean)`;
        const append = (size: string) => `PartitionLog.append of a 1 MiB batch, ${size} log (mean)`;
        const pread = (size: string) => `raw pread of 1 MiB at a random batch, ${size} log (mean)`;
        const bigRuns = runs.flatMap((r) => (r.big === null ? [] : [r.big]));
        row(
          `storage.read.${s}.us`,
          read(small),
          runs.map((r) => r.small.read.meanUs),
          `limit.pread.${s}.us`,
          "raw pread",
          { note: cachedNote(runs.map((r) => r.small)), detail: runs.map((r) => r.small) },
        );
        const bigBase = { section: "storage", unit: "µs", better: "lower" as Better };
        if (setup.big === null) {
          harness.missing(
            { ...bigBase, id: `storage.read.${b}.us`, label: read(big) },
            setup.bigMissing!,
          );
        } else {
          row(
            `storage.read.${b}.us`,
            read(big),
            bigRuns.map((r) => r.read.meanUs),
            `storage.read.${s}.us`,
            `${small} log`,
            { note: cachedNote(bigRuns), detail: bigRuns },
          );
        }
        row(
          `storage.append.${s}.us`,
          append(small),
          runs.map((r) => r.small.append.meanUs),
          "limit.write.us",
          "raw write",
        );
        if (setup.big === null) {
          harness.missing(
            { ...bigBase, id: `storage.append.${b}.us`, label: append(big) },
            setup.bigMissing!,
          );
        } else {
          row(
            `storage.append.${b}.us`,
            append(big),
            bigRuns.map((r) => r.append.meanUs),
            `storage.append.${s}.us`,
            `${small} log`,
          );
        }
        limit(
          `limit.pread.${s}.us`,
          pread(small),
          runs.map((r) => r.small.rawPread.meanUs),
        );
        if (setup.big === null) {
          harness.missing(
            { ...bigBase, section: "limit", id: `limit.pread.${b}.us`, label: pread(big) },
            setup.bigMissing!,
          );
        } else {
          limit(
            `limit.pread.${b}.us`,
            pread(big),
            bigRuns.map((r) => r.rawPread.meanUs),
            { limitId: `limit.pread.${s}.us`, limitName: `${small} log` },
          );
        }
        limit(
          "limit.write.us",
          `raw write of 1 MiB at a file's end, beside the ${small} log (mean)`,
          runs.map((r) => r.small.rawWrite.meanUs),
        );
        if (setup.big !== null) {
          limit(
            `limit.write.${b}.us`,
            `raw write of 1 MiB at a file's end, beside the ${big} log (mean)`,
            bigRuns.map((r) => r.rawWrite.meanUs),
            { hidden: true },
          );
        }
      } finally {
        setup.close();
      }
    });
  } finally {
    if (brook !== null) {
      await brook.stop();
    }
    if (nullBroker !== null) await nullBroker.stop();
    rmSync(work, { recursive: true, force: true });
  }

  const wallSeconds = (performance.now() - wallStarted) / 1000;
  const stamp = startedAt
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replaceAll(":", "-");
  const out =
    options.out ??
    (options.mode === "quick"
      ? join(REPO, "bench/results/tmp", `${stamp}-quick.json`)
      : join(REPO, "bench/results", `${stamp}${options.mode === "full" ? "-full" : ""}.json`));
  mkdirSync(join(out, ".."), { recursive: true });
  writeFileSync(
    out,
    JSON.stringify(
      {
        format: 1,
        mode: options.mode,
        runsPerFigure: options.runs,
        warmupRunsPerFigure: 1,
        startedAt: startedAt.toISOString(),
        wallSeconds: Math.round(wallSeconds),
        buildSeconds: Math.round(buildSeconds * 10) / 10,
        machine,
        sizes,
        rows: harness.rows.map((row) => {
          const limit = harness.rows.find((candidate) => candidate.id === row.limitId);
          return { ...row, ofLimit: ratio(row, limit) };
        }),
      },
      null,
      2,
    ) + "\n",
  );

  console.log(`\n## Brook benchmark, ${options.mode} mode, ${startedAt.toISOString()}\n`);
  console.log(
    `${machine.cpuModel}, ${machine.cores} cores, ${(machine.memoryBytes / 1024 ** 3).toFixed(1)} GiB, ` +
      `Linux ${machine.kernel}, Bun ${machine.bunVersion}, kcat ${machine.kcatVersion ?? "not installed"}; ` +
      `load average at start ${machine.loadAverageAtStart.join(" ")}. ` +
      `${options.runs} counted run(s) per figure after one warm-up; wall time ${wallSeconds.toFixed(0)} s.\n`,
  );
  console.log(renderTable(harness.rows));
  console.log(
    `\nMB = 10^6 bytes of message values; "of limit" is the fraction of the limit reached (1 = as fast as it). Rows: bench/README.md.`,
  );
  console.log(`JSON: ${out}`);
  return harness.errors === 0 ? 0 : 1;
}

process.exit(await main());
