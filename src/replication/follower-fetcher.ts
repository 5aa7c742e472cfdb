/**
 * Followers fetch like consumers: one loop per leader this node follows, on one Kafka
 * connection to that leader, asking for all its followed partitions in each request.
 * A partition that has just started following first asks OffsetForLeaderEpoch and cuts
 * its divergent tail (the replica manager decides where); then it fetches from its log
 * end with Fetch v12 (replica id, current leader epoch, last fetched epoch), long-polled
 * by the leader. The leader's answer is appended byte for byte and its high watermark
 * taken (ReplicaManager.onFetched); a diverging epoch sends the partition back to
 * cutting. Errors back off and retry: a leader change arrives through the metadata
 * image, which ends this loop's partitions and starts another loop.
 */
import { KafkaConnection } from "../client/kafka-client.ts";
import type { MetadataImage } from "../cluster/metadata-image.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  FetchRequest,
  FetchResponse,
  OffsetForLeaderEpochRequest,
  OffsetForLeaderEpochResponse,
} from "../protocol/generated/index.ts";
import { logger } from "../util/log.ts";
import type { Timers } from "../util/timers.ts";
import type { FollowerRequest } from "./follower-state.ts";
import type { FollowedPartition, ReplicaManager } from "./replica-manager.ts";

const log = logger("fetcher");

const FETCH_VERSION = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION = 4;
/** Kafka's replica.fetch.wait.max.ms. */
export const REPLICA_FETCH_WAIT_MAX_MS = 500;
/** Kafka's replica.fetch.max.bytes (per partition) and replica.fetch.response.max.bytes. */
const PARTITION_BYTES_MAX = 1024 * 1024;
const RESPONSE_BYTES_MAX = 10 * 1024 * 1024;
/** Kafka's replica.fetch.backoff.ms, after an error. */
const BACKOFF_MS = 200;
/**
 * The first wait after answers that only say the leader and this node disagree on the
 * leader epoch for now (one of them has not applied the newest metadata yet: a follower
 * often learns of a new leader a millisecond before the leader does). Doubled on each
 * such answer in a row, up to BACKOFF_MS. A full BACKOFF_MS there held every partition
 * from that leader, and the new leader's first acks=all answers, for 200 ms.
 */
const EPOCH_RACE_BACKOFF_MS = 5;
/** Errors that the metadata catching up on either side ends. */
const EPOCH_RACE_ERRORS: ReadonlySet<number> = new Set([
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.UNKNOWN_LEADER_EPOCH,
  ErrorCode.FENCED_LEADER_EPOCH,
]);
/** How often a loop with nothing to ask looks again (a partition waiting for metadata). */
const IDLE_MS = 50;

export interface FollowerFetcherOptions {
  readonly nodeId: number;
  readonly image: MetadataImage;
  readonly replicas: ReplicaManager;
  readonly timers: Timers;
}

export class FollowerFetcher {
  readonly #options: FollowerFetcherOptions;
  /** Running loops, by leader id. */
  readonly #loops = new Map<number, Promise<void>>();
  readonly #connections = new Map<number, KafkaConnection>();
  /** Per leader, the partitions (keys) its loop followed when it sent the Fetch in flight. */
  readonly #asking = new Map<number, ReadonlySet<string>>();
  /** Leaders whose connection `refresh` closed to cut a long poll short. */
  readonly #interrupted = new Set<number>();
  /** Per leader, ends the error backoff its loop sleeps in (see `refresh`). */
  readonly #backoffs = new Map<number, () => void>();
  /** Per leader, answers in a row that were only epoch races (see EPOCH_RACE_BACKOFF_MS). */
  readonly #races = new Map<number, number>();
  #closed = false;

  constructor(options: FollowerFetcherOptions) {
    this.#options = options;
  }

  /**
   * Starts a loop for each leader that has followed partitions and none yet. A loop
   * whose Fetch is held in a long poll that lacks a partition now following its leader
   * (a leadership moved there) has the poll cut short by closing its connection:
   * otherwise the partition would wait up to REPLICA_FETCH_WAIT_MAX_MS, and with it the
   * new leader's high watermark and its acks=all answers. A loop backing off after an
   * answer that refused other partitions asks again at once, with the new one: one
   * partition's error (a topic being deleted, seen by the leader first) must not hold a
   * leadership that just moved for BACKOFF_MS.
   */
  refresh(): void {
    if (this.#closed) return;
    const followed = this.#options.replicas.followed();
    for (const [leaderId, asking] of this.#asking) {
      if (!followed.some((f) => f.leaderId === leaderId && !asking.has(f.key))) continue;
      const backoff = this.#backoffs.get(leaderId);
      if (backoff !== undefined) {
        backoff();
        continue;
      }
      this.#asking.delete(leaderId);
      this.#interrupted.add(leaderId);
      this.#connections.get(leaderId)?.close();
      this.#connections.delete(leaderId);
    }
    for (const leaderId of new Set(followed.map((f) => f.leaderId))) {
      if (this.#loops.has(leaderId)) continue;
      const loop = this.#run(leaderId).finally(() => {
        this.#loops.delete(leaderId);
        this.#connections.get(leaderId)?.close();
        this.#connections.delete(leaderId);
        // Partitions may have come back to this leader while the loop was ending.
        queueMicrotask(() => this.refresh());
      });
      this.#loops.set(leaderId, loop);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const end of [...this.#backoffs.values()]) end();
    for (const connection of this.#connections.values()) connection.close();
    await Promise.allSettled([...this.#loops.values()]);
  }

  async #run(leaderId: number): Promise<void> {
    while (!this.#closed) {
      const followed = this.#options.replicas.followed().filter((f) => f.leaderId === leaderId);
      if (followed.length === 0) return;
      try {
        const connection = await this.#connection(leaderId);
        if (connection === null) {
          await this.#sleep(BACKOFF_MS);
          continue;
        }
        const asks: Array<[FollowedPartition, FollowerRequest]> = [];
        for (const f of followed) {
          const request = this.#options.replicas.followerRequest(f);
          if (request !== null) asks.push([f, request]);
        }
        const truncating = asks.filter(([, r]) => r.kind === "offsetForLeaderEpoch");
        const fetching = asks.filter(([, r]) => r.kind === "fetch");
        if (truncating.length > 0) await this.#askEpochs(leaderId, connection, truncating);
        else if (fetching.length > 0) {
          // Every partition this loop knows, asked or not: only a new one cuts the poll.
          this.#asking.set(leaderId, new Set(followed.map((f) => f.key)));
          await this.#fetch(leaderId, connection, fetching).finally(() =>
            this.#asking.delete(leaderId),
          );
        } else await this.#sleep(IDLE_MS);
      } catch (error) {
        if (this.#closed) return;
        if (this.#interrupted.delete(leaderId)) continue; // cut short by refresh: ask again now
        log.warn("Fetching from the leader failed; retrying", {
          leader: leaderId,
          error: String(error),
        });
        this.#connections.get(leaderId)?.close();
        this.#connections.delete(leaderId);
        await this.#sleep(BACKOFF_MS);
      }
    }
  }

  async #askEpochs(
    leaderId: number,
    connection: KafkaConnection,
    asks: Array<[FollowedPartition, FollowerRequest]>,
  ): Promise<void> {
    const answer = await connection.send(
      { request: OffsetForLeaderEpochRequest, response: OffsetForLeaderEpochResponse },
      OFFSET_FOR_LEADER_EPOCH_VERSION,
      {
        replicaId: this.#options.nodeId,
        topics: byTopic(asks).map(([topic, entries]) => ({
          topic,
          partitions: entries.map(([f, r]) => ({
            partition: f.partition,
            currentLeaderEpoch: r.currentLeaderEpoch,
            leaderEpoch: r.kind === "offsetForLeaderEpoch" ? r.epoch : -1,
          })),
        })),
      },
    );
    const errors: number[] = [];
    for (const topic of answer.topics) {
      for (const p of topic.partitions) {
        const ask = asks.find(([f]) => f.topic === topic.topic && f.partition === p.partition);
        if (ask === undefined) continue;
        if (p.errorCode !== ErrorCode.NONE) {
          errors.push(p.errorCode);
          continue;
        }
        this.#options.replicas.onEpochEndOffset(ask[0], {
          epoch: p.leaderEpoch,
          endOffset: p.endOffset,
        });
      }
    }
    await this.#afterErrors(leaderId, errors);
  }

  /**
   * Fenced or not leader yet: the metadata will say what to do, so do not spin meanwhile;
   * but when every error is an epoch race, ask again soon (EPOCH_RACE_BACKOFF_MS).
   */
  async #afterErrors(leaderId: number, errors: readonly number[]): Promise<void> {
    if (errors.length > 0)
      log.debug("The leader refused partitions", { leader: leaderId, errors: errors.join(",") });
    if (errors.length === 0) {
      this.#races.delete(leaderId);
      return;
    }
    if (!errors.every((code) => EPOCH_RACE_ERRORS.has(code))) {
      this.#races.delete(leaderId);
      return this.#backOff(leaderId, BACKOFF_MS);
    }
    const races = this.#races.get(leaderId) ?? 0;
    this.#races.set(leaderId, races + 1);
    await this.#backOff(leaderId, Math.min(BACKOFF_MS, EPOCH_RACE_BACKOFF_MS * 2 ** races));
  }

  /** Sleeps `ms` after refused partitions, or less if `refresh` has a new one to ask for. */
  #backOff(leaderId: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const end = () => {
        cancel();
        this.#backoffs.delete(leaderId);
        resolve();
      };
      const cancel = this.#options.timers.after(ms, end);
      this.#backoffs.set(leaderId, end);
    });
  }

  async #fetch(
    leaderId: number,
    connection: KafkaConnection,
    asks: Array<[FollowedPartition, FollowerRequest]>,
  ): Promise<void> {
    const answer = await connection.send(
      { request: FetchRequest, response: FetchResponse },
      FETCH_VERSION,
      {
        replicaId: this.#options.nodeId,
        maxWaitMs: REPLICA_FETCH_WAIT_MAX_MS,
        minBytes: 1,
        maxBytes: RESPONSE_BYTES_MAX,
        isolationLevel: 0,
        sessionId: 0,
        sessionEpoch: -1,
        topics: byTopic(asks).map(([topic, entries]) => ({
          topic,
          partitions: entries.map(([f, r]) => ({
            partition: f.partition,
            currentLeaderEpoch: r.currentLeaderEpoch,
            fetchOffset: r.kind === "fetch" ? r.fetchOffset : 0,
            lastFetchedEpoch: r.kind === "fetch" ? r.lastFetchedEpoch : -1,
            logStartOffset: -1,
            partitionMaxBytes: PARTITION_BYTES_MAX,
          })),
        })),
        forgottenTopicsData: [],
        rackId: "",
      },
      REPLICA_FETCH_WAIT_MAX_MS,
    );
    const errors: number[] = [];
    for (const topic of answer.responses) {
      for (const p of topic.partitions) {
        const ask = asks.find(([f]) => f.topic === topic.topic && f.partition === p.partitionIndex);
        if (ask === undefined || ask[1].kind !== "fetch") continue;
        const [followed, request] = ask;
        if (p.errorCode !== ErrorCode.NONE) {
          errors.push(p.errorCode);
          continue;
        }
        if (p.divergingEpoch.epoch >= 0 || p.divergingEpoch.endOffset >= 0) {
          this.#options.replicas.onDiverging(followed, request.lastFetchedEpoch, p.divergingEpoch);
          continue;
        }
        this.#options.replicas.onFetched(
          followed,
          request.fetchOffset,
          p.records ?? new Uint8Array(0),
          p.highWatermark,
        );
      }
    }
    await this.#afterErrors(leaderId, errors);
  }

  /** The connection to a leader's Kafka listener; null while its address is unknown. */
  async #connection(leaderId: number): Promise<KafkaConnection | null> {
    const broker = this.#options.image.broker(leaderId);
    if (broker === undefined || broker.fenced) return null;
    const known = this.#connections.get(leaderId);
    if (known !== undefined && known.host === broker.host && known.port === broker.port)
      return known;
    known?.close();
    const connection = await KafkaConnection.connect(broker.port, broker.host, {
      clientId: `brook-replica-${this.#options.nodeId}`,
      reuseAnswerBuffer: true,
    });
    this.#connections.set(leaderId, connection);
    return connection;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#options.timers.after(ms, resolve));
  }
}

function byTopic(
  asks: Array<[FollowedPartition, FollowerRequest]>,
): Array<[string, Array<[FollowedPartition, FollowerRequest]>]> {
  const topics = new Map<string, Array<[FollowedPartition, FollowerRequest]>>();
  for (const ask of asks) {
    const list = topics.get(ask[0].topic) ?? [];
    list.push(ask);
    topics.set(ask[0].topic, list);
  }
  return [...topics];
}
