/**
 * Which partition a produced line goes to: Kafka's default partitioner for keyed
 * records (murmur2 of the key bytes, made positive, modulo the partition count, as
 * `BuiltInPartitioner.partitionForKey` does), so `brook produce` places keys where the
 * Java client, librdkafka's `murmur2_random` and kafkajs would; round-robin otherwise.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's `Utils.murmur2`: MurmurHash2, 32 bits, seed 0x9747b28c, little-endian words. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const words = length >>> 2;
  for (let i = 0; i < words; i++) {
    const at = i * 4;
    let k = data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // Kafka's switch falls through from 3 to 1: the tail bytes, then one multiply.
  const tail = length & ~3;
  const left = length & 3;
  if (left === 3) h ^= data[tail + 2]! << 16;
  if (left >= 2) h ^= data[tail + 1]! << 8;
  if (left >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** `Utils.toPositive(murmur2(key)) % partitions`. */
export function partitionForKey(key: Uint8Array, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/** Spreads keyless records one partition after the other. */
export class RoundRobin {
  /** The next partition's position in the rotation. */
  #next = 0;

  next(partitions: number): number {
    const partition = this.#next % partitions;
    this.#next = (partition + 1) % partitions;
    return partition;
  }
}
