/**
 * Text transcripts of Raft scenarios (etcd-io/raft's interaction tests and
 * testdata/*.txt): each file in testdata/ is a list of commands, each followed by the
 * output it must produce, prefixed "> ". Lines starting with "#" are comments (cite the
 * paper there). `BROOK_REWRITE=1` rewrites the expected output from what the code does
 * now; read the diff before committing it.
 *
 * Commands (node ids are numbers):
 *   nodes <id>...                   a cluster of these (empty) nodes
 *   bootstrap <id>... voters=<ids>  each given node bootstraps with the voters (comma list)
 *   tick <id> [n]                   n ticks (default 1); prints nothing
 *   campaign <id>                   ticks until the node pre-votes or campaigns
 *   deliver [n]                     delivers mail in order (all, or n), printing each message
 *   mail                            prints the undelivered messages
 *   drop                            drops all undelivered messages
 *   propose <id> <text>             prints the result
 *   add-voter|add-observer|remove <leader> <id>
 *   transfer <leader> <to>
 *   compact <id>                    compacts to the applied index
 *   isolate <id> | heal | crash <id> | restart <id>
 *   status <id>...                  prints each node's state
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ProposeResult } from "./raft.ts";
import { describeMessage, TestCluster } from "./test-support.ts";

const TESTDATA = join(import.meta.dir, "testdata");

function formatResult(result: ProposeResult): string {
  if (result.ok) return `ok index=${result.index} term=${result.term}`;
  const error = result.error;
  return error.kind === "notLeader"
    ? `notLeader leader=${error.leader ?? "-"}`
    : `${error.kind}: ${error.message}`;
}

class TranscriptRunner {
  #cluster: TestCluster | null = null;

  get cluster(): TestCluster {
    if (this.#cluster === null) throw new Error("No `nodes` command yet");
    return this.#cluster;
  }

  run(command: string): string[] {
    const [name, ...args] = command.split(/\s+/);
    const ids = args.filter((arg) => /^\d+$/.test(arg)).map(Number);
    const c = () => this.cluster;
    switch (name) {
      case "nodes":
        this.#cluster = new TestCluster(ids);
        return [];
      case "bootstrap": {
        const voters = args
          .find((arg) => arg.startsWith("voters="))!
          .slice(7)
          .split(",")
          .map(Number);
        for (const id of ids) c().on(id, (raft) => raft.bootstrap(voters));
        return [];
      }
      case "tick":
        c().tick(ids[0]!, ids[1] ?? 1);
        return [];
      case "campaign":
        c().tickUntil(ids[0]!, (raft) => raft.role === "preCandidate" || raft.role === "candidate");
        return [c().describe(ids[0]!)];
      case "deliver": {
        const out: string[] = [];
        const limit = ids[0] ?? Number.POSITIVE_INFINITY;
        for (let n = 0; n < limit && c().mailbox.length > 0; n++) {
          const message = c().mailbox.shift()!;
          const delivered = c().deliver(message);
          out.push(`${describeMessage(message)}${delivered ? "" : " (dropped)"}`);
        }
        return out;
      }
      case "mail":
        return c().mailbox.map(describeMessage);
      case "drop":
        c().take();
        return [];
      case "propose":
        return [
          formatResult(c().on(ids[0]!, (raft) => raft.propose(new TextEncoder().encode(args[1]!)))),
        ];
      case "add-voter":
        return [formatResult(c().on(ids[0]!, (raft) => raft.addVoter(ids[1]!)))];
      case "add-observer":
        return [formatResult(c().on(ids[0]!, (raft) => raft.addObserver(ids[1]!)))];
      case "remove":
        return [formatResult(c().on(ids[0]!, (raft) => raft.removeNode(ids[1]!)))];
      case "transfer":
        return [String(c().on(ids[0]!, (raft) => raft.transferLeadership(ids[1]!)))];
      case "compact": {
        const id = ids[0]!;
        const applied = c().raft(id).status().applied;
        const result = c().on(id, (raft) =>
          raft.compact(applied, new TextEncoder().encode(`state@${applied}`)),
        );
        return [
          result.ok
            ? `ok snapshot=${result.snapshot.index}/${result.snapshot.term}`
            : `${result.kind}`,
        ];
      }
      case "isolate":
        c().isolate(ids[0]!);
        return [];
      case "heal":
        c().heal();
        return [];
      case "crash":
        c().crash(ids[0]!);
        return [];
      case "restart":
        c().restart(ids[0]!);
        return [];
      case "status":
        return ids.map((id) => c().describe(id));
      default:
        throw new Error(`Unknown transcript command: ${command}`);
    }
  }
}

/** Runs a transcript; answers the text it should contain (commands, comments, outputs). */
function replay(text: string): string {
  const runner = new TranscriptRunner();
  const out: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("> ")) continue;
    out.push(line);
    const command = line.trim();
    if (command === "" || command.startsWith("#")) continue;
    for (const produced of runner.run(command)) out.push(`> ${produced}`);
  }
  return out.join("\n");
}

for (const file of readdirSync(TESTDATA)
  .filter((name) => name.endsWith(".txt"))
  .sort()) {
  test(`raft: transcript: ${file}`, () => {
    const path = join(TESTDATA, file);
    const expected = readFileSync(path, "utf8");
    const actual = replay(expected);
    if (process.env.BROOK_REWRITE === "1" && actual !== expected) writeFileSync(path, actual);
    else expect(actual).toBe(expected);
  });
}
