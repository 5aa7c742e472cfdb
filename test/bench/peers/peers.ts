/**
 * @module
 * The peer brokers of the harness's "peers" group (`run.ts`): NATS JetStream and Redis
 * Streams, each started on loopback with a fresh directory and driven by its fastest
 * client here (bench/README.md, "peers"). Nothing is installed by the harness: a peer
 * whose server or client is missing is reported, not run.
 *
 * - JetStream: `nats-server -js -sd <dir>` (file storage), driven by the Go program in
 *   `jetstream/main.go`, built once per harness run in GOPATH mode against Debian's
 *   packaged nats.go (`/usr/share/gocode`).
 * - Redis: `redis-server --appendonly yes --appendfsync everysec --save ''`, driven by
 *   `redis.ts` (pipelined RESP over node:net).
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { BUN, REPO } from "../../helpers/broker.ts";
import {
  freePort,
  goBuild,
  installed,
  runJsonProcess,
  type Server,
  startServer,
} from "../processes.ts";
import type { RedisSpec } from "./redis.ts";

/** Where Debian's golang-*-dev packages put their sources (GOPATH mode). */
export const DEBIAN_GOPATH = "/usr/share/gocode";
const NATS_GO = join(DEBIAN_GOPATH, "src/github.com/nats-io/nats.go");

/** What every peer driver prints (one JSON line). */
export interface PeerRun {
  messages: number;
  payloadBytes: number;
  seconds: number;
  messagesPerSec: number;
  payloadMBPerSec: number;
  clientCpuSeconds: number;
}

export type PeerName = "jetstream" | "redis";

/** JetStream acknowledgements outstanding per publisher (1024 was faster than 256 here). */
export const JETSTREAM_WINDOW = 1024;

/** null when the peer can run here, else why not (for its rows). */
export function missingPeer(peer: PeerName): string | null {
  const missing: string[] = [];
  if (peer === "jetstream") {
    if (!installed("nats-server")) missing.push("nats-server");
    if (!installed("go")) missing.push("go");
    if (!existsSync(NATS_GO)) missing.push(`nats.go (${NATS_GO})`);
  } else if (!installed("redis-server")) {
    missing.push("redis-server");
  }
  return missing.length === 0 ? null : `not installed: ${missing.join(", ")} (see bench/README.md)`;
}

/** nats-server with JetStream on a fresh store directory, loopback only. */
export function startNats(dir: string): Promise<Server> {
  mkdirSync(dir, { recursive: true });
  return startServer(
    "nats-server",
    (port) => ["-js", "-sd", dir, "-a", "127.0.0.1", "-p", String(port)],
    /Server is ready/,
  );
}

/**
 * A JetStream cluster of `dirs.length` nats-servers on loopback (file storage, one store
 * directory each), every one routed to all the others; R3 streams need it. The servers
 * are ready for clients once they are; the meta leader may still be elected after that
 * (the driver retries stream creation).
 */
export async function startNatsCluster(dirs: string[]): Promise<Server[]> {
  const routePorts: number[] = [];
  for (const _ of dirs) routePorts.push(await freePort());
  const routes = routePorts.map((port) => `nats://127.0.0.1:${port}`).join(",");
  const servers: Server[] = [];
  try {
    for (const [i, dir] of dirs.entries()) {
      mkdirSync(dir, { recursive: true });
      servers.push(
        await startServer(
          "nats-server",
          (port) => [
            "-js",
            "-sd",
            dir,
            "-a",
            "127.0.0.1",
            "-p",
            String(port),
            "-n",
            `brook-bench-${i + 1}`,
            "--cluster_name",
            "brook-bench",
            "--cluster",
            `nats://127.0.0.1:${routePorts[i]}`,
            "--routes",
            routes,
          ],
          /Server is ready/,
        ),
      );
    }
  } catch (error) {
    for (const server of servers) await server.stop();
    throw error;
  }
  return servers;
}

/** redis-server with an append-only file fsynced every second, no RDB snapshots. */
export function startRedis(dir: string): Promise<Server> {
  mkdirSync(dir, { recursive: true });
  return startServer(
    "redis-server",
    (port) => [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--appendonly",
      "yes",
      "--appendfsync",
      "everysec",
      "--save",
      "",
      "--daemonize",
      "no",
      "--logfile",
      "",
    ],
    /Ready to accept connections/,
  );
}

/** Builds the JetStream driver into `outfile` (GOCACHE under `scratch`); seconds taken. */
export function buildJetStreamDriver(outfile: string, scratch: string): Promise<number> {
  return goBuild("./test/bench/peers/jetstream", outfile, DEBIAN_GOPATH, join(scratch, "gocache"));
}

export interface JetStreamPublish {
  stream: string;
  messages: number;
  messageBytes: number;
  publishers: number;
  /** Acknowledgements outstanding per publisher. */
  window: number;
  /** Stream replicas (1 unless on a JetStream cluster). */
  replicas?: number;
}

/** One publish run: recreates the stream, publishes, waits for every ack. */
export function jetStreamPublish(
  driver: string,
  port: number,
  spec: JetStreamPublish,
): Promise<PeerRun> {
  return runJsonProcess<PeerRun>(
    driver,
    [
      "publish",
      "-url",
      `nats://127.0.0.1:${port}`,
      "-stream",
      spec.stream,
      "-messages",
      String(spec.messages),
      "-size",
      String(spec.messageBytes),
      "-publishers",
      String(spec.publishers),
      "-window",
      String(spec.window),
      "-replicas",
      String(spec.replicas ?? 1),
    ],
    600_000,
  );
}

/** One drain of the first `messages` messages of a stream with a fresh ordered consumer. */
export function jetStreamConsume(
  driver: string,
  port: number,
  stream: string,
  messages: number,
): Promise<PeerRun> {
  return runJsonProcess<PeerRun>(
    driver,
    [
      "consume",
      "-url",
      `nats://127.0.0.1:${port}`,
      "-stream",
      stream,
      "-messages",
      String(messages),
      "-consumer",
      "ordered",
    ],
    600_000,
  );
}

/** One Redis driver run (`redis.ts`, a process of its own). */
export function redisRun(spec: RedisSpec): Promise<PeerRun> {
  return runJsonProcess<PeerRun>(
    BUN,
    [join(REPO, "test/bench/peers/redis.ts"), JSON.stringify(spec)],
    600_000,
  );
}
