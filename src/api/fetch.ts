/**
 * Fetch (key 1), v4-v17.
 * v4 brought isolation level, last stable offset and aborted transactions (message
 * format 2 only, hence the floor: v0-v3 clients cannot read what Brook stores). v5 log
 * start offset; v7 fetch sessions (KIP-227: Brook answers sessionless, session id 0,
 * which every client accepts as "no session"); v9 current leader epoch; v11 rack id
 * and preferred read replica; v12 flexible, diverging epoch; v13 topic ids instead of
 * names; v15 replica state; v16 node endpoints; v17 replica directory id.
 *
 * A fetch with a replica id is a follower's (src/replication/): it reads past the high
 * watermark to the log end, reports the follower's position to the leader, and gets a
 * diverging epoch (v12+) when its last fetched epoch disagrees with the leader's log.
 * Consumers read up to the high watermark.
 *
 * Long poll: if less than min_bytes is ready, the request waits until an append to one
 * of its partitions or max_wait_ms, whichever is first. Nothing polls.
 *
 * A partition's batches of DEFER_FROM_BYTES or more are answered as a FileSlice: they
 * stay in the segment files and the connection reads them a piece at a time as it sends
 * (storage/file-slice.ts, server/outbound.ts). Smaller ones are read at once.
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  FetchRequest,
  type FetchRequestData,
  FetchResponse,
  type FetchResponseFetchableTopicResponse,
  type FetchResponsePartitionData,
} from "../protocol/generated/index.ts";
import type { Encodable } from "../protocol/schema.ts";
import { defineHandler, type RequestContext } from "../server/handler.ts";
import { FileSlice } from "../storage/file-slice.ts";
import type { PartitionLog } from "../storage/partition-log.ts";
import type { BrokerServices } from "./services.ts";

const TOPIC_IDS_FROM_VERSION = 13;
const REPLICA_STATE_FROM_VERSION = 15;
/** Kafka's fetch.max.bytes cap on what one response may carry. */
export const FETCH_RESPONSE_BYTES_MAX = 55 * 1024 * 1024;
/**
 * Reads at least this large are streamed from the files (one socket piece, 1 MiB, is
 * where it starts to pay: below it a single read is as cheap and holds little memory).
 */
const DEFER_FROM_BYTES = 1024 * 1024;

type TopicResponse = Encodable<FetchResponseFetchableTopicResponse>;
type PartitionResponse = Encodable<FetchResponsePartitionData>;

interface ReadPass {
  topics: TopicResponse[];
  bytes: number;
  /** An error in any partition answers at once, as Kafka does. */
  hasError: boolean;
  /** Logs whose appends may bring the response to min_bytes. */
  waitKeys: string[];
  /** A follower's fetch: read to the log end, sent with sendfile, not in the topic metrics. */
  fromFollower: boolean;
}

function partitionError(partition: number, errorCode: number): PartitionResponse {
  return {
    partitionIndex: partition,
    errorCode,
    highWatermark: -1,
    lastStableOffset: -1,
    logStartOffset: -1,
    records: null,
  };
}

function readOnce(
  services: BrokerServices,
  request: FetchRequestData,
  context: RequestContext,
): ReadPass {
  const byId = context.apiVersion >= TOPIC_IDS_FROM_VERSION;
  const responseBytesMax = Math.min(Math.max(request.maxBytes, 0), FETCH_RESPONSE_BYTES_MAX);
  // A replica's fetch (Fetch v15 moved the id into ReplicaState); consumers send -1.
  const replicaId =
    context.apiVersion >= REPLICA_STATE_FROM_VERSION
      ? request.replicaState.replicaId
      : request.replicaId;
  const pass: ReadPass = {
    topics: [],
    bytes: 0,
    hasError: false,
    waitKeys: [],
    fromFollower: replicaId >= 0,
  };
  for (const wanted of request.topics) {
    const topic = byId
      ? services.image.topicById(wanted.topicId)
      : services.image.topic(wanted.topic);
    const partitions: PartitionResponse[] = [];
    pass.topics.push({ topic: wanted.topic, topicId: wanted.topicId, partitions });
    for (const fetch of wanted.partitions) {
      const image = topic?.partitions[fetch.partition];
      if (topic === undefined || image === undefined) {
        pass.hasError = true;
        partitions.push(
          partitionError(
            fetch.partition,
            byId ? ErrorCode.UNKNOWN_TOPIC_ID : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          ),
        );
        continue;
      }
      let log: PartitionLog | undefined;
      let highWatermark: number;
      // A consumer reads up to the high watermark; a follower reads to the log end.
      let maxOffset: number | undefined;
      if (replicaId >= 0) {
        const answer = services.replicas.followerFetch(topic.name, fetch.partition, {
          replicaId,
          currentLeaderEpoch: fetch.currentLeaderEpoch,
          fetchOffset: fetch.fetchOffset,
          lastFetchedEpoch: fetch.lastFetchedEpoch,
        });
        if (answer.kind !== "read") {
          // Either answers at once: the follower must act before it fetches again.
          pass.hasError = true;
          if (answer.kind === "error")
            partitions.push(partitionError(fetch.partition, answer.errorCode));
          else {
            const { highWatermark: hw, logStartOffset } = answer;
            const divergingEpoch = {
              epoch: answer.diverging.epoch,
              endOffset: answer.diverging.endOffset,
            };
            partitions.push({
              ...partitionError(fetch.partition, ErrorCode.NONE),
              highWatermark: hw,
              lastStableOffset: hw,
              logStartOffset,
              divergingEpoch,
            });
          }
          continue;
        }
        log = answer.log;
        highWatermark = answer.highWatermark;
        maxOffset = undefined;
      } else {
        if (image.leader !== services.nodeId) {
          pass.hasError = true;
          partitions.push(partitionError(fetch.partition, ErrorCode.NOT_LEADER_OR_FOLLOWER));
          continue;
        }
        if (fetch.currentLeaderEpoch >= 0 && fetch.currentLeaderEpoch !== image.leaderEpoch) {
          pass.hasError = true;
          const code =
            fetch.currentLeaderEpoch < image.leaderEpoch
              ? ErrorCode.FENCED_LEADER_EPOCH
              : ErrorCode.UNKNOWN_LEADER_EPOCH;
          partitions.push(partitionError(fetch.partition, code));
          continue;
        }
        log = services.logs.get(topic.name, fetch.partition);
        if (log === undefined) {
          pass.hasError = true;
          partitions.push(partitionError(fetch.partition, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION));
          continue;
        }
        highWatermark = log.highWatermark;
        maxOffset = highWatermark;
      }
      const offsets = {
        highWatermark,
        lastStableOffset: highWatermark,
        logStartOffset: log.logStartOffset,
      };
      const budget = Math.min(fetch.partitionMaxBytes, responseBytesMax - pass.bytes);
      // KIP-74: the first batch of the first non-empty partition is returned even when it
      // exceeds the limits, so a consumer can never be stuck behind one large batch.
      const read =
        budget > 0 || pass.bytes === 0
          ? log.readDeferred(fetch.fetchOffset, Math.max(budget, 0), {
              minOneBatch: pass.bytes === 0,
              maxOffset,
              countRecords: replicaId < 0,
              // A follower's answer always goes by sendfile: nothing reads it here.
              deferFromBytes: replicaId >= 0 ? 1 : DEFER_FROM_BYTES,
            })
          : { ok: true as const, records: new Uint8Array(0) };
      if (!read.ok) {
        pass.hasError = true;
        partitions.push({
          ...partitionError(fetch.partition, ErrorCode.OFFSET_OUT_OF_RANGE),
          ...offsets,
        });
        continue;
      }
      pass.bytes += read.records.byteLength;
      pass.waitKeys.push(services.logs.key(topic.name, fetch.partition));
      partitions.push({
        partitionIndex: fetch.partition,
        errorCode: ErrorCode.NONE,
        ...offsets,
        abortedTransactions: null,
        preferredReadReplica: -1,
        records: read.records,
      });
    }
  }
  return pass;
}

/** A pass that will not be answered gives back the segment files its slices hold. */
function releasePass(pass: ReadPass): void {
  for (const topic of pass.topics) {
    for (const partition of topic.partitions ?? []) {
      if (partition.records instanceof FileSlice) partition.records.release();
    }
  }
}

export function createFetchHandler(services: BrokerServices) {
  /** True when the pass is not enough yet and waiting could make it so. */
  const shouldWait = (pass: ReadPass, request: FetchRequestData) =>
    !pass.hasError && pass.bytes < request.minBytes && pass.waitKeys.length > 0;

  /** The answer for a pass; only the pass that is answered counts in the metrics. */
  const answer = (pass: ReadPass, context: RequestContext) => {
    // Replication is not consumer traffic (Kafka counts it apart from BytesOut too).
    for (const topic of pass.fromFollower ? [] : pass.topics) {
      const name =
        context.apiVersion >= TOPIC_IDS_FROM_VERSION
          ? services.image.topicById(topic.topicId ?? "")?.name
          : topic.topic;
      if (name === undefined) continue;
      for (const partition of topic.partitions ?? []) {
        const records = partition.records;
        if (records instanceof FileSlice) {
          // Counted as it is sent: the batches are not in memory to count now.
          records.onFinished = (count) =>
            services.metrics.recordFetchCounts(name, records.byteLength, count);
        } else if (records != null) {
          services.metrics.recordFetch(name, records as Uint8Array);
        }
      }
    }
    return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, sessionId: 0, responses: pass.topics };
  };

  /** Long poll: waits for appends until the pass is enough or max_wait_ms passes. */
  const waitForMore = async (
    first: ReadPass,
    request: FetchRequestData,
    context: RequestContext,
    deadline: number,
  ) => {
    let pass = first;
    while (shouldWait(pass, request)) {
      const left = deadline - services.clock.monotonicMs();
      if (left <= 0) break;
      const woken = await services.logs.waitForAppend(pass.waitKeys, left);
      if (!woken) break;
      releasePass(pass);
      pass = readOnce(services, request, context);
    }
    return answer(pass, context);
  };

  return defineHandler({
    request: FetchRequest,
    response: FetchResponse,
    versions: [4, 17],
    // Answered synchronously when nothing needs waiting for: the connection then sees
    // the answer's size at once and stops reading a client's pipelined fetches while
    // too much is queued for it (server/connection.ts).
    handle(request, context) {
      const deadline = services.clock.monotonicMs() + Math.max(request.maxWaitMs, 0);
      const pass = readOnce(services, request, context);
      if (shouldWait(pass, request) && request.maxWaitMs > 0) {
        services.metrics.fetchesWaiting++;
        return waitForMore(pass, request, context, deadline).finally(
          () => services.metrics.fetchesWaiting--,
        );
      }
      return answer(pass, context);
    },
  });
}
