import { describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { Writer } from "../protocol/writer.ts";
import { SeededRandom } from "../util/random.ts";
import { decodeConsumerAssignment } from "./consumer-assignment.ts";

function assignment(
  version: number,
  topics: Array<[string, number[]]>,
  trailing: number[] = [],
): Uint8Array {
  const writer = new Writer();
  writer.int16(version);
  writer.int32(topics.length);
  for (const [topic, partitions] of topics) {
    writer.int16(Buffer.byteLength(topic));
    writer.utf8(topic, Buffer.byteLength(topic));
    writer.int32(partitions.length);
    for (const partition of partitions) writer.int32(partition);
  }
  writer.int32(-1); // user_data: null
  return new Uint8Array([...writer.toBuffer(), ...trailing]);
}

describe("admin: consumer assignment", () => {
  test("admin: consumer assignment: v0 topics and partitions", () => {
    expect(
      decodeConsumerAssignment(
        assignment(0, [
          ["orders", [0, 2]],
          ["äudit", [1]],
        ]),
      ),
    ).toEqual([
      { topic: "orders", partitions: [0, 2] },
      { topic: "äudit", partitions: [1] },
    ]);
  });

  test("admin: consumer assignment: later versions are read as v0 plus trailing fields", () => {
    expect(decodeConsumerAssignment(assignment(3, [["t", [5]]], [0, 0, 0, 0, 9, 9]))).toEqual([
      { topic: "t", partitions: [5] },
    ]);
  });

  test("admin: consumer assignment: empty bytes are no assignment yet", () => {
    expect(decodeConsumerAssignment(new Uint8Array(0))).toEqual([]);
  });

  test("admin: consumer assignment: truncated or hostile bytes are null, never a throw", () => {
    const good = assignment(0, [["orders", [0, 1, 2]]]);
    for (let size = 1; size < good.length - 4; size++) {
      expect(decodeConsumerAssignment(good.subarray(0, size))).toBeNull();
    }
    expect(decodeConsumerAssignment(new Uint8Array([0, 0, 0x7f, 0xff, 0xff, 0xff]))).toBeNull();
    expect(decodeConsumerAssignment(new Uint8Array([0xff, 0xff, 0, 0, 0, 0]))).toBeNull();
    const random = new SeededRandom(11);
    for (let i = 0; i < 1000; i++) {
      const bytes = new Uint8Array(random.int(1, 64)).map(() => random.int(0, 255));
      expect(() => decodeConsumerAssignment(bytes)).not.toThrow();
    }
  });
});
