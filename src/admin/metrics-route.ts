/**
 * `GET /metrics`: the node's metrics in the Prometheus text format (0.0.4).
 *
 * Families, all prefixed `brook_`:
 * - `topic_bytes_in_total`, `topic_messages_in_total` {topic}: appended by Produce;
 * - `topic_bytes_out_total`, `topic_messages_out_total` {topic}: returned by Fetch
 *   (messages out counts the records of the batches sent, see `metrics.ts`);
 * - `request_duration_seconds` {api}: histogram of request latency per Kafka API;
 * - `connections_open`: open Kafka protocol connections;
 * - `under_replicated_partitions`: partitions led here whose ISR lacks a replica;
 * - `offline_partitions`: partitions with no leader, cluster-wide (every node reports
 *   the count its metadata image gives, so aggregate with max, not sum);
 * - `isr_shrinks_total`, `isr_expands_total`: replicas dropped from and added to the
 *   ISRs of partitions this node led, since it started;
 * - `consumer_group_lag` {group, topic, partition}: high watermark − committed offset.
 *
 * Every family is written, with no samples when there is nothing to report, so a
 * scraper sees the same set of names on every node.
 */
import type { Hono } from "hono";
import { PrometheusWriter } from "./prometheus.ts";
import {
  type AdminNode,
  groupOffsets,
  offlinePartitions,
  underReplicatedPartitions,
} from "./views.ts";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export function renderMetrics(node: AdminNode): string {
  const { services } = node;
  const writer = new PrometheusWriter();
  const traffic = services.metrics.topicTraffic();
  const perTopic = [
    ["brook_topic_bytes_in_total", "Bytes of record batches appended by Produce.", "bytesIn"],
    ["brook_topic_messages_in_total", "Records appended by Produce.", "messagesIn"],
    ["brook_topic_bytes_out_total", "Bytes of record batches returned by Fetch.", "bytesOut"],
    [
      "brook_topic_messages_out_total",
      "Records in the record batches returned by Fetch.",
      "messagesOut",
    ],
  ] as const;
  for (const [name, help, field] of perTopic) {
    writer.family(name, "counter", help);
    for (const [topic, counters] of traffic) writer.sample([["topic", topic]], counters[field]);
  }

  writer.family(
    "brook_request_duration_seconds",
    "histogram",
    "Time from a Kafka request's arrival to its handler's answer.",
  );
  for (const [api, histogram] of services.metrics.requestLatency())
    writer.histogram([["api", api]], histogram);

  writer.family("brook_connections_open", "gauge", "Open Kafka protocol connections.");
  writer.sample([], node.connectionCount());

  writer.family(
    "brook_connections_paused",
    "gauge",
    "Kafka protocol connections not read until their client takes the answers queued for it.",
  );
  writer.sample([], node.pausedConnectionCount());

  writer.family(
    "brook_fetch_requests_waiting",
    "gauge",
    "Fetch requests (consumers' and followers') held in a long poll.",
  );
  writer.sample([], services.metrics.fetchesWaiting);

  writer.family(
    "brook_under_replicated_partitions",
    "gauge",
    "Partitions led by this node whose ISR lacks a replica.",
  );
  writer.sample([], underReplicatedPartitions(services));

  writer.family(
    "brook_offline_partitions",
    "gauge",
    "Partitions with no leader in the cluster, as this node's metadata has them.",
  );
  writer.sample([], offlinePartitions(services));

  const isr = services.replicas.isrChanges;
  writer.family(
    "brook_isr_shrinks_total",
    "counter",
    "Replicas dropped from the ISR of partitions this node led, since start.",
  );
  writer.sample([], isr.shrinks);
  writer.family(
    "brook_isr_expands_total",
    "counter",
    "Replicas added to the ISR of partitions this node led, since start.",
  );
  writer.sample([], isr.expands);

  writer.family(
    "brook_consumer_group_lag",
    "gauge",
    "High watermark minus the group's committed offset.",
  );
  const groupIds = node.coordinator
    .listGroups()
    .map((group) => group.groupId)
    .sort();
  for (const groupId of groupIds) {
    for (const offset of groupOffsets(node, groupId)) {
      if (offset.lag === null) continue;
      writer.sample(
        [
          ["group", groupId],
          ["topic", offset.topic],
          ["partition", String(offset.partition)],
        ],
        offset.lag,
      );
    }
  }
  return writer.text();
}

export function registerMetricsRoute(app: Hono, node: AdminNode): void {
  app.get("/metrics", (c) => {
    c.header("Content-Type", METRICS_CONTENT_TYPE);
    return c.body(renderMetrics(node));
  });
}
