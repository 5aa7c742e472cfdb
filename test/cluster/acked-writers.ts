/**
 * Writers for the failover tests: real clients producing unique values with acks=all
 * while nodes die, each reporting every value the broker acknowledged with its offset,
 * and the check that every acknowledged value is still at that offset afterwards.
 *
 * - `librdkafkaWriter`: confluent-kafka-python in its own process (python/acked_producer.py).
 * - `kafkajsWriter`: kafkajs in this process, one message per send so that each
 *   acknowledgement names the value's own offset.
 */
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { runProcess } from "../helpers/clients-common.ts";

const PYTHON = "/usr/bin/python3";
const PRODUCER_SCRIPT = join(import.meta.dir, "python/acked_producer.py");

/** One acknowledged value: where it was stored and when it was handed over and acked. */
export interface Acked {
  readonly value: string;
  readonly partition: number;
  readonly offset: number;
  readonly sentMs: number;
  readonly ackedMs: number;
}

export interface WriterReport {
  readonly client: string;
  readonly acked: Acked[];
  readonly sent: number;
  readonly errors: number;
}

export interface WriterOptions {
  readonly bootstrap: string;
  readonly topic: string;
  readonly durationMs: number;
  /** Values per second. */
  readonly rate: number;
  /** Each writer's values start with its own prefix. */
  readonly prefix: string;
}

export async function librdkafkaWriter(options: WriterOptions): Promise<WriterReport> {
  const result = await runProcess(PYTHON, [PRODUCER_SCRIPT], {
    stdin: JSON.stringify({
      bootstrap: options.bootstrap,
      topic: options.topic,
      acks: "all",
      duration_s: options.durationMs / 1000,
      rate: options.rate,
      prefix: options.prefix,
    }),
    timeoutMs: options.durationMs + 60_000,
  });
  if (result.code !== 0)
    throw new Error(`acked_producer.py exited with ${result.code}: ${result.stderr}`);
  const report = JSON.parse(result.stdout) as {
    acked: Array<[string, number, number, number, number]>;
    errors: number;
    sent: number;
  };
  return {
    client: "librdkafka",
    acked: report.acked.map(([value, partition, offset, ackedMs, sentMs]) => ({
      value,
      partition,
      offset,
      ackedMs,
      sentMs,
    })),
    sent: report.sent,
    errors: report.errors,
  };
}

export async function kafkajsWriter(options: WriterOptions): Promise<WriterReport> {
  const kafka = new Kafka({
    clientId: `${options.prefix}writer`,
    brokers: options.bootstrap.split(","),
    logLevel: logLevel.NOTHING,
    retry: { retries: 30, initialRetryTime: 50, maxRetryTime: 500 },
    requestTimeout: 5000,
    connectionTimeout: 1000,
  });
  const producer = kafka.producer({ allowAutoTopicCreation: false, metadataMaxAge: 1000 });
  await producer.connect();
  const acked: Acked[] = [];
  let sent = 0;
  let errors = 0;
  const deadline = Date.now() + options.durationMs;
  const intervalMs = 1000 / options.rate;
  // Several sends in flight at once, as an application would have.
  const inFlight = new Set<Promise<void>>();
  while (Date.now() < deadline) {
    const value = `${options.prefix}${sent++}`;
    const sentMs = Date.now();
    const sending = producer
      .send({ topic: options.topic, acks: -1, timeout: 5000, messages: [{ value }] })
      .then(
        ([meta]) => {
          acked.push({
            value,
            partition: meta!.partition,
            offset: Number(meta!.baseOffset),
            sentMs,
            ackedMs: Date.now(),
          });
        },
        () => void errors++,
      )
      .finally(() => inFlight.delete(sending));
    inFlight.add(sending);
    if (inFlight.size >= 8) await Promise.race(inFlight);
    await Bun.sleep(intervalMs);
  }
  await Promise.all(inFlight);
  await producer.disconnect();
  return { client: "kafkajs", acked, sent, errors };
}

/** What a read-back of the partitions found against what the writers were told. */
export interface AckCheck {
  /** Acknowledged values not at their acknowledged offset. */
  readonly lost: Acked[];
  /** Values stored more than once (retries; allowed without idempotence). */
  readonly duplicates: number;
}

/** `stored`: partition → offset → value, read back from the survivors. */
export function checkAcked(
  reports: readonly WriterReport[],
  stored: ReadonlyMap<number, ReadonlyMap<number, string>>,
): AckCheck {
  const lost = reports.flatMap((report) =>
    report.acked.filter((a) => stored.get(a.partition)?.get(a.offset) !== a.value),
  );
  const counts = new Map<string, number>();
  for (const partition of stored.values())
    for (const value of partition.values()) counts.set(value, (counts.get(value) ?? 0) + 1);
  return { lost, duplicates: [...counts.values()].filter((n) => n > 1).length };
}

/**
 * Failover as a writer sees it: from `sinceMs` to the first acknowledgement of a value
 * handed to the client after it; null when none was.
 */
export function firstAckAfter(reports: readonly WriterReport[], sinceMs: number): number | null {
  const after = reports.flatMap((report) => report.acked.filter((a) => a.sentMs > sinceMs));
  return after.length === 0 ? null : Math.min(...after.map((a) => a.ackedMs)) - sinceMs;
}

export function summary(report: WriterReport): string {
  return `${report.client}: ${report.acked.length} of ${report.sent} acknowledged (${report.errors} failed)`;
}
