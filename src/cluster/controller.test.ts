import { describe, expect, test } from "bun:test";
import { SeededRandom } from "../util/random.ts";
import { ControllerClient } from "./controller-rpc.ts";
import {
  ClusterMetadataWriter,
  decodeEntry,
  type MembershipView,
  type QuorumView,
  reconcileCommands,
} from "./controller.ts";
import { MetadataImage } from "./metadata-image.ts";
import { systemTimers } from "../util/timers.ts";

/** A quorum of one that commits after a turn of the event loop, as a real one would. */
class InstantQuorum implements QuorumView {
  readonly entries: Uint8Array[] = [];
  leader = true;
  constructor(readonly image: MetadataImage) {}
  isReadyLeader(): boolean {
    return this.leader;
  }
  leaderId(): number | null {
    return this.leader ? 1 : null;
  }
  async propose(data: Uint8Array): Promise<number> {
    await new Promise((resolve) => setTimeout(resolve, 1));
    this.entries.push(data);
    for (const record of decodeEntry(data)) this.image.apply(record);
    return this.entries.length;
  }
  async waitApplied(): Promise<boolean> {
    return true;
  }
}

function membership(alive: Array<[number, number]>, gone: number[] = []): MembershipView {
  return {
    alive: () => alive.map(([nodeId, port]) => ({ nodeId, kafka: { host: "127.0.0.1", port } })),
    isGone: (nodeId) => gone.includes(nodeId),
    clusterAddress: () => undefined,
  };
}

function writer(
  image: MetadataImage,
  quorum: QuorumView,
  view = membership([]),
): ClusterMetadataWriter {
  return new ClusterMetadataWriter({
    image,
    quorum,
    membership: view,
    rpc: new ControllerClient({ timers: systemTimers }),
    defaults: { numPartitions: 1, replicationFactor: 1 },
    random: new SeededRandom(1),
  });
}

describe("cluster: controller", () => {
  test("concurrent creations of one name: exactly one succeeds", async () => {
    const image = new MetadataImage();
    image.apply({ type: "registerBroker", nodeId: 1, host: "127.0.0.1", port: 9092, rack: null });
    const quorum = new InstantQuorum(image);
    const w = writer(image, quorum);
    const request = { name: "orders", numPartitions: 3, replicationFactor: 1, configs: [] };
    const results = await Promise.all(
      [1, 2, 3, 4].map(() => w.submit({ kind: "createTopic", request })),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok).map((r) => (r.ok ? "" : r.error.kind))).toEqual([
      "exists",
      "exists",
      "exists",
    ]);
    expect(quorum.entries).toHaveLength(1);
    expect(image.topic("orders")!.partitions).toHaveLength(3);
  });

  test("not the controller and no leader known: NOT_CONTROLLER, nothing written", async () => {
    const image = new MetadataImage();
    const quorum = new InstantQuorum(image);
    quorum.leader = false;
    const result = await writer(image, quorum).submit({ kind: "fenceBroker", nodeId: 1 });
    expect(result.ok ? "" : result.error.kind).toBe("notController");
    expect(quorum.entries).toHaveLength(0);
  });

  test("reconcile registers live members, unfences returning ones and fences the dead", () => {
    const image = new MetadataImage();
    image.apply({ type: "registerBroker", nodeId: 1, host: "127.0.0.1", port: 9001, rack: null });
    image.apply({ type: "registerBroker", nodeId: 2, host: "127.0.0.1", port: 9002, rack: null });
    image.apply({ type: "registerBroker", nodeId: 4, host: "127.0.0.1", port: 9004, rack: null });
    image.apply({ type: "fenceBroker", nodeId: 4 });
    const commands = reconcileCommands(
      image,
      membership(
        [
          [1, 9001],
          [3, 9003],
          [4, 9004],
        ],
        [2],
      ),
    );
    expect(commands).toEqual([
      { kind: "registerBroker", nodeId: 3, host: "127.0.0.1", port: 9003, rack: null },
      { kind: "registerBroker", nodeId: 4, host: "127.0.0.1", port: 9004, rack: null },
      { kind: "fenceBroker", nodeId: 2 },
    ]);
    // A broker SWIM does not know (yet) is left alone.
    expect(reconcileCommands(image, membership([[1, 9001]]))).toEqual([]);
  });
});
