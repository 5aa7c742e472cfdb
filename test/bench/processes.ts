/**
 * @module
 * The processes the harness runs and watches: the built executable, the null broker,
 * load generator runs and kcat; plus what it reads about them from /proc (RSS, CPU
 * time). Every process started here is stopped by its own pid.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { buildExecutable as buildShipped, compile } from "../../build/compile.ts";
import { BUN, REPO, startBroker, type TestBroker } from "../helpers/broker.ts";
import { RawClient } from "../helpers/raw-client.ts";
import type { LoadSpec } from "./loadgen.ts";
import { messageValues } from "./workload.ts";

const CREATE_TOPICS = 19,
  DELETE_TOPICS = 20,
  METADATA = 3;
const READY_MS = 300_000;

export const EXECUTABLE = join(REPO, "build/brook");

/**
 * build/brook as `npm run build` makes it (build/compile.ts, both passes), or, given an
 * `entry`, that entry compiled once with the same flags into `outfile` (the null
 * broker), so Brook and its limits run compiled as what ships. Returns the seconds it
 * took.
 */
export async function buildExecutable(entry?: string, outfile = EXECUTABLE): Promise<number> {
  const started = performance.now();
  if (entry === undefined) await buildShipped(outfile);
  else compile(entry, outfile);
  return (performance.now() - started) / 1000;
}

/** The executable on loopback with its own data dir; stop() sends SIGTERM to its pid. */
export function startBrook(dataDir: string): Promise<TestBroker> {
  return startBroker({ dataDir, command: [EXECUTABLE], readyMs: READY_MS });
}

function expectNoErrors(
  topics: { name: string | null; errorCode: number; errorMessage?: string | null }[],
  what: string,
): void {
  for (const topic of topics) {
    if (topic.errorCode !== 0)
      throw new Error(
        `${what} ${topic.name} failed: error ${topic.errorCode} ${topic.errorMessage ?? ""}`,
      );
  }
}

export async function createTopic(port: number, name: string, partitions: number): Promise<void> {
  const client = await RawClient.connect(port);
  try {
    const answer = await client.request(CREATE_TOPICS, 7, {
      topics: [
        { name, numPartitions: partitions, replicationFactor: 1, assignments: [], configs: [] },
      ],
      timeoutMs: 30_000,
    });
    expectNoErrors(answer.topics, "CreateTopics");
  } finally {
    client.close();
  }
}

export async function deleteTopic(port: number, name: string): Promise<void> {
  const client = await RawClient.connect(port);
  try {
    const answer = await client.request(DELETE_TOPICS, 6, {
      topics: [{ name }],
      timeoutMs: 30_000,
    });
    expectNoErrors(answer.responses, "DeleteTopics");
  } finally {
    client.close();
  }
}

/** VmRSS of a live process, in bytes. */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (match === null) throw new Error(`No VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** User plus system CPU seconds a live process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerSecond = 100; // USER_HZ on Linux.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** Samples a process's RSS every `intervalMs` until stopped; keeps the peak. */
export class RssSampler {
  #peak = 0;
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(
    readonly pid: number,
    intervalMs = 100,
  ) {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }

  #sample(): void {
    try {
      this.#peak = Math.max(this.#peak, rssBytes(this.pid));
    } catch {
      // The process is gone; the peak so far stands.
    }
  }

  stop(): number {
    clearInterval(this.#timer);
    this.#sample();
    return this.#peak;
  }
}

export interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

function run(
  command: string,
  args: string[],
  timeoutMs: number,
  env?: NodeJS.ProcessEnv,
): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
      env: env ?? process.env,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    }, timeoutMs);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (performance.now() - started) / 1000 });
    });
  });
}

/**
 * A driver process that prints its result as one JSON line (the last line of stdout)
 * and exits 0; anything else rejects with its stderr.
 */
/** Runs a build tool (a compiler) from the repository root: exit code, output, seconds. */
export function runTool(command: string, args: string[], timeoutMs: number): Promise<Exited> {
  return run(command, args, timeoutMs);
}

export async function runJsonProcess<T>(
  command: string,
  args: string[],
  timeoutMs = 900_000,
): Promise<T & { clientCpuSeconds: number }> {
  const exited = await run(command, args, timeoutMs);
  const name = command.split("/").at(-1);
  if (exited.code !== 0)
    throw new Error(exited.stderr.trim() || `${name} exited with ${exited.code}`);
  const line = exited.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line) as T & { clientCpuSeconds: number };
  } catch {
    throw new Error(`${name} printed no JSON result: ${line.slice(0, 200)}`);
  }
}

/** One load generator run in its own process; resolves with its JSON result. */
export function runLoadgen<T>(
  spec: LoadSpec,
  timeoutMs = 900_000,
): Promise<T & { clientCpuSeconds: number }> {
  return runJsonProcess<T>(
    BUN,
    [join(REPO, "test/bench/loadgen.ts"), JSON.stringify(spec)],
    timeoutMs,
  );
}

/**
 * `go build -o <outfile> <dir>` (dir relative to the repo) in GOPATH mode against `gopath` (no network: GOPROXY
 * off, a fresh GOCACHE of its own). Returns the seconds it took.
 */
export async function goBuild(
  dir: string,
  outfile: string,
  gopath: string,
  gocache: string,
): Promise<number> {
  const env = {
    ...process.env,
    GOPATH: gopath,
    GO111MODULE: "off",
    GOFLAGS: "",
    GOPROXY: "off",
    GOCACHE: gocache,
    CGO_ENABLED: "0",
  };
  const built = await run("go", ["build", "-o", outfile, dir], 600_000, env);
  if (built.code !== 0)
    throw new Error(
      `go build ${dir} failed (${built.code}): ${(built.stderr || built.stdout).trim()}`,
    );
  return built.seconds;
}

/** A server process the harness started (a peer broker); stop() by its pid. */
export interface Server {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/**
 * Spawns `command` with `args(port)` for a free loopback port and waits until its stdout
 * or stderr matches `ready`. stop() sends SIGTERM to its pid (SIGKILL after 30 s) and
 * waits for the exit; the process is also killed if the harness exits first.
 */
export async function startServer(
  command: string,
  args: (port: number) => string[],
  ready: RegExp,
): Promise<Server> {
  const port = await freePort();
  const child = spawn(command, args(port), { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined)
      process.kill(child.pid, "SIGKILL");
  };
  process.on("exit", killOnExit);
  let output = "";
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${command} not ready within 30 s: ${output.trim().slice(-500)}`)),
        30_000,
      );
      const watch = (chunk: Buffer) => {
        // Keep only the tail: servers log for as long as they run.
        output = (output + chunk.toString()).slice(-8192);
        if (ready.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on("data", watch);
      child.stderr!.on("data", watch);
      child.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(
          new Error(`${command} exited with ${code} before ready: ${output.trim().slice(-500)}`),
        );
      });
    });
  } catch (error) {
    killOnExit();
    await exited;
    throw error;
  }
  return {
    pid: child.pid!,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid!, "SIGTERM");
        const timer = setTimeout(killOnExit, 30_000);
        await exited;
        clearTimeout(timer);
      }
      process.off("exit", killOnExit);
    },
  };
}

export interface NullBroker {
  pid: number;
  kafkaPort: number;
  sinkPort: number;
  stop(): Promise<void>;
}

export interface NullBrokerOptions {
  /** The compiled null broker (see buildExecutable). */
  executable: string;
  dir: string;
  fetchMessageBytes: number;
  fetchBatchBytes: number;
  /** Fetch answers start at the fetch offset (a copy per answer), for librdkafka. */
  stampFetchOffsets?: boolean;
}

export function nullBrokerArgs(options: NullBrokerOptions, port = 0): string[] {
  return [
    "--dir",
    options.dir,
    "--port",
    String(port),
    "--fetch-message-bytes",
    String(options.fetchMessageBytes),
    "--fetch-batch-bytes",
    String(options.fetchBatchBytes),
    ...(options.stampFetchOffsets === true ? ["--stamp-fetch-offsets"] : []),
  ];
}

export async function startNullBroker(options: NullBrokerOptions): Promise<NullBroker> {
  const child: ChildProcess = spawn(options.executable, nullBrokerArgs(options), {
    cwd: REPO,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  process.on("exit", () => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("Null broker not ready within 30 s")), 30_000);
    child.stdout!.on("data", (chunk) => {
      out += chunk;
      if (out.includes("\n")) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.on("exit", (code) => reject(new Error(`Null broker exited with ${code}`)));
  });
  const match = /kafka=127\.0\.0\.1:(\d+) sink=127\.0\.0\.1:(\d+)/.exec(line);
  if (match === null) throw new Error(`Null broker said: ${line}`);
  return {
    pid: child.pid!,
    kafkaPort: Number(match[1]),
    sinkPort: Number(match[2]),
    async stop() {
      if (child.exitCode === null) process.kill(child.pid!, "SIGTERM");
      await exited;
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface StartToReady {
  /** From just before spawn to the first Metadata answer. */
  ms: number;
  /** VmRSS `idleMs` after that answer, with no client connected. */
  idleRssBytes: number;
}

/** The executable's arguments to start on `dataDir` with its Kafka listener on `port`. */
export function brookArgs(dataDir: string, port: number): string[] {
  return [
    "start",
    "--data-dir",
    dataDir,
    "--kafka",
    `127.0.0.1:${port}`,
    "--admin",
    "127.0.0.1:0",
    "--gossip",
    "127.0.0.1:0",
    "--log-level",
    "warn",
  ];
}

/**
 * Spawns `command` with `args(port)` for a free port, polls with Metadata until one is
 * answered, waits `idleMs`, reads the process's RSS and stops it by pid (SIGTERM, then
 * waits for the exit).
 */
export async function startToReady(
  command: string,
  args: (port: number) => string[],
  idleMs: number,
): Promise<StartToReady> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(command, args(port), { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    let ms = 0;
    while (ms === 0) {
      if (child.exitCode !== null)
        throw new Error(`${command} exited with ${child.exitCode} before ready: ${stderr.trim()}`);
      if (performance.now() - started > READY_MS)
        throw new Error(`${command} did not answer Metadata in time`);
      let client: Awaited<ReturnType<typeof RawClient.connect>> | null = null;
      try {
        client = await RawClient.connect(port, "127.0.0.1", {
          connectTimeoutMs: 1000,
          requestTimeoutMs: 5000,
        });
        await client.request(METADATA, 9, { topics: [], allowAutoTopicCreation: false });
        ms = performance.now() - started;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 2));
      } finally {
        client?.close();
      }
    }
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    return { ms, idleRssBytes: rssBytes(child.pid!) };
  } finally {
    if (child.exitCode === null) process.kill(child.pid!, "SIGTERM");
    const code = await exited;
    if (code !== 0 && code !== null)
      process.stderr.write(`bench: ${command} exited with ${code}: ${stderr.trim()}\n`);
  }
}

export function installed(tool: string): boolean {
  return spawnSync("which", [tool], { encoding: "utf8" }).status === 0;
}

/** `count` lines of `bytes` bytes each (newline not counted): kcat -l input. */
export function writeKcatFile(path: string, count: number, bytes: number): void {
  const distinct = Math.min(count, 1000);
  const lines = messageValues(distinct, bytes, 3).map((value) =>
    value.toString("latin1").replaceAll("\n", " "),
  );
  const block = lines.join("\n") + "\n";
  const blocks = Math.floor(count / distinct);
  const rest = lines.slice(0, count - blocks * distinct);
  writeFileSync(path, block.repeat(blocks) + (rest.length > 0 ? rest.join("\n") + "\n" : ""));
}

export interface KcatRun {
  seconds: number;
  messagesPerSec: number;
  payloadMBPerSec: number;
}

/** kcat -P of a file to partition 0: spawn to exit (kcat flushes before exiting). */
export async function kcatProduce(options: {
  port: number;
  topic: string;
  file: string;
  messages: number;
  messageBytes: number;
}): Promise<KcatRun> {
  const exited = await run(
    "kcat",
    [
      "-P",
      "-b",
      `127.0.0.1:${options.port}`,
      "-t",
      options.topic,
      "-p",
      "0",
      "-X",
      "linger.ms=5",
      "-X",
      "batch.num.messages=10000",
      "-X",
      "acks=1",
      "-l",
      options.file,
    ],
    600_000,
  );
  if (exited.code !== 0 || /fail|error/i.test(exited.stderr)) {
    throw new Error(
      `kcat exited with ${exited.code}: ${exited.stderr.trim().split("\n").slice(0, 3).join(" / ")}`,
    );
  }
  return {
    seconds: exited.seconds,
    messagesPerSec: options.messages / exited.seconds,
    payloadMBPerSec: (options.messages * options.messageBytes) / 1e6 / exited.seconds,
  };
}

/** Empties the page cache (root only); returns null when done, else why not. */
export function dropCaches(): string | null {
  spawnSync("sync");
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** The broker's high watermark sum over partitions 0..n-1 of a topic (a sanity check). */
export async function endOffsets(
  port: number,
  topic: string,
  partitions: number,
): Promise<number[]> {
  const client = await RawClient.connect(port);
  try {
    const answer = await client.request(2, 7, {
      replicaId: -1,
      isolationLevel: 0,
      topics: [
        {
          name: topic,
          partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({
            partitionIndex,
            currentLeaderEpoch: -1,
            timestamp: -1,
          })),
        },
      ],
    });
    return answer.topics[0].partitions.map((p: { offset: number }) => p.offset);
  } finally {
    client.close();
  }
}
