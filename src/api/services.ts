/**
 * What the Kafka API handlers may use, passed in by `src/node.ts`. Handlers read the
 * metadata image, write metadata through the writer, and reach partition logs through
 * the log manager; none of them owns sockets or files.
 */
import type { BrokerMetrics } from "../admin/metrics.ts";
import type { MetadataImage } from "../cluster/metadata-image.ts";
import type { MetadataWriter, TopicDefaults } from "../cluster/topics.ts";
import type { ReplicaManager } from "../replication/replica-manager.ts";
import type { LogManager } from "../storage/log-manager.ts";
import type { Clock } from "../util/clock.ts";

export interface BrokerServices {
  readonly nodeId: number;
  readonly clusterId: string;
  /** The controller (Raft leader), null during an election; this node when absent. */
  readonly controllerId?: () => number | null;
  readonly image: MetadataImage;
  readonly metadata: MetadataWriter;
  readonly logs: LogManager;
  /** Every append goes through it; it knows which partitions this node leads or follows. */
  readonly replicas: ReplicaManager;
  readonly clock: Clock;
  readonly autoCreateTopics: boolean;
  readonly topicDefaults: TopicDefaults;
  /** Traffic counters for `GET /metrics`: Produce and Fetch record once per partition. */
  readonly metrics: BrokerMetrics;
}
