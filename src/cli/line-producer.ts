/**
 * The producing side of `brook produce` (see produce-command.ts for the command): lines
 * become records sent with acks=-1 over the Kafka protocol.
 *
 * Partitions: a keyed line goes where Kafka's default partitioner puts its key (murmur2,
 * `partitioner.ts`); keyless lines go round-robin. Lines are gathered into one batch per
 * partition and sent to each partition's leader, one Produce request per leader, when
 * `LINES_PER_FLUSH_MAX` lines or `BYTES_PER_FLUSH_MAX` bytes are waiting, or `LINGER_MS`
 * after the first waiting line (so interactive input goes out at once). One flush is in
 * flight at a time, which keeps each partition's lines in order; while a full flush is
 * sent, stdin is not read, which bounds memory.
 *
 * Retriable errors (not leader, leader unknown yet, timeouts) refresh the metadata and
 * retry that partition's batch, at most `PRODUCE_ATTEMPTS_MAX` times; anything else is
 * the command's failure, naming the Kafka error.
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import { ProduceRequest, ProduceResponse } from "../protocol/generated/index.ts";
import { type BuildRecord, buildBatch } from "../protocol/record-batch-builder.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import {
  errorName,
  KafkaClientError,
  KafkaCluster,
  type PartitionInfo,
  VERSIONS,
} from "../client/kafka-client.ts";
import { type CliIo, Progress } from "./output.ts";
import { partitionForKey, RoundRobin } from "./partitioner.ts";

export const LINES_PER_FLUSH_MAX = 5000;
/** Well below max.message.bytes (1 MiB by default), so one partition's batch fits. */
export const BYTES_PER_FLUSH_MAX = 512 * 1024;
export const LINGER_MS = 5;
export const PRODUCE_ATTEMPTS_MAX = 5;
const RETRY_BACKOFF_MS = 200;
const PRODUCE_TIMEOUT_MS = 30_000;

const RETRIABLE = new Set<number>([
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.LEADER_NOT_AVAILABLE,
  ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
  ErrorCode.REQUEST_TIMED_OUT,
  ErrorCode.NOT_ENOUGH_REPLICAS,
  ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
  ErrorCode.KAFKA_STORAGE_ERROR,
]);

export interface ProduceOptions {
  readonly topic: string;
  readonly bootstrap: { host: string; port: number };
  readonly keySeparator: string | null;
}

const encoder = new TextEncoder();

/** Lines waiting to be sent, per partition. */
class Pending {
  readonly byPartition = new Map<number, BuildRecord[]>();
  lines = 0;
  bytes = 0;

  add(partition: number, record: BuildRecord, bytes: number): void {
    let records = this.byPartition.get(partition);
    if (records === undefined) this.byPartition.set(partition, (records = []));
    records.push(record);
    this.lines++;
    this.bytes += bytes;
  }

  get full(): boolean {
    return this.lines >= LINES_PER_FLUSH_MAX || this.bytes >= BYTES_PER_FLUSH_MAX;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class LineProducer {
  readonly #options: ProduceOptions;
  readonly #cluster: KafkaCluster;
  readonly #clock: Clock;
  #partitions: PartitionInfo[] = [];
  readonly #roundRobin = new RoundRobin();
  #pending = new Pending();
  /** The flush in flight, or the last one; flushes run one after the other. */
  #chain: Promise<void> = Promise.resolve();
  #failure: Error | null = null;
  #lingerTimer: ReturnType<typeof setTimeout> | null = null;
  /** Lines acknowledged by the brokers. */
  sent = 0;

  constructor(options: ProduceOptions, clock: Clock = systemClock) {
    this.#options = options;
    this.#clock = clock;
    this.#cluster = new KafkaCluster(options.bootstrap, { clientId: "brook-produce" });
  }

  async open(): Promise<void> {
    await this.#cluster.connect();
    this.#partitions = await this.#cluster.topic(this.#options.topic);
  }

  /** Adds one line; resolves at once unless a full flush must go first. */
  async add(line: string, lineNumber: number): Promise<void> {
    if (this.#failure !== null) throw this.#failure;
    const separator = this.#options.keySeparator;
    let key: Uint8Array | null = null;
    let value = line;
    if (separator !== null) {
      const at = line.indexOf(separator);
      if (at < 0) {
        await this.flush();
        throw new KafkaClientError(
          `Line ${lineNumber} has no key separator ${JSON.stringify(separator)}`,
        );
      }
      key = encoder.encode(line.slice(0, at));
      value = line.slice(at + separator.length);
    }
    const valueBytes = encoder.encode(value);
    const count = this.#partitions.length;
    const partition = key === null ? this.#roundRobin.next(count) : partitionForKey(key, count);
    this.#pending.add(
      partition,
      { key, value: valueBytes },
      valueBytes.byteLength + (key?.byteLength ?? 0),
    );
    if (this.#pending.full) {
      await this.flush();
    } else if (this.#lingerTimer === null) {
      // A failure is kept and thrown by the next add or flush.
      this.#lingerTimer = setTimeout(() => this.flush().catch(() => {}), LINGER_MS);
    }
  }

  /** Sends what is waiting; resolves when it and every earlier flush are acknowledged. */
  flush(): Promise<void> {
    if (this.#lingerTimer !== null) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = null;
    const pending = this.#pending;
    if (pending.lines > 0) {
      this.#pending = new Pending();
      this.#chain = this.#chain.then(async () => {
        if (this.#failure !== null) return;
        try {
          await this.#send(pending);
          this.sent += pending.lines;
        } catch (error) {
          this.#failure = error instanceof Error ? error : new Error(String(error));
        }
      });
    }
    return this.#chain.then(() => {
      if (this.#failure !== null) throw this.#failure;
    });
  }

  close(): void {
    if (this.#lingerTimer !== null) clearTimeout(this.#lingerTimer);
    this.#cluster.close();
  }

  async #send(pending: Pending): Promise<void> {
    const baseTimestamp = this.#clock.nowMs();
    let left = new Map(
      [...pending.byPartition].map(([partition, records]) => [
        partition,
        buildBatch({ records, baseTimestamp }),
      ]),
    );
    for (let attempt = 1; left.size > 0; attempt++) {
      const failed = await this.#sendOnce(left);
      if (failed.size === 0) return;
      const [partition, code] = [...failed][0]!;
      if (attempt >= PRODUCE_ATTEMPTS_MAX) {
        throw new KafkaClientError(
          `Produce to ${this.#options.topic}-${partition} failed ${attempt} times: ${errorName(code)}`,
        );
      }
      await sleep(RETRY_BACKOFF_MS * attempt);
      this.#partitions = await this.#cluster.topic(this.#options.topic);
      left = new Map([...left].filter(([p]) => failed.has(p)));
    }
  }

  /** One Produce per leader; resolves to the partitions that failed retriably. */
  async #sendOnce(batches: Map<number, Uint8Array>): Promise<Map<number, number>> {
    const byLeader = new Map<number, number[]>();
    for (const partition of batches.keys()) {
      const leader = this.#partitions[partition]?.leader ?? -1;
      let list = byLeader.get(leader);
      if (list === undefined) byLeader.set(leader, (list = []));
      list.push(partition);
    }
    const failed = new Map<number, number>();
    await Promise.all(
      [...byLeader].map(async ([leader, partitions]) => {
        if (leader < 0) {
          for (const partition of partitions) failed.set(partition, ErrorCode.LEADER_NOT_AVAILABLE);
          return;
        }
        const connection = await this.#cluster.broker(leader);
        const answer = await connection.send(
          { request: ProduceRequest, response: ProduceResponse },
          VERSIONS.produce,
          {
            transactionalId: null,
            acks: -1,
            timeoutMs: PRODUCE_TIMEOUT_MS,
            topicData: [
              {
                name: this.#options.topic,
                partitionData: partitions.map((index) => ({ index, records: batches.get(index)! })),
              },
            ],
          },
          PRODUCE_TIMEOUT_MS,
        );
        for (const topic of answer.responses) {
          for (const result of topic.partitionResponses) {
            if (result.errorCode === ErrorCode.NONE) continue;
            if (!RETRIABLE.has(result.errorCode)) {
              const detail = result.errorMessage === null ? "" : `: ${result.errorMessage}`;
              throw new KafkaClientError(
                `Produce to ${this.#options.topic}-${result.index} failed: ${errorName(result.errorCode)}${detail}`,
              );
            }
            failed.set(result.index, result.errorCode);
          }
        }
      }),
    );
    return failed;
  }
}

/**
 * Produces every line; resolves to how many were acknowledged. `openLines` is called once
 * connected: a readline interface must be iterated from its creation on, or it drops the
 * lines it reads meanwhile.
 */
export async function runProduce(
  options: ProduceOptions,
  openLines: () => AsyncIterable<string>,
  io: CliIo,
  clock: Clock = systemClock,
): Promise<number> {
  const producer = new LineProducer(options, clock);
  const progress = new Progress(io, clock);
  try {
    await producer.open();
    let lineNumber = 0;
    for await (const line of openLines()) {
      lineNumber++;
      await producer.add(line, lineNumber);
      progress.update(() => `Produced ${producer.sent} of ${lineNumber} lines to ${options.topic}`);
    }
    await producer.flush();
    progress.done(`Produced ${producer.sent} lines to ${options.topic}`);
    return producer.sent;
  } finally {
    producer.close();
  }
}
