/**
 * `brook topic create|list|describe|delete`, through the admin API.
 *
 * Flags are checked here only for form (a partition count is a positive integer, a
 * config is name=value): bad form is usage, exit 2. Whether a topic may be created is
 * the broker's call (`src/cluster/topics.ts`): a refusal prints the server's message and
 * exits 1.
 */
import type { Argv, CommandModule } from "yargs";
import type { TopicSummary, TopicView } from "../admin/views.ts";
import { type AdminArgs, addAdminOptions, adminRun, segment } from "./admin-options.ts";
import type { CliContext } from "./cli.ts";
import { UsageError } from "./errors.ts";
import { formatTable } from "./output.ts";

interface CreateArgs extends AdminArgs {
  name: string;
  partitions?: string;
  "replication-factor"?: string;
  config?: string[];
}

function positiveInteger(flag: string, text: unknown): number | undefined {
  if (text === undefined) return undefined;
  if (typeof text !== "string") throw new UsageError(`Invalid --${flag}: given more than once`);
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(
      `Invalid --${flag}: expected a positive integer, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/** `--config name=value`, repeatable, into an object; a name given twice is bad usage. */
export function parseConfigFlags(flags: readonly string[]): Record<string, string> {
  const configs: Record<string, string> = {};
  for (const flag of flags) {
    const equals = flag.indexOf("=");
    if (equals <= 0)
      throw new UsageError(`Invalid --config: expected name=value, got ${JSON.stringify(flag)}`);
    const name = flag.slice(0, equals);
    if (Object.hasOwn(configs, name)) throw new UsageError(`Invalid --config: ${name} given twice`);
    configs[name] = flag.slice(equals + 1);
  }
  return configs;
}

/** "1:0,2:3,3:?" on the partition's leader (? before a follower's first fetch); "-" elsewhere. */
function replicaLag(partition: TopicView["partitions"][number]): string {
  if (partition.replicaStates === null) return "-";
  return partition.replicaStates.map((r) => `${r.nodeId}:${r.lag ?? "?"}`).join(",");
}

function describeTopic(topic: TopicView): string {
  const configs = Object.entries(topic.configs);
  const head = [
    `Topic: ${topic.name}`,
    `Topic id: ${topic.topicId}`,
    `Partitions: ${topic.partitionCount}`,
    `Replication factor: ${topic.replicationFactor}`,
    `Configs: ${configs.length === 0 ? "(defaults)" : configs.map(([name, value]) => `${name}=${value}`).join(", ")}`,
  ].join("\n");
  const table = formatTable(
    [
      "PARTITION",
      "LEADER",
      "EPOCH",
      "REPLICAS",
      "ISR",
      "ELR",
      "LOG-START",
      "LOG-END",
      "HIGH-WATERMARK",
      "LAST-STABLE",
      "SIZE-BYTES",
      "REPLICA-LAG",
    ],
    topic.partitions.map((p) => [
      p.partition,
      p.leader,
      p.leaderEpoch,
      p.replicas.join(","),
      p.isr.join(","),
      p.elr.length === 0 ? "-" : p.elr.join(","),
      p.logStartOffset,
      p.logEndOffset,
      p.highWatermark,
      p.lastStableOffset,
      p.sizeBytes,
      replicaLag(p),
    ]),
  );
  // LOG-END and the sizes are the answering node's replica; REPLICA-LAG is known on the leader only.
  return `${head}\n\n${table}`;
}

export function topicCommand(context: CliContext): CommandModule {
  return {
    command: "topic",
    describe: "Create, list, describe and delete topics (admin API)",
    builder: (argv: Argv) =>
      addAdminOptions(argv)
        .command({
          command: "create <name>",
          describe: "Create a topic",
          builder: (sub: Argv) =>
            sub
              .positional("name", { type: "string", describe: "Topic name" })
              .option("partitions", {
                type: "string",
                describe: "Partition count [default: the broker's]",
                requiresArg: true,
              })
              .option("replication-factor", {
                type: "string",
                describe: "Replicas per partition [default: the broker's]",
                requiresArg: true,
              })
              .option("config", {
                type: "string",
                array: true,
                describe: "Topic config name=value, repeatable",
                requiresArg: true,
              }),
          handler: async (raw) => {
            const args = raw as unknown as CreateArgs;
            const run = await adminRun(context, args);
            const body: Record<string, unknown> = { name: String(args.name) };
            const partitions = positiveInteger("partitions", args.partitions);
            const replicationFactor = positiveInteger(
              "replication-factor",
              args["replication-factor"],
            );
            if (partitions !== undefined) body.partitions = partitions;
            if (replicationFactor !== undefined) body.replicationFactor = replicationFactor;
            if (args.config !== undefined) body.configs = parseConfigFlags(args.config);
            const topic = await run.client.post<TopicView>("/v1/topics", body);
            if (run.json) return run.printJson(topic);
            run.print(
              `Created topic ${topic.name}: ${topic.partitionCount} partitions, replication factor ${topic.replicationFactor}\n`,
            );
          },
        })
        .command({
          command: "list",
          describe: "List topics",
          handler: async (raw) => {
            const run = await adminRun(context, raw as AdminArgs);
            const { topics } = await run.client.get<{ topics: TopicSummary[] }>("/v1/topics");
            if (run.json) return run.printJson({ topics });
            if (topics.length === 0) return run.print("No topics\n");
            run.print(
              formatTable(
                ["NAME", "PARTITIONS", "REPLICATION-FACTOR", "INTERNAL", "TOPIC-ID"],
                topics.map((t) => [
                  t.name,
                  t.partitionCount,
                  t.replicationFactor,
                  t.internal,
                  t.topicId,
                ]),
              ),
            );
          },
        })
        .command({
          command: "describe <name>",
          describe: "Show a topic's partitions and offsets",
          builder: (sub: Argv) =>
            sub.positional("name", { type: "string", describe: "Topic name" }),
          handler: async (raw) => {
            const args = raw as unknown as AdminArgs & { name: string };
            const run = await adminRun(context, args);
            const topic = await run.client.get<TopicView>(
              `/v1/topics/${segment(String(args.name))}`,
            );
            if (run.json) return run.printJson(topic);
            run.print(describeTopic(topic));
          },
        })
        .command({
          command: "delete <name>",
          describe: "Delete a topic and its data",
          builder: (sub: Argv) =>
            sub.positional("name", { type: "string", describe: "Topic name" }),
          handler: async (raw) => {
            const args = raw as unknown as AdminArgs & { name: string };
            const run = await adminRun(context, args);
            const answer = await run.client.delete<{ name: string }>(
              `/v1/topics/${segment(String(args.name))}`,
            );
            if (run.json) return run.printJson(answer);
            run.print(`Deleted topic ${answer.name}\n`);
          },
        })
        .demandCommand(1, "Missing subcommand: brook topic create|list|describe|delete"),
    handler: () => {},
  };
}
