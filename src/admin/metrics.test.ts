import { describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { MetadataImage } from "../cluster/metadata-image.ts";
import { buildBatch } from "../protocol/record-batch-builder.ts";
import { ManualClock } from "../util/clock.ts";
import { BrokerMetrics, countRecords, Histogram, LATENCY_BUCKETS_SECONDS } from "./metrics.ts";

function metricsWithTopics(...names: string[]) {
  const image = new MetadataImage();
  names.forEach((name, i) => image.apply({ type: "topic", name, topicId: `id-${i}` }));
  const clock = new ManualClock();
  return { image, clock, metrics: new BrokerMetrics({ clock, image }) };
}

describe("admin: metrics", () => {
  test("admin: metrics: histogram buckets hold observations up to and including their bound", () => {
    const histogram = new Histogram([0.1, 1]);
    for (const value of [0, 0.1, 0.10001, 1, 2]) histogram.observe(value);
    expect(histogram.counts).toEqual([2, 2, 1]);
    expect(histogram.count).toBe(5);
    expect(histogram.sum).toBeCloseTo(3.20001, 9);
    expect(() => new Histogram([1, 1])).toThrow("not increasing");
    expect(LATENCY_BUCKETS_SECONDS[0]).toBe(0.0005);
  });

  test("admin: metrics: records counted from batch headers, without decoding records", () => {
    const batches = Buffer.concat([
      buildBatch({ baseTimestamp: 0, records: [{ value: "a" }, { value: "b" }] }),
      buildBatch({ baseTimestamp: 0, records: [{ value: "c" }], compression: "gzip" }),
    ]);
    expect(countRecords(batches)).toBe(3);
    expect(countRecords(new Uint8Array(0))).toBe(0);
  });

  test("admin: metrics: traffic per topic, sorted; empty fetches leave no trace", () => {
    const { metrics } = metricsWithTopics("b", "a");
    metrics.recordProduce("b", 100, 3);
    metrics.recordProduce("b", 50, 1);
    metrics.recordFetch("a", new Uint8Array(0));
    metrics.recordFetch(
      "b",
      buildBatch({ baseTimestamp: 0, records: [{ value: "x" }, { value: "y" }] }),
    );
    const traffic = metrics.topicTraffic();
    expect(traffic.map(([topic]) => topic)).toEqual(["b"]);
    expect(traffic[0]![1]).toMatchObject({ bytesIn: 150, messagesIn: 4, messagesOut: 2 });
  });

  test("admin: metrics: counters of deleted topics are forgotten, so the map stays bounded", () => {
    const { image, metrics } = metricsWithTopics("kept");
    for (let i = 0; i < 5000; i++) metrics.recordProduce(`gone-${i}`, 1, 1);
    metrics.recordProduce("kept", 1, 1);
    expect(metrics.topicTraffic().map(([topic]) => topic)).toEqual(["kept"]);
    image.apply({ type: "removeTopic", topicId: "id-0" });
    expect(metrics.topicTraffic()).toEqual([]);
  });

  test("admin: metrics: request latency per API from the clock, names without the Request suffix", () => {
    const { clock, metrics } = metricsWithTopics();
    const started = metrics.now();
    clock.advance(20);
    metrics.requestDone("FetchRequest", started);
    metrics.requestDone("ApiVersionsRequest", metrics.now());
    const latency = metrics.requestLatency();
    expect(latency.map(([api]) => api)).toEqual(["ApiVersions", "Fetch"]);
    expect(latency[1]![1].sum).toBeCloseTo(0.02, 9);
    expect(latency[1]![1].counts[LATENCY_BUCKETS_SECONDS.indexOf(0.025)]).toBe(1);
  });
});
