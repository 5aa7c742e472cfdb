/**
 * `brook cluster status`, through the admin API: cluster id, the node answering, the
 * controller, brokers and members.
 */
import type { Argv, CommandModule } from "yargs";
import type { ClusterView } from "../admin/views.ts";
import { type AdminArgs, addAdminOptions, adminRun } from "./admin-options.ts";
import type { CliContext } from "./cli.ts";
import { formatTable } from "./output.ts";

function describeCluster(cluster: ClusterView): string {
  const quorum = cluster.quorum;
  const head = [
    `Cluster id: ${cluster.clusterId}`,
    `Answered by node: ${cluster.nodeId}`,
    `Controller: ${cluster.controller ?? "none (election in progress)"}`,
    ...(quorum === null
      ? []
      : [
          `Raft: ${quorum.role}, term ${quorum.term}, commit index ${quorum.commitIndex}, applied ${quorum.appliedIndex}`,
          `Voters: ${quorum.voters.join(", ") || "-"}; observers: ${quorum.observers.join(", ") || "-"}`,
        ]),
  ].join("\n");
  const members = new Map(cluster.members.map((member) => [member.nodeId, member]));
  const ids = [...new Set([...cluster.brokers.map((b) => b.nodeId), ...members.keys()])].sort(
    (a, b) => a - b,
  );
  const brokers = new Map(cluster.brokers.map((b) => [b.nodeId, b]));
  const rows = formatTable(
    ["NODE", "KAFKA", "GOSSIP", "SWIM", "INCARNATION", "BROKER"],
    ids.map((id) => {
      const member = members.get(id);
      const broker = brokers.get(id);
      return [
        `${id}${id === cluster.controller ? " (controller)" : ""}${member?.self ? " *" : ""}`,
        broker === undefined ? (member?.kafka ?? null) : `${broker.host}:${broker.port}`,
        member?.gossip || null,
        member?.state ?? "unknown",
        member === undefined ? null : String(member.incarnation),
        broker === undefined ? "unregistered" : broker.fenced ? "fenced" : "registered",
      ];
    }),
  );
  return `${head}\n\n${rows}`;
}

export function clusterCommand(context: CliContext): CommandModule {
  return {
    command: "cluster",
    describe: "Show the cluster (admin API)",
    builder: (argv: Argv) =>
      addAdminOptions(argv)
        .command({
          command: "status",
          describe: "Cluster id, controller, brokers and their state",
          handler: async (raw) => {
            const run = await adminRun(context, raw as AdminArgs);
            const cluster = await run.client.get<ClusterView>("/v1/cluster");
            if (run.json) return run.printJson(cluster);
            run.print(describeCluster(cluster));
          },
        })
        .demandCommand(1, "Missing subcommand: brook cluster status"),
    handler: () => {},
  };
}
