/**
 * The controller: the node that leads the Raft metadata quorum. It alone plans metadata
 * changes, against its own image, one command at a time, and appends their records to
 * the Raft log; every node (the controller too) applies committed entries to its image.
 *
 * - `ClusterMetadataWriter` is the MetadataWriter of a clustered node: on the
 *   controller it runs the command; elsewhere it forwards it (controller-rpc.ts) and
 *   waits until its own image applied the change, so a client that created a topic
 *   through any node finds it in that node's Metadata right after.
 * - `reconcile` makes the image follow SWIM (docs/cluster.md, "The controller"): a live
 *   member that is not registered, or is fenced, is registered (which unfences it); a
 *   registered broker that SWIM declared dead or gone is fenced, which moves its
 *   leaderships. It runs periodically on the controller, so a missed event or a
 *   controller change loses nothing: the next pass sees the same difference.
 *
 * Entries of the metadata log are JSON arrays of records (one command, one entry, so a
 * topic and its partitions appear together or not at all).
 */
import { logger } from "../util/log.ts";
import type { Random } from "../util/random.ts";
import type { ControllerAnswer, ControllerClient } from "./controller-rpc.ts";
import type { MetadataImage, MetadataRecord } from "./metadata-image.ts";
import {
  type CommandResult,
  type MetadataCommand,
  type MetadataWriter,
  planCommand,
  type TopicDefaults,
} from "./topics.ts";

const log = logger("controller");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How long a forwarding node waits for its image to catch up with the controller. */
export const APPLY_WAIT_MS = 5_000;

/** What the controller needs of the Raft quorum (raft/raft-node.ts provides it). */
export interface QuorumView {
  /** This node leads and has applied every entry committed before its term. */
  isReadyLeader(): boolean;
  /** The current leader's node id, null while there is none known. */
  leaderId(): number | null;
  /** Appends one entry; resolves with its index once committed and applied here. */
  propose(data: Uint8Array): Promise<number>;
  /** Resolves true once this node applied `index`, false after `timeoutMs`. */
  waitApplied(index: number, timeoutMs: number): Promise<boolean>;
}

/** What the controller needs of SWIM. */
export interface MembershipView {
  /** Members believed alive now (self included), with the Kafka address they announce. */
  alive(): ReadonlyArray<{ nodeId: number; kafka: { host: string; port: number } }>;
  /** Whether SWIM has declared the node dead or seen it leave (unknown is neither). */
  isGone(nodeId: number): boolean;
  /** Where a member's cluster port is (its --gossip address), for forwarding. */
  clusterAddress(nodeId: number): { host: string; port: number } | undefined;
}

export function encodeEntry(records: readonly MetadataRecord[]): Uint8Array {
  return encoder.encode(JSON.stringify(records));
}

export function decodeEntry(data: Uint8Array): MetadataRecord[] {
  const value: unknown = JSON.parse(decoder.decode(data));
  if (!Array.isArray(value)) throw new Error("Metadata entry is not a list of records");
  return value as MetadataRecord[];
}

export interface ClusterMetadataWriterOptions {
  readonly image: MetadataImage;
  readonly quorum: QuorumView;
  readonly membership: MembershipView;
  readonly rpc: ControllerClient;
  readonly defaults: TopicDefaults;
  readonly random: Random;
}

export class ClusterMetadataWriter implements MetadataWriter {
  readonly #options: ClusterMetadataWriterOptions;
  /** Commands run one at a time: each is planned against the image its predecessor left. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: ClusterMetadataWriterOptions) {
    this.#options = options;
  }

  async submit(command: MetadataCommand): Promise<CommandResult> {
    const { quorum, membership, rpc } = this.#options;
    if (quorum.isReadyLeader()) return (await this.execute(command)).result;
    const leader = quorum.leaderId();
    const address = leader === null ? undefined : membership.clusterAddress(leader);
    if (address === undefined) {
      return {
        ok: false,
        error: { kind: "notController", message: "No controller is known yet; retry" },
      };
    }
    const answer = await rpc.submit(address, command);
    if (
      answer.result.ok &&
      answer.index >= 0 &&
      !(await quorum.waitApplied(answer.index, APPLY_WAIT_MS))
    ) {
      log.warn("The controller's change is not applied here yet", { index: answer.index });
    }
    return answer.result;
  }

  /** Runs a command as the controller (also what forwarded commands reach). */
  execute(command: MetadataCommand): Promise<ControllerAnswer> {
    const run = this.#queue.then(() => this.#run(command));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #run(command: MetadataCommand): Promise<ControllerAnswer> {
    const { image, quorum, defaults, random } = this.#options;
    if (!quorum.isReadyLeader()) {
      return {
        result: {
          ok: false,
          error: { kind: "notController", message: "This node is not the controller" },
        },
        index: -1,
      };
    }
    if (command.kind === "createTopic" || command.kind === "createPartitions")
      await this.#fenceGone();
    const plan = planCommand(image, command, defaults, random);
    if (!plan.ok) return { result: plan, index: -1 };
    if (plan.records.length === 0) return { result: { ok: true }, index: -1 };
    const index = await quorum.propose(encodeEntry(plan.records));
    return { result: { ok: true }, index };
  }

  /**
   * Before placing replicas: fences the brokers this controller already knows are gone
   * (a new controller may not have passed yet), so that no new partition lands on a
   * dead node and stays offline.
   */
  async #fenceGone(): Promise<void> {
    const { image, quorum, membership, defaults, random } = this.#options;
    for (const command of goneBrokerFences(image, membership)) {
      const fence = planCommand(image, command, defaults, random);
      if (fence.ok && fence.records.length > 0) await quorum.propose(encodeEntry(fence.records));
    }
  }
}

/**
 * One pass of the controller over SWIM's view: the commands that make the image agree
 * with it. Pure; the caller submits them in order.
 */
export function reconcileCommands(
  image: MetadataImage,
  membership: MembershipView,
): MetadataCommand[] {
  const commands: MetadataCommand[] = [];
  for (const member of membership.alive()) {
    const known = image.broker(member.nodeId);
    const { host, port } = member.kafka;
    if (known === undefined || known.fenced || known.host !== host || known.port !== port) {
      commands.push({ kind: "registerBroker", nodeId: member.nodeId, host, port, rack: null });
    }
  }
  commands.push(...goneBrokerFences(image, membership));
  return commands;
}

/** A fence for every unfenced broker the membership says is gone. */
function goneBrokerFences(image: MetadataImage, membership: MembershipView): MetadataCommand[] {
  return image
    .liveBrokers()
    .filter((broker) => membership.isGone(broker.nodeId))
    .map((broker) => ({ kind: "fenceBroker" as const, nodeId: broker.nodeId }));
}
