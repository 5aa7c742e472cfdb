/**
 * Metadata (key 3), v0-v12.
 * v0: empty topic list means all topics. v1: null means all, empty means none; adds
 * controller id, rack, internal flag. v2: cluster id. v4: allow_auto_topic_creation.
 * v5: offline replicas. v7: leader epoch. v8-10: authorized operations (not computed:
 * -2147483648, "not requested"). v9: flexible. v10: topic ids. v12: lookup by id only.
 */
import { topicErrorCode, topicNameProblem } from "../cluster/topics.ts";
import { NO_LEADER } from "../cluster/broker-lifecycle.ts";
import type { MetadataImage, TopicImage } from "../cluster/metadata-image.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  MetadataRequest,
  MetadataResponse,
  type MetadataResponseMetadataResponseTopic,
} from "../protocol/generated/index.ts";
import { ZERO_UUID } from "../protocol/reader.ts";
import type { Encodable } from "../protocol/schema.ts";
import { defineHandler } from "../server/handler.ts";
import type { BrokerServices } from "./services.ts";

const AUTHORIZED_OPERATIONS_OMITTED = -2147483648;

type TopicEntry = Encodable<MetadataResponseMetadataResponseTopic>;

export function describeTopic(topic: TopicImage, image: MetadataImage): TopicEntry {
  return {
    errorCode: ErrorCode.NONE,
    name: topic.name,
    topicId: topic.topicId,
    isInternal: topic.internal,
    topicAuthorizedOperations: AUTHORIZED_OPERATIONS_OMITTED,
    partitions: topic.partitions.map((p) => ({
      // A partition whose leader died and has no live ISR member to take over.
      errorCode: p.leader === NO_LEADER ? ErrorCode.LEADER_NOT_AVAILABLE : ErrorCode.NONE,
      partitionIndex: p.partition,
      leaderId: p.leader,
      leaderEpoch: p.leaderEpoch,
      replicaNodes: [...p.replicas],
      isrNodes: [...p.isr],
      offlineReplicas: p.replicas.filter((id) => image.broker(id)?.fenced === true),
    })),
  };
}

export function createMetadataHandler(services: BrokerServices) {
  return defineHandler({
    request: MetadataRequest,
    response: MetadataResponse,
    versions: [0, 12],
    async handle(request, context) {
      const { image } = services;
      const allTopics =
        request.topics === null || (context.apiVersion === 0 && request.topics.length === 0);
      const topics: TopicEntry[] = [];
      if (allTopics) {
        for (const topic of image.topics()) topics.push(describeTopic(topic, image));
      } else {
        // Versions before 4 always allowed auto-creation.
        const allowAutoCreate =
          services.autoCreateTopics && (context.apiVersion < 4 || request.allowAutoTopicCreation);
        for (const wanted of request.topics!) {
          topics.push(await lookUp(services, wanted.name, wanted.topicId, allowAutoCreate));
        }
      }
      return {
        throttleTimeMs: 0,
        brokers: image
          .liveBrokers()
          .map((b) => ({ nodeId: b.nodeId, host: b.host, port: b.port, rack: b.rack })),
        clusterId: services.clusterId,
        controllerId:
          services.controllerId === undefined ? services.nodeId : (services.controllerId() ?? -1),
        topics,
        clusterAuthorizedOperations: AUTHORIZED_OPERATIONS_OMITTED,
      };
    },
  });
}

async function lookUp(
  services: BrokerServices,
  name: string | null,
  topicId: string,
  allowAutoCreate: boolean,
): Promise<TopicEntry> {
  const { image } = services;
  if (name === null) {
    const byId = image.topicById(topicId);
    if (byId !== undefined) return describeTopic(byId, image);
    return { errorCode: ErrorCode.UNKNOWN_TOPIC_ID, name: null, topicId, partitions: [] };
  }
  const existing = image.topic(name);
  if (existing !== undefined) return describeTopic(existing, image);
  const problem = topicNameProblem(name);
  if (problem !== null)
    return {
      errorCode: ErrorCode.INVALID_TOPIC_EXCEPTION,
      name,
      topicId: ZERO_UUID,
      partitions: [],
    };
  if (!allowAutoCreate)
    return {
      errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      name,
      topicId: ZERO_UUID,
      partitions: [],
    };
  const request = { name, numPartitions: -1, replicationFactor: -1, configs: [] };
  const done = await services.metadata.submit({ kind: "createTopic", request });
  if (!done.ok) {
    // A concurrent request may have created it meanwhile.
    const raced = image.topic(name);
    if (raced !== undefined) return describeTopic(raced, image);
    // Not the controller here, or it exists by now though this image has not applied it
    // yet: retriable, as Kafka answers a topic being created (never TOPIC_ALREADY_EXISTS,
    // which clients take as final for the topic).
    const errorCode =
      done.error.kind === "notController" || done.error.kind === "exists"
        ? ErrorCode.LEADER_NOT_AVAILABLE
        : topicErrorCode(done.error);
    return { errorCode, name, topicId: ZERO_UUID, partitions: [] };
  }
  const created = image.topic(name);
  if (created === undefined)
    return { errorCode: ErrorCode.LEADER_NOT_AVAILABLE, name, topicId: ZERO_UUID, partitions: [] };
  return describeTopic(created, image);
}
