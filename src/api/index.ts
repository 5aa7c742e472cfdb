/**
 * Every Kafka API this node answers, registered in one place.
 */
import { HandlerRegistry } from "../server/registry.ts";
import { createApiVersionsHandler } from "./api-versions.ts";
import { createCreatePartitionsHandler } from "./create-partitions.ts";
import { createCreateTopicsHandler } from "./create-topics.ts";
import { createDeleteRecordsHandler } from "./delete-records.ts";
import { createDeleteTopicsHandler } from "./delete-topics.ts";
import { createDescribeClusterHandler } from "./describe-cluster.ts";
import { createDescribeConfigsHandler } from "./describe-configs.ts";
import { createFetchHandler } from "./fetch.ts";
import { createGroupHandlers, type GroupHandlerDeps } from "./group-handlers.ts";
import { createListOffsetsHandler } from "./list-offsets.ts";
import { createMetadataHandler } from "./metadata.ts";
import { createOffsetForLeaderEpochHandler } from "./offset-for-leader-epoch.ts";
import { createProduceHandler } from "./produce.ts";
import type { BrokerServices } from "./services.ts";

export function createRegistry(
  services: BrokerServices,
  options: { brokerSettings: () => Record<string, string>; groups: GroupHandlerDeps },
): HandlerRegistry {
  const registry = new HandlerRegistry();
  registry.register(createApiVersionsHandler(registry));
  registry.register(createMetadataHandler(services));
  registry.register(createProduceHandler(services));
  registry.register(createFetchHandler(services));
  registry.register(createListOffsetsHandler(services));
  registry.register(createOffsetForLeaderEpochHandler(services));
  registry.register(createCreateTopicsHandler(services));
  registry.register(createDeleteTopicsHandler(services));
  registry.register(createCreatePartitionsHandler(services));
  registry.register(createDeleteRecordsHandler(services));
  registry.register(createDescribeConfigsHandler(services, options.brokerSettings));
  registry.register(createDescribeClusterHandler(services));
  for (const handler of createGroupHandlers(options.groups)) registry.register(handler);
  return registry;
}
