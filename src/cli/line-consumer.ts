/**
 * The consuming side of `brook consume` (see consume-command.ts for the command): every
 * partition of a topic read with long-polling Fetch requests to each partition's leader,
 * records written as lines.
 *
 * Start positions: without a group, ListOffsets gives the log start (from beginning) or
 * the end. With a group, OffsetFetch gives the group's committed offsets, and partitions
 * without one start as above.
 *
 * A group here is deliberately not joined: no JoinGroup/SyncGroup, no assignor. The
 * consumer takes every partition itself and commits its positions under the group with
 * generation -1 and no member id, which is Kafka's "commit outside group management"
 * (what a consumer with manually assigned partitions does). Commits are sent after the
 * records they cover are written, so a crash re-prints rather than loses lines (at least
 * once). The broker refuses such commits while the group has real members.
 *
 * Per batch only its header is read unless it holds records at or past the position;
 * compressed batches are decompressed to be printed (`uncompressedTwin`).
 */
import { Buffer } from "node:buffer";
import { uncompressedTwin } from "../protocol/compression.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  FetchRequest,
  FetchResponse,
  ListOffsetsRequest,
  ListOffsetsResponse,
  OffsetCommitRequest,
  OffsetCommitResponse,
  OffsetFetchRequest,
  OffsetFetchResponse,
} from "../protocol/generated/index.ts";
import {
  COMPRESSION_MASK,
  readAttributes,
  readBaseOffset,
  readBatchSize,
  readIsControl,
  readLastOffset,
  RECORDS_AT,
} from "../protocol/record-batch.ts";
import { decodeRecords } from "../protocol/records.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import {
  errorName,
  KafkaClientError,
  KafkaCluster,
  type PartitionInfo,
  VERSIONS,
} from "../client/kafka-client.ts";
import { type CliIo, Progress, writeAll } from "./output.ts";

/** How long one Fetch may wait at the broker for records. */
export const FETCH_WAIT_MS = 500;
export const FETCH_BYTES_MAX = 8 * 1024 * 1024;
export const PARTITION_FETCH_BYTES_MAX = 1024 * 1024;
const ListOffsets = { request: ListOffsetsRequest, response: ListOffsetsResponse };
const EARLIEST = -2;
const LATEST = -1;

/** Errors after which the metadata is read again and the fetch retried. */
const REFRESH_ON = new Set<number>([
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.LEADER_NOT_AVAILABLE,
  ErrorCode.UNKNOWN_LEADER_EPOCH,
  ErrorCode.FENCED_LEADER_EPOCH,
  ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
  ErrorCode.KAFKA_STORAGE_ERROR,
]);

export interface ConsumeOptions {
  readonly topic: string;
  readonly bootstrap: { host: string; port: number };
  readonly group: string | null;
  readonly fromBeginning: boolean;
  readonly maxMessages: number | null;
  readonly timeoutMs: number | null;
  readonly keySeparator: string | null;
}

const NEWLINE = new Uint8Array([0x0a]);

export class LineConsumer {
  readonly #options: ConsumeOptions;
  readonly #cluster: KafkaCluster;
  #partitions: PartitionInfo[] = [];
  /** Next offset to print, per partition. */
  readonly #positions = new Map<number, number>();
  /** Positions last committed (with --group), per partition. */
  readonly #committed = new Map<number, number>();
  readonly #separator: Uint8Array | null;
  consumed = 0;

  constructor(options: ConsumeOptions) {
    this.#options = options;
    this.#cluster = new KafkaCluster(options.bootstrap, { clientId: "brook-consume" });
    this.#separator =
      options.keySeparator === null ? null : new TextEncoder().encode(options.keySeparator);
  }

  get done(): boolean {
    return this.#options.maxMessages !== null && this.consumed >= this.#options.maxMessages;
  }

  async open(): Promise<void> {
    await this.#cluster.connect();
    this.#partitions = await this.#cluster.topic(this.#options.topic);
    const unset = this.#partitions.map((p) => p.partition);
    if (this.#options.group !== null) {
      for (const [partition, offset] of await this.#fetchCommitted(this.#options.group)) {
        this.#positions.set(partition, offset);
        this.#committed.set(partition, offset);
      }
    }
    const reset = unset.filter((partition) => !this.#positions.has(partition));
    await this.#resetPositions(reset);
  }

  /**
   * One round: a long-polling Fetch to every leader, records written to `out` in offset
   * order per partition, then (with --group) a commit of the new positions. Resolves to
   * how many records were written.
   */
  async poll(out: NodeJS.WritableStream, waitMs: number): Promise<number> {
    const byLeader = new Map<number, number[]>();
    for (const { partition, leader } of this.#partitions) {
      let list = byLeader.get(leader);
      if (list === undefined) byLeader.set(leader, (list = []));
      list.push(partition);
    }
    const answers = await Promise.all(
      [...byLeader].map(async ([leader, partitions]) => {
        if (leader < 0) return { partitions: [] as const, refresh: true };
        const connection = await this.#cluster.broker(leader);
        const answer = await connection.send(
          { request: FetchRequest, response: FetchResponse },
          VERSIONS.fetch,
          {
            replicaId: -1,
            maxWaitMs: waitMs,
            minBytes: 1,
            maxBytes: FETCH_BYTES_MAX,
            isolationLevel: 0,
            sessionId: 0,
            sessionEpoch: -1,
            topics: [
              {
                topic: this.#options.topic,
                partitions: partitions.map((partition) => ({
                  partition,
                  currentLeaderEpoch: -1,
                  fetchOffset: this.#positions.get(partition)!,
                  lastFetchedEpoch: -1,
                  logStartOffset: -1,
                  partitionMaxBytes: PARTITION_FETCH_BYTES_MAX,
                })),
              },
            ],
            forgottenTopicsData: [],
            rackId: "",
          },
          waitMs,
        );
        if (answer.errorCode !== ErrorCode.NONE)
          throw new KafkaClientError(`Fetch failed: ${errorName(answer.errorCode)}`);
        return {
          partitions: answer.responses.flatMap((topic) => topic.partitions),
          refresh: false,
        };
      }),
    );

    const chunks: Uint8Array[] = [];
    let written = 0;
    let refresh = false;
    const outOfRange: number[] = [];
    for (const answer of answers) {
      refresh ||= answer.refresh;
      for (const data of answer.partitions) {
        if (data.errorCode === ErrorCode.OFFSET_OUT_OF_RANGE) {
          outOfRange.push(data.partitionIndex);
          continue;
        }
        if (REFRESH_ON.has(data.errorCode)) {
          refresh = true;
          continue;
        }
        if (data.errorCode !== ErrorCode.NONE) {
          throw new KafkaClientError(
            `Fetch of ${this.#options.topic}-${data.partitionIndex} failed: ${errorName(data.errorCode)}`,
          );
        }
        if (data.records !== null)
          written += this.#takeRecords(data.partitionIndex, data.records, chunks);
      }
    }
    if (chunks.length > 0) await writeAll(out, Buffer.concat(chunks));
    if (outOfRange.length > 0) await this.#resetPositions(outOfRange);
    if (refresh) this.#partitions = await this.#cluster.topic(this.#options.topic);
    await this.commit();
    return written;
  }

  /** Commits positions that moved (with --group); a no-op otherwise. */
  async commit(): Promise<void> {
    const group = this.#options.group;
    if (group === null) return;
    const moved = [...this.#positions].filter(
      ([partition, offset]) => this.#committed.get(partition) !== offset,
    );
    if (moved.length === 0) return;
    const answer = await (
      await this.#cluster.coordinator(group)
    ).send(
      { request: OffsetCommitRequest, response: OffsetCommitResponse },
      VERSIONS.offsetCommit,
      {
        groupId: group,
        generationIdOrMemberEpoch: -1,
        memberId: "",
        groupInstanceId: null,
        topics: [
          {
            name: this.#options.topic,
            partitions: moved.map(([partitionIndex, committedOffset]) => ({
              partitionIndex,
              committedOffset,
              committedLeaderEpoch: -1,
              committedMetadata: "",
            })),
          },
        ],
      },
    );
    for (const topic of answer.topics) {
      for (const partition of topic.partitions) {
        if (partition.errorCode === ErrorCode.NONE) continue;
        const name = errorName(partition.errorCode);
        const hint =
          partition.errorCode === ErrorCode.UNKNOWN_MEMBER_ID ||
          partition.errorCode === ErrorCode.ILLEGAL_GENERATION
            ? ` (group ${group} has members; brook consume --group commits outside group management)`
            : "";
        throw new KafkaClientError(
          `Offset commit of ${this.#options.topic}-${partition.partitionIndex} for group ${group} failed: ${name}${hint}`,
        );
      }
    }
    for (const [partition, offset] of moved) this.#committed.set(partition, offset);
  }

  close(): void {
    this.#cluster.close();
  }

  /** Appends the lines of records at or past the partition's position; advances it. */
  #takeRecords(partition: number, records: Uint8Array, chunks: Uint8Array[]): number {
    let position = this.#positions.get(partition)!;
    let written = 0;
    let at = 0;
    while (at + RECORDS_AT <= records.byteLength && !this.done) {
      const size = readBatchSize(records, at);
      if (at + size > records.byteLength) break; // A partial batch at the end (Kafka may send one).
      const batch = records.subarray(at, at + size);
      at += size;
      const lastOffset = readLastOffset(batch, 0);
      if (lastOffset < position) continue;
      if (!readIsControl(batch, 0)) {
        const plain =
          (readAttributes(batch, 0) & COMPRESSION_MASK) === 0 ? batch : uncompressedTwin(batch);
        const decoded = decodeRecords(plain);
        if (decoded === null)
          throw new KafkaClientError(
            `Unreadable record batch in ${this.#options.topic}-${partition} at offset ${readBaseOffset(batch, 0)}`,
          );
        const baseOffset = readBaseOffset(batch, 0);
        for (const record of decoded) {
          const offset = baseOffset + record.offsetDelta;
          if (offset < position) continue;
          if (this.#separator !== null) {
            if (record.key !== null) chunks.push(record.key);
            chunks.push(this.#separator);
          }
          if (record.value !== null) chunks.push(record.value);
          chunks.push(NEWLINE);
          position = offset + 1;
          written++;
          this.consumed++;
          if (this.done) break;
        }
      }
      // Past the whole batch unless --max-messages stopped inside it (compaction leaves gaps).
      if (!this.done) position = Math.max(position, lastOffset + 1);
    }
    this.#positions.set(partition, position);
    return written;
  }

  async #fetchCommitted(group: string): Promise<Map<number, number>> {
    const answer = await (
      await this.#cluster.coordinator(group)
    ).send({ request: OffsetFetchRequest, response: OffsetFetchResponse }, VERSIONS.offsetFetch, {
      groupId: group,
      topics: [
        { name: this.#options.topic, partitionIndexes: this.#partitions.map((p) => p.partition) },
      ],
      requireStable: false,
    });
    if (answer.errorCode !== ErrorCode.NONE) {
      throw new KafkaClientError(
        `Offset fetch for group ${group} failed: ${errorName(answer.errorCode)}`,
      );
    }
    const committed = new Map<number, number>();
    for (const topic of answer.topics) {
      for (const partition of topic.partitions) {
        if (partition.errorCode !== ErrorCode.NONE) {
          throw new KafkaClientError(
            `Offset fetch of ${this.#options.topic}-${partition.partitionIndex} failed: ${errorName(partition.errorCode)}`,
          );
        }
        if (partition.committedOffset >= 0)
          committed.set(partition.partitionIndex, partition.committedOffset);
      }
    }
    return committed;
  }

  /** Sets positions to the log start (--from-beginning) or end, asking each leader. */
  async #resetPositions(partitions: readonly number[]): Promise<void> {
    if (partitions.length === 0) return;
    const timestamp = this.#options.fromBeginning ? EARLIEST : LATEST;
    const byLeader = new Map<number, number[]>();
    for (const partition of partitions) {
      const leader = this.#partitions[partition]?.leader ?? -1;
      if (leader < 0)
        throw new KafkaClientError(`Partition ${this.#options.topic}-${partition} has no leader`);
      let list = byLeader.get(leader);
      if (list === undefined) byLeader.set(leader, (list = []));
      list.push(partition);
    }
    await Promise.all(
      [...byLeader].map(async ([leader, list]) => {
        const connection = await this.#cluster.broker(leader);
        const answer = await connection.send(ListOffsets, VERSIONS.listOffsets, {
          replicaId: -1,
          isolationLevel: 0,
          topics: [
            {
              name: this.#options.topic,
              partitions: list.map((partitionIndex) => ({
                partitionIndex,
                currentLeaderEpoch: -1,
                timestamp,
              })),
            },
          ],
        });
        for (const topic of answer.topics) {
          for (const partition of topic.partitions) {
            if (partition.errorCode !== ErrorCode.NONE) {
              throw new KafkaClientError(
                `ListOffsets of ${this.#options.topic}-${partition.partitionIndex} failed: ${errorName(partition.errorCode)}`,
              );
            }
            this.#positions.set(partition.partitionIndex, partition.offset);
          }
        }
      }),
    );
  }
}

/** Consumes until done (see the module note); resolves to how many records were written. */
export async function runConsume(
  options: ConsumeOptions,
  io: CliIo,
  stop: AbortSignal,
  clock: Clock = systemClock,
): Promise<number> {
  const consumer = new LineConsumer(options);
  const progress = new Progress(io, clock);
  try {
    await consumer.open();
    let lastRecordMs = clock.monotonicMs();
    while (!consumer.done && !stop.aborted) {
      let waitMs = FETCH_WAIT_MS;
      if (options.timeoutMs !== null) {
        const left = lastRecordMs + options.timeoutMs - clock.monotonicMs();
        if (left <= 0) break;
        waitMs = Math.min(waitMs, Math.ceil(left));
      }
      const written = await consumer.poll(io.stdout, waitMs);
      if (written > 0) lastRecordMs = clock.monotonicMs();
      progress.update(() => `Consumed ${consumer.consumed} records from ${options.topic}`);
    }
    await consumer.commit();
    progress.done(`Consumed ${consumer.consumed} records from ${options.topic}`);
    return consumer.consumed;
  } finally {
    consumer.close();
  }
}
