import { describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import { SeededRandom } from "../util/random.ts";
import { murmur2, partitionForKey, RoundRobin } from "./partitioner.ts";

// kafkajs' Java-compatible murmur2 (a devDependency), as a second opinion on random keys.
const kafkajsMurmur2 = createRequire(import.meta.url)(
  "kafkajs/src/producer/partitioners/default/murmur2.js",
) as (key: Buffer) => number;

describe("cli: partitioner", () => {
  // Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/common/utils).
  const javaCases: Array<[string, number]> = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    ["abc", 479470107],
  ];
  for (const [key, hash] of javaCases) {
    test(`cli: partitioner: murmur2(${JSON.stringify(key)}) is Kafka's ${hash}`, () => {
      expect(murmur2(Buffer.from(key))).toBe(hash);
    });
  }

  test("cli: partitioner: murmur2 agrees with kafkajs on 2000 seeded random keys of every tail length", () => {
    const random = new SeededRandom(42);
    for (let i = 0; i < 2000; i++) {
      const key = Buffer.alloc(random.int(0, 40));
      for (let j = 0; j < key.length; j++) key[j] = random.int(0, 255);
      expect(murmur2(key)).toBe(kafkajsMurmur2(key));
    }
  });

  test("cli: partitioner: a key's partition is toPositive(murmur2) % partitions", () => {
    expect(partitionForKey(Buffer.from("21"), 4)).toBe((-973932308 & 0x7fffffff) % 4);
    expect(partitionForKey(Buffer.from("abc"), 7)).toBe(479470107 % 7);
    for (let partitions = 1; partitions <= 16; partitions++) {
      const partition = partitionForKey(Buffer.from("foobar"), partitions);
      expect(partition).toBeGreaterThanOrEqual(0);
      expect(partition).toBeLessThan(partitions);
    }
  });

  test("cli: partitioner: keyless lines go round-robin", () => {
    const robin = new RoundRobin();
    expect(Array.from({ length: 7 }, () => robin.next(3))).toEqual([0, 1, 2, 0, 1, 2, 0]);
    expect(robin.next(1)).toBe(0);
  });
});
