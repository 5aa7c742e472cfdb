/**
 * The broker's counters for `GET /metrics`: traffic per topic and request latency per
 * Kafka API. One `BrokerMetrics` per node, built in `src/node.ts` and handed to the
 * Produce and Fetch handlers (through `BrokerServices.metrics`) and to the Kafka listener
 * (as its `RequestObserver`). Gauges that are cheap to compute when scraped (open
 * connections, under-replicated partitions, consumer lag) are not kept here: `metrics-
 * route.ts` reads them from the node at scrape time.
 *
 * Cost: Produce and Fetch record once per partition of a request, never per record.
 * Messages in are the record counts of the append result; messages out are the record
 * counts in the headers of the batches a Fetch returns (one header read per batch). A
 * Fetch whose offset falls inside a batch returns that batch whole and the client skips
 * the records before its offset, so messages out counts those records again: it is
 * "records sent", which can exceed "records consumed".
 *
 * Bounds: one entry per topic that saw traffic, pruned of deleted topics whenever the
 * map doubles; one histogram per Kafka API the registry answers.
 */
import type { MetadataImage } from "../cluster/metadata-image.ts";
import { readBatchSize, readRecordCount, RECORDS_AT } from "../protocol/record-batch.ts";
import type { Clock } from "../util/clock.ts";
import { assert } from "../util/assert.ts";
import type { HistogramSnapshot } from "./prometheus.ts";

/** Upper bounds of the request latency buckets, in seconds (Prometheus base unit). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** Below this many tracked topics the map is never pruned. */
const TRACKED_TOPICS_PRUNE_MIN = 1024;

export interface TopicTraffic {
  /** Bytes of record batches appended by Produce. */
  bytesIn: number;
  /** Records appended by Produce. */
  messagesIn: number;
  /** Bytes of record batches returned by Fetch. */
  bytesOut: number;
  /** Records in the batches returned by Fetch (see the module note). */
  messagesOut: number;
}

export class Histogram implements HistogramSnapshot {
  readonly bounds: readonly number[];
  /** Observations per bucket, not cumulative; the last entry counts those above all bounds. */
  readonly counts: number[];
  /** Sum of all observations, in the observed unit. */
  sum = 0;

  constructor(bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++)
      assert(bounds[i]! > bounds[i - 1]!, "Histogram bounds not increasing");
    this.bounds = bounds;
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    this.counts[i]! += 1;
    this.sum += value;
  }

  get count(): number {
    let total = 0;
    for (const count of this.counts) total += count;
    return total;
  }
}

/** Records in a blob of whole record batches, from their headers only. */
export function countRecords(records: Uint8Array): number {
  let count = 0;
  let at = 0;
  while (at + RECORDS_AT <= records.byteLength) {
    count += readRecordCount(records, at);
    at += readBatchSize(records, at);
  }
  return count;
}

export class BrokerMetrics {
  readonly #clock: Clock;
  readonly #image: MetadataImage;
  readonly #traffic = new Map<string, TopicTraffic>();
  #pruneAt = TRACKED_TOPICS_PRUNE_MIN;
  /** By the request schema's name ("ProduceRequest"); shown without the suffix. */
  readonly #latency = new Map<string, Histogram>();

  constructor(options: { clock: Clock; image: MetadataImage }) {
    this.#clock = options.clock;
    this.#image = options.image;
  }

  /** One Produce partition appended: `bytes` of batches holding `messages` records. */
  recordProduce(topic: string, bytes: number, messages: number): void {
    const traffic = this.#topic(topic);
    traffic.bytesIn += bytes;
    traffic.messagesIn += messages;
  }

  /** One Fetch partition answered with `records` (whole batches, possibly empty). */
  recordFetch(topic: string, records: Uint8Array): void {
    if (records.byteLength === 0) return;
    this.recordFetchCounts(topic, records.byteLength, countRecords(records));
  }

  /** A Fetch answer counted by its sender (batches streamed from the segment files). */
  recordFetchCounts(topic: string, bytes: number, records: number): void {
    const traffic = this.#topic(topic);
    traffic.bytesOut += bytes;
    traffic.messagesOut += records;
  }

  /** Fetch requests (a consumer's or a follower's) held in a long poll now. */
  fetchesWaiting = 0;

  /** RequestObserver: the time a request starts, handed back to `requestDone`. */
  now(): number {
    return this.#clock.monotonicMs();
  }

  /** RequestObserver: the response to a request of `requestName` is ready. */
  requestDone(requestName: string, startedMs: number): void {
    let histogram = this.#latency.get(requestName);
    if (histogram === undefined) {
      histogram = new Histogram(LATENCY_BUCKETS_SECONDS);
      this.#latency.set(requestName, histogram);
    }
    histogram.observe(Math.max(this.#clock.monotonicMs() - startedMs, 0) / 1000);
  }

  /** Traffic of the topics that exist, sorted by name; forgets deleted topics. */
  topicTraffic(): Array<[topic: string, traffic: Readonly<TopicTraffic>]> {
    this.#prune();
    return [...this.#traffic].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Latency histograms in seconds by API name ("Produce"), sorted by name. */
  requestLatency(): Array<[api: string, histogram: Histogram]> {
    return [...this.#latency]
      .map(([name, histogram]): [string, Histogram] => [name.replace(/Request$/, ""), histogram])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  #topic(topic: string): TopicTraffic {
    let traffic = this.#traffic.get(topic);
    if (traffic === undefined) {
      if (this.#traffic.size >= this.#pruneAt) {
        this.#prune();
        this.#pruneAt = Math.max(TRACKED_TOPICS_PRUNE_MIN, 2 * this.#traffic.size);
      }
      traffic = { bytesIn: 0, messagesIn: 0, bytesOut: 0, messagesOut: 0 };
      this.#traffic.set(topic, traffic);
    }
    return traffic;
  }

  #prune(): void {
    for (const topic of this.#traffic.keys()) {
      if (this.#image.topic(topic) === undefined) this.#traffic.delete(topic);
    }
  }
}
