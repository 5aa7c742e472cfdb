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
  const head = [
    `Cluster id: ${cluster.clusterId}`,
    `Answered by node: ${cluster.nodeId}`,
    `Controller: ${cluster.controller}`,
  ].join("\n");
  const states = new Map(cluster.members.map((member) => [member.nodeId, member.state]));
  const brokers = formatTable(
    ["NODE", "ADDRESS", "RACK", "STATE"],
    cluster.brokers.map((b) => [
      `${b.nodeId}${b.nodeId === cluster.controller ? " (controller)" : ""}`,
      `${b.host}:${b.port}`,
      b.rack,
      states.get(b.nodeId) ?? "unknown",
    ]),
  );
  return `${head}\n\n${brokers}`;
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
