/**
 * A machine crash with real processes (issue 13, KIP-966): the last in-sync replica of a
 * partition loses its unsynced tail in a power cut, while a replica that left the ISR
 * below min.insync.replicas (an eligible leader replica) still holds everything
 * acknowledged. The restarted node must say it crashed, and the controller must then
 * wait for the eligible replica instead of electing the one that lost data.
 *
 * Three processes: node 1 is the only Raft voter (so the quorum lives through the rest),
 * and the partition's replicas are nodes 2 and 3 with min.insync.replicas 2. The power
 * cut is made by hand: node 2 is killed, its log cut back to its first batch (what a
 * machine loses when nothing after it was fsynced), and its boot record given another
 * boot id, as after a reboot.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { eventually, startBroker, type TestBroker } from "../helpers/broker.ts";
import {
  brokerLogs,
  partitionsOf,
  readBack,
  restart,
  stopCluster,
  whole,
} from "./cluster-helpers.ts";

const TOPIC = "power-cut";
const PER_SEND = 50;
const SENDS = 5;

let nodes: TestBroker[] = [];

beforeAll(async () => {
  const first = await startBroker({ args: ["--node-id", "1", "--voters", "1"] });
  nodes = [first];
  for (const id of [2, 3])
    nodes.push(
      await startBroker({
        args: ["--node-id", String(id), "--voters", "1", "--join", first.gossip],
      }),
    );
  await whole(first, 3, 1);
});

afterAll(async () => {
  await stopCluster(nodes);
});

const byId = (id: number) => nodes.find((node) => node.nodeId === id)!;

async function partitionOn(observer: TestBroker) {
  return (await partitionsOf(observer, TOPIC))[0];
}

/** Ends of the batches in a segment file, in bytes (each: 8-byte offset, 4-byte length, body). */
function batchEnds(segment: Buffer): number[] {
  const ends: number[] = [];
  for (let at = 0; at + 12 <= segment.length;) {
    at += 12 + segment.readInt32BE(at + 8);
    ends.push(at);
  }
  return ends;
}

describe("machine crash: eligible leader replicas", () => {
  test("the last ISR member back from a power cut does not lead; the eligible replica that kept every acknowledged write does", async () => {
    const controller = nodes[0]!;
    const kafka = new Kafka({
      brokers: [controller.bootstrap],
      logLevel: logLevel.NOTHING,
      retry: { retries: 8, initialRetryTime: 100 },
    });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        {
          topic: TOPIC,
          replicaAssignment: [{ partition: 0, replicas: [2, 3] }],
          configEntries: [{ name: "min.insync.replicas", value: "2" }],
        },
      ],
    });
    await admin.disconnect();
    await eventually(
      "both replicas in sync",
      async () => ((await partitionOn(controller))?.isr.length === 2 ? true : null),
      30_000,
    );
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const acked = new Map<number, string>();
    for (let send = 0; send < SENDS; send++) {
      const values = Array.from({ length: PER_SEND }, (_, i) => `v${send * PER_SEND + i}`);
      const [result] = await producer.send({
        topic: TOPIC,
        acks: -1,
        messages: values.map((value) => ({ value, partition: 0 })),
      });
      const base = Number(result!.baseOffset);
      values.forEach((value, i) => acked.set(base + i, value));
    }
    await producer.disconnect();
    expect(acked.size).toBe(PER_SEND * SENDS);

    // Node 3 dies: the ISR [2] is below the minimum, so 3 stays eligible (ELR) and the
    // high watermark stops where 3 left it.
    await byId(3).kill();
    const shrunk = await eventually(
      "3 fenced into the ELR",
      async () => {
        const p = await partitionOn(controller);
        return p !== undefined && p.isr.join() === "2" && p.elr.join() === "3" ? p : null;
      },
      30_000,
    );
    expect(shrunk.leader).toBe(2);

    // The power cut: node 2 killed, its log back to the first batch, a new boot id.
    const leader = byId(2);
    await leader.kill();
    const dir = join(leader.dataDir, `${TOPIC}-0`);
    const segment = readdirSync(dir).find((name) => name.endsWith(".log"))!;
    const ends = batchEnds(readFileSync(join(dir, segment)));
    expect(ends.length).toBeGreaterThanOrEqual(SENDS);
    truncateSync(join(dir, segment), ends[0]!);
    // Nothing below the cut was promised to be on disk: the recovery point is not past it.
    const recovery = readFileSync(
      join(leader.dataDir, "checkpoints", "recovery-point-offset-checkpoint"),
      "utf8",
    );
    const point = recovery.split("\n").find((line) => line.startsWith(`${TOPIC} 0 `));
    expect(Number(point?.split(" ")[2] ?? 0)).toBeLessThanOrEqual(PER_SEND);
    const bootFile = join(leader.dataDir, "checkpoints", "boot");
    const boot = JSON.parse(readFileSync(bootFile, "utf8")) as { bootId: string };
    writeFileSync(bootFile, JSON.stringify({ ...boot, bootId: "a-boot-before-the-power-cut" }));

    // On its ports, as a machine that reboots brings its service back.
    const back = await restart(leader, controller, { samePorts: true });
    nodes = nodes.map((node) => (node.nodeId === 2 ? back : node));
    expect(back.stderr()).toContain("Started after a machine crash");
    // As the last ISR member it would lead at once without 200 acknowledged values;
    // reported lossy, it leaves the ISR and the partition waits for 3.
    const waiting = await eventually(
      "2 registered as lossy and out of the ISR",
      async () => {
        const p = await partitionOn(controller);
        return p !== undefined && p.isr.length === 0 ? p : null;
      },
      30_000,
    ).catch(async (error: Error) => {
      // A full run once waited past 30 s here, when 2 came back on new ports: then it can
      // register only after SWIM declares its old process dead. Say what the cluster did.
      const partition = JSON.stringify(await partitionOn(controller));
      throw new Error(`${error.message}\npartition: ${partition}\n${brokerLogs(nodes)}`);
    });
    expect(waiting).toMatchObject({ leader: -1, isr: [], elr: [3] });

    const third = await restart(byId(3), controller, { samePorts: true });
    nodes = nodes.map((node) => (node.nodeId === 3 ? third : node));
    // 3 leads from the ELR; 2 truncates to it, copies it and rejoins the ISR.
    await eventually(
      "3 leads and 2 is back in the ISR",
      async () => {
        const p = await partitionOn(controller);
        return p?.leader === 3 && p.isr.length === 2 ? p : null;
      },
      60_000,
    );
    for (const reader of [third, back]) {
      const stored = await readBack(reader, TOPIC, 0);
      for (const [offset, value] of acked) expect(stored.get(offset)).toBe(value);
    }
  }, 180_000);
});
