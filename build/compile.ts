/**
 * `npm run build`: the single executable, build/brook, compiled twice.
 *
 * Pass 1 compiles src/main.ts with `bun build --compile --bytecode`. That executable then
 * starts a node on a temporary data dir, answers ApiVersions and Metadata and stops cleanly,
 * with BUN_BYTECODE_ORDER_OUT set, so Bun writes down which functions ran, in order.
 * Pass 2 compiles again with `--bytecode-order`, which lays those functions' bytecode
 * out together at the front of the embedded bundle. A node then touches half as many
 * pages of the bundle to start (2.5 instead of 4.1 MiB resident, measured with Bun
 * 1.4.5), and those pages count in its RSS for as long as it runs.
 *
 *   bun build/compile.ts [--outfile PATH]
 *
 * `compile()` is also what the benchmark uses for its null broker, so both run with the
 * same flags.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { KafkaConnection, VERSIONS } from "../src/client/kafka-client.ts";

export const REPO = resolve(import.meta.dir, "..");
const ENTRY = "src/main.ts";
const OUTFILE = "build/brook";
/** The flags every compiled executable of this project is built with. */
export const COMPILE_FLAGS = ["--compile", "--format=esm", "--bytecode"];
/** The recording run must reach "Node serving" and stop within this. */
const ORDER_RUN_MS = 60_000;

/** One `bun build` of `entry` into `outfile`, with `extraFlags`; throws if it fails. */
export function compile(entry: string, outfile: string, extraFlags: string[] = []): void {
  const args = ["build", ...COMPILE_FLAGS, ...extraFlags, "--outfile", outfile, entry];
  const built = spawnSync(process.execPath, args, { cwd: REPO, encoding: "utf8" });
  if (built.status !== 0)
    throw new Error(
      `bun build of ${entry} failed (${built.status}): ${built.stderr || built.stdout}`,
    );
}

/**
 * Runs `executable` as a node, with a temporary data dir and ports the system picks,
 * until it serves and has answered ApiVersions and Metadata; then stops it with SIGTERM.
 * Bun writes the order of the functions that ran to `orderFile` as it exits.
 */
export async function recordStartupOrder(executable: string, orderFile: string): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "brook-order-"));
  const args = [
    "start",
    "--data-dir",
    dataDir,
    "--kafka",
    "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    "--gossip",
    "127.0.0.1:0",
    "--log-level",
    "info",
  ];
  // The builder's own BROOK_* settings (a --join, a config file) are not this node's.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("BROOK_")),
  );
  const child = spawn(executable, args, {
    env: { ...env, BUN_BYTECODE_ORDER_OUT: orderFile },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)));
  const timer = setTimeout(() => child.kill("SIGKILL"), ORDER_RUN_MS);
  try {
    const port = await new Promise<number>((found, failed) => {
      let log = "";
      child.stderr!.on("data", (chunk: Buffer) => {
        log += chunk.toString("utf8");
        const serving = /Node serving .*kafka=[^\s]*:(\d+)/.exec(log);
        if (serving !== null) found(Number(serving[1]));
      });
      void exited.then((code) =>
        failed(new Error(`The recording run exited with ${code} before serving: ${log.trim()}`)),
      );
    });
    const connection = await KafkaConnection.connect(port);
    try {
      await connection.request(18, VERSIONS.apiVersions, {
        clientSoftwareName: "brook-build",
        clientSoftwareVersion: "0",
      });
      await connection.request(3, VERSIONS.metadata, { topics: [], allowAutoTopicCreation: false });
    } finally {
      connection.close();
    }
    child.kill("SIGTERM");
    const code = await exited;
    if (code !== 0) throw new Error(`The recording run exited with ${code} on SIGTERM`);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Both passes: `outfile` ends up compiled with the recorded order. */
export async function buildExecutable(outfile: string = join(REPO, OUTFILE)): Promise<void> {
  compile(ENTRY, outfile);
  const work = mkdtempSync(join(tmpdir(), "brook-build-"));
  try {
    const orderFile = join(work, "bytecode.order");
    await recordStartupOrder(outfile, orderFile);
    // A Bun that no longer knows BUN_BYTECODE_ORDER_OUT would leave the order unrecorded.
    if (!existsSync(orderFile) || statSync(orderFile).size === 0)
      throw new Error(`Bun recorded no bytecode order in ${orderFile}`);
    compile(ENTRY, outfile, [`--bytecode-order=${orderFile}`]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const at = process.argv.indexOf("--outfile");
  const outfile = at === -1 ? undefined : process.argv[at + 1];
  try {
    await buildExecutable(outfile === undefined ? undefined : resolve(outfile));
  } catch (error) {
    process.stderr.write(`build: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
