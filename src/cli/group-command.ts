/**
 * `brook group list|describe|delete`, through the admin API. `describe` shows members
 * with their assigned partitions and, per committed partition, the committed offset,
 * the high watermark and the lag between them.
 */
import type { Argv, CommandModule } from "yargs";
import type { GroupSummary, GroupView } from "../admin/views.ts";
import { type AdminArgs, addAdminOptions, adminRun, segment } from "./admin-options.ts";
import type { CliContext } from "./cli.ts";
import { formatTable } from "./output.ts";

function assignmentText(assignment: GroupView["members"][number]["assignment"]): string {
  if (assignment === null) return "(not ConsumerProtocol)";
  if (assignment.length === 0) return "-";
  return assignment.map(({ topic, partitions }) => `${topic}:${partitions.join(",")}`).join(" ");
}

function describeGroup(group: GroupView): string {
  let text = [
    `Group: ${group.groupId}`,
    `State: ${group.state}`,
    `Protocol: ${group.protocolType === "" ? "-" : group.protocolType}${group.protocol === "" ? "" : ` (${group.protocol})`}`,
    `Generation: ${group.generationId}`,
    `Leader: ${group.leaderId ?? "-"}`,
    `Total lag: ${group.totalLag}`,
  ].join("\n");
  text += "\n\n";
  text +=
    group.members.length === 0
      ? "No members\n"
      : formatTable(
          ["MEMBER", "CLIENT-ID", "HOST", "INSTANCE-ID", "ASSIGNMENT"],
          group.members.map((m) => [
            m.memberId,
            m.clientId,
            m.clientHost,
            m.groupInstanceId,
            assignmentText(m.assignment),
          ]),
        );
  text += "\n";
  text +=
    group.offsets.length === 0
      ? "No committed offsets\n"
      : formatTable(
          ["TOPIC", "PARTITION", "COMMITTED", "HIGH-WATERMARK", "LAG"],
          group.offsets.map((o) => [
            o.topic,
            o.partition,
            o.committedOffset,
            o.highWatermark,
            o.lag,
          ]),
        );
  return text;
}

export function groupCommand(context: CliContext): CommandModule {
  return {
    command: "group",
    describe: "List, describe and delete consumer groups (admin API)",
    builder: (argv: Argv) =>
      addAdminOptions(argv)
        .command({
          command: "list",
          describe: "List groups",
          handler: async (raw) => {
            const run = await adminRun(context, raw as AdminArgs);
            const { groups } = await run.client.get<{ groups: GroupSummary[] }>("/v1/groups");
            if (run.json) return run.printJson({ groups });
            if (groups.length === 0) return run.print("No groups\n");
            run.print(
              formatTable(
                ["GROUP", "STATE", "PROTOCOL-TYPE", "MEMBERS"],
                groups.map((g) => [
                  g.groupId,
                  g.state,
                  g.protocolType === "" ? "-" : g.protocolType,
                  g.memberCount,
                ]),
              ),
            );
          },
        })
        .command({
          command: "describe <group>",
          describe: "Show a group's members, assignments, committed offsets and lag",
          builder: (sub: Argv) => sub.positional("group", { type: "string", describe: "Group id" }),
          handler: async (raw) => {
            const args = raw as unknown as AdminArgs & { group: string };
            const run = await adminRun(context, args);
            const group = await run.client.get<GroupView>(
              `/v1/groups/${segment(String(args.group))}`,
            );
            if (run.json) return run.printJson(group);
            run.print(describeGroup(group));
          },
        })
        .command({
          command: "delete <group>",
          describe: "Delete an empty group and its committed offsets",
          builder: (sub: Argv) => sub.positional("group", { type: "string", describe: "Group id" }),
          handler: async (raw) => {
            const args = raw as unknown as AdminArgs & { group: string };
            const run = await adminRun(context, args);
            const answer = await run.client.delete<{ groupId: string; offsetsDeleted: number }>(
              `/v1/groups/${segment(String(args.group))}`,
            );
            if (run.json) return run.printJson(answer);
            run.print(
              `Deleted group ${answer.groupId} and ${answer.offsetsDeleted} committed offsets\n`,
            );
          },
        })
        .demandCommand(1, "Missing subcommand: brook group list|describe|delete"),
    handler: () => {},
  };
}
