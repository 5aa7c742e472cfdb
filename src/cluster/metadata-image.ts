/**
 * The in-memory metadata image every handler reads: brokers, topics with ids and
 * configs, partitions with replicas, leader, leader epoch, ISR and partition epoch. It
 * changes only by applying metadata records in log order (`apply`), on one node from a
 * local log and in a cluster from the Raft log; there is no other way to write it, so
 * every node that applied the same records holds the same image.
 */
import { assert, unreachable } from "../util/assert.ts";

export interface BrokerImage {
  readonly nodeId: number;
  readonly host: string;
  readonly port: number;
  readonly rack: string | null;
  /**
   * Fenced: the controller saw it die (SWIM declared it dead). It leads nothing, is
   * given no new replicas and is not listed to clients until it is unfenced.
   */
  readonly fenced: boolean;
  /**
   * The process that registered last (a new one at every start), when it said: a new
   * incarnation means the broker restarted, and its partitions get new leader epochs.
   */
  readonly incarnation?: string;
}

export interface PartitionImage {
  readonly partition: number;
  readonly replicas: readonly number[];
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly isr: readonly number[];
  /**
   * Kafka's partition epoch: bumped by every change of leader, leader epoch, ISR or
   * replicas, so a request based on an older state of the partition (an AlterPartition
   * from a leader that missed a change) can be told apart and refused.
   */
  readonly partitionEpoch: number;
  /**
   * Eligible leader replicas (Kafka's ELR, KIP-966): replicas that left the ISR while it
   * was smaller than min.insync.replicas. The high watermark cannot move while the ISR
   * is that small (leader-state.ts), so each of them still holds every committed entry
   * and may lead when no ISR member can (eligible-leaders.ts).
   */
  readonly elr: readonly number[];
}

export interface TopicImage {
  readonly name: string;
  readonly topicId: string;
  /** Overrides only; defaults live in topic-config.ts. */
  readonly configs: ReadonlyMap<string, string>;
  readonly partitions: readonly PartitionImage[];
  readonly internal: boolean;
}

export type MetadataRecord =
  | {
      type: "registerBroker";
      nodeId: number;
      host: string;
      port: number;
      rack: string | null;
      incarnation?: string;
    }
  | { type: "fenceBroker"; nodeId: number }
  | { type: "unfenceBroker"; nodeId: number }
  | { type: "topic"; name: string; topicId: string; internal?: boolean }
  | {
      type: "partition";
      topicId: string;
      partition: number;
      replicas: number[];
      leader: number;
      leaderEpoch: number;
      isr: number[];
      /** Absent in records written before partition epochs existed: 0. */
      partitionEpoch?: number;
      /** Absent when empty (and in records written before it existed). */
      elr?: number[];
    }
  | { type: "config"; topicId: string; name: string; value: string | null }
  | { type: "removeTopic"; topicId: string };

interface MutableTopic {
  name: string;
  topicId: string;
  configs: Map<string, string>;
  partitions: PartitionImage[];
  internal: boolean;
}

export type ImageListener = (record: MetadataRecord, image: MetadataImage) => void;

export class MetadataImage {
  readonly #brokers = new Map<number, BrokerImage>();
  readonly #topicsByName = new Map<string, MutableTopic>();
  readonly #topicsById = new Map<string, MutableTopic>();
  readonly #listeners: ImageListener[] = [];
  /** Number of records applied; a cheap version for caches of derived views. */
  #appliedCount = 0;

  get appliedCount(): number {
    return this.#appliedCount;
  }

  /** Called after each applied record, in order (the log manager creates and drops logs). */
  onApply(listener: ImageListener): void {
    this.#listeners.push(listener);
  }

  apply(record: MetadataRecord): void {
    switch (record.type) {
      case "registerBroker": {
        // A registration that does not say its incarnation keeps the one known.
        const incarnation = record.incarnation ?? this.#brokers.get(record.nodeId)?.incarnation;
        this.#brokers.set(record.nodeId, {
          nodeId: record.nodeId,
          host: record.host,
          port: record.port,
          rack: record.rack,
          fenced: false,
          ...(incarnation === undefined ? {} : { incarnation }),
        });
        break;
      }
      case "fenceBroker":
      case "unfenceBroker": {
        const broker = this.#brokers.get(record.nodeId);
        assert(broker !== undefined, `Fencing of unknown broker ${record.nodeId}`);
        this.#brokers.set(record.nodeId, { ...broker, fenced: record.type === "fenceBroker" });
        break;
      }
      case "topic": {
        assert(!this.#topicsByName.has(record.name), `Topic ${record.name} created twice`);
        const topic: MutableTopic = {
          name: record.name,
          topicId: record.topicId,
          configs: new Map(),
          partitions: [],
          internal: record.internal === true,
        };
        this.#topicsByName.set(record.name, topic);
        this.#topicsById.set(record.topicId, topic);
        break;
      }
      case "partition": {
        const topic = this.#topicsById.get(record.topicId);
        assert(topic !== undefined, `Partition record for unknown topic ${record.topicId}`);
        assert(record.partition <= topic.partitions.length, "Partition records out of order");
        topic.partitions[record.partition] = {
          partition: record.partition,
          replicas: record.replicas,
          leader: record.leader,
          leaderEpoch: record.leaderEpoch,
          isr: record.isr,
          partitionEpoch: record.partitionEpoch ?? 0,
          elr: record.elr ?? [],
        };
        break;
      }
      case "config": {
        const topic = this.#topicsById.get(record.topicId);
        assert(topic !== undefined, `Config record for unknown topic ${record.topicId}`);
        if (record.value === null) topic.configs.delete(record.name);
        else topic.configs.set(record.name, record.value);
        break;
      }
      case "removeTopic": {
        const topic = this.#topicsById.get(record.topicId);
        assert(topic !== undefined, `Removal of unknown topic ${record.topicId}`);
        this.#topicsById.delete(record.topicId);
        this.#topicsByName.delete(topic.name);
        break;
      }
      default:
        unreachable(record);
    }
    this.#appliedCount++;
    for (const listener of this.#listeners) listener(record, this);
  }

  /**
   * Records that rebuild this image when applied to an empty one: what a snapshot of
   * the metadata log holds.
   */
  toRecords(): MetadataRecord[] {
    const records: MetadataRecord[] = [];
    for (const broker of this.brokers()) {
      const { nodeId, host, port, rack, incarnation } = broker;
      records.push({
        type: "registerBroker",
        nodeId,
        host,
        port,
        rack,
        ...(incarnation === undefined ? {} : { incarnation }),
      });
      if (broker.fenced) records.push({ type: "fenceBroker", nodeId });
    }
    for (const topic of this.#topicsByName.values()) {
      records.push({
        type: "topic",
        name: topic.name,
        topicId: topic.topicId,
        internal: topic.internal,
      });
      for (const [name, value] of topic.configs)
        records.push({ type: "config", topicId: topic.topicId, name, value });
      for (const p of topic.partitions) {
        records.push({
          type: "partition",
          topicId: topic.topicId,
          partition: p.partition,
          replicas: [...p.replicas],
          leader: p.leader,
          leaderEpoch: p.leaderEpoch,
          isr: [...p.isr],
          partitionEpoch: p.partitionEpoch,
          ...(p.elr.length === 0 ? {} : { elr: [...p.elr] }),
        });
      }
    }
    return records;
  }

  brokers(): BrokerImage[] {
    return [...this.#brokers.values()].sort((a, b) => a.nodeId - b.nodeId);
  }

  /** Unfenced brokers, by node id: the ones clients see and replicas go to. */
  liveBrokers(): BrokerImage[] {
    return this.brokers().filter((broker) => !broker.fenced);
  }

  broker(nodeId: number): BrokerImage | undefined {
    return this.#brokers.get(nodeId);
  }

  topics(): TopicImage[] {
    return [...this.#topicsByName.values()];
  }

  topic(name: string): TopicImage | undefined {
    return this.#topicsByName.get(name);
  }

  topicById(topicId: string): TopicImage | undefined {
    return this.#topicsById.get(topicId);
  }
}
