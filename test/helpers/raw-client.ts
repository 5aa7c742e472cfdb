/**
 * A minimal Kafka client on Brook's own codec, for tests that must send exact bytes
 * (bad input, specific versions) and read exact answers. Requests are pipelined; answers
 * are matched by correlation id. The client itself lives in `src/client/kafka-client.ts`,
 * where `brook produce` and `brook consume` use it too. Beside it: the one-partition
 * Produce and Fetch the storage tests send, and a decoder of what Fetch returns.
 */
import type { KafkaConnection } from "../../src/client/kafka-client.ts";
import { readBaseOffset, readBatchSize } from "../../src/protocol/record-batch.ts";
import { decodeRecords } from "../../src/protocol/records.ts";
export { KafkaConnection as RawClient } from "../../src/client/kafka-client.ts";

const PRODUCE = 0;
const FETCH = 1;

/** Produce v9 of `records` to one partition; its partition answer. */
export async function producePartition(
  client: KafkaConnection,
  topic: string,
  partition: number,
  records: Uint8Array,
  acks = 1,
): Promise<any> {
  const answer = await client.request(PRODUCE, 9, {
    transactionalId: null,
    acks,
    timeoutMs: 5000,
    topicData: [{ name: topic, partitionData: [{ index: partition, records }] }],
  });
  return answer.responses[0].partitionResponses[0];
}

/** One consumer's Fetch v12 of one partition at `fetchOffset`, not waiting; its partition answer. */
export async function fetchPartition(
  client: KafkaConnection,
  topic: string,
  partition: number,
  fetchOffset: number,
  maxBytes: number,
): Promise<any> {
  const answer = await client.request(FETCH, 12, {
    replicaId: -1,
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes,
    isolationLevel: 0,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [
      {
        topic,
        partitions: [
          {
            partition,
            currentLeaderEpoch: -1,
            fetchOffset,
            logStartOffset: -1,
            partitionMaxBytes: maxBytes,
          },
        ],
      },
    ],
    forgottenTopicsData: [],
    rackId: "",
  });
  return answer.responses[0].partitions[0];
}

/** Every record of fetched batches as [offset, value as text], in order. */
export function recordValues(records: Uint8Array): Array<[number, string]> {
  const values: Array<[number, string]> = [];
  for (let at = 0; at < records.byteLength;) {
    const size = readBatchSize(records, at);
    const batch = records.subarray(at, at + size);
    const base = readBaseOffset(batch, 0);
    for (const record of decodeRecords(batch)!)
      values.push([base + record.offsetDelta, new TextDecoder().decode(record.value!)]);
    at += size;
  }
  return values;
}
