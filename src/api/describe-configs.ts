/**
 * DescribeConfigs (key 32), v0-v4.
 * v1 synonyms and config source; v3 config type and documentation (none given); v4
 * flexible. Topics (resource type 2) answer every topic config with its effective value;
 * brokers (type 4) answer the broker settings Brook has.
 */
import { TOPIC_CONFIGS, type ConfigType, topicConfigValue } from "../cluster/topic-config.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  DescribeConfigsRequest,
  DescribeConfigsResponse,
  type DescribeConfigsResponseDescribeConfigsResourceResult,
} from "../protocol/generated/index.ts";
import type { Encodable } from "../protocol/schema.ts";
import { defineHandler } from "../server/handler.ts";
import type { BrokerServices } from "./services.ts";

export const RESOURCE_TYPE = { TOPIC: 2, BROKER: 4 } as const;
export const CONFIG_SOURCE = {
  DYNAMIC_TOPIC_CONFIG: 1,
  STATIC_BROKER_CONFIG: 4,
  DEFAULT_CONFIG: 5,
} as const;

const CONFIG_TYPE_CODES: Record<ConfigType, number> = {
  boolean: 1,
  string: 2,
  int: 3,
  long: 5,
  double: 6,
  list: 7,
};

type ConfigEntry = Encodable<DescribeConfigsResponseDescribeConfigsResourceResult>;

function entry(
  name: string,
  value: string,
  type: ConfigType,
  overridden: boolean,
  source: number,
  synonyms: boolean,
): ConfigEntry {
  return {
    name,
    value,
    readOnly: false,
    isDefault: !overridden,
    configSource: source,
    isSensitive: false,
    synonyms: synonyms ? [{ name, value, source }] : [],
    configType: CONFIG_TYPE_CODES[type],
    documentation: null,
  };
}

export function createDescribeConfigsHandler(
  services: BrokerServices,
  brokerSettings: () => Record<string, string>,
) {
  return defineHandler({
    request: DescribeConfigsRequest,
    response: DescribeConfigsResponse,
    versions: [0, 4],
    handle(request) {
      return {
        throttleTimeMs: 0,
        results: request.resources.map((resource) => {
          const base = { resourceType: resource.resourceType, resourceName: resource.resourceName };
          const wanted = (name: string) =>
            resource.configurationKeys === null || resource.configurationKeys.includes(name);
          if (resource.resourceType === RESOURCE_TYPE.TOPIC) {
            const topic = services.image.topic(resource.resourceName);
            if (topic === undefined) {
              return {
                ...base,
                errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                errorMessage: `Topic ${resource.resourceName} does not exist`,
                configs: [],
              };
            }
            const configs = TOPIC_CONFIGS.filter((d) => wanted(d.name)).map((d) => {
              const overridden = topic.configs.has(d.name);
              const source = overridden
                ? CONFIG_SOURCE.DYNAMIC_TOPIC_CONFIG
                : CONFIG_SOURCE.DEFAULT_CONFIG;
              return entry(
                d.name,
                topicConfigValue(topic.configs, d.name),
                d.type,
                overridden,
                source,
                request.includeSynonyms,
              );
            });
            return { ...base, errorCode: ErrorCode.NONE, errorMessage: null, configs };
          }
          if (resource.resourceType === RESOURCE_TYPE.BROKER) {
            if (resource.resourceName !== "" && resource.resourceName !== String(services.nodeId)) {
              return {
                ...base,
                errorCode: ErrorCode.INVALID_REQUEST,
                errorMessage: `Not broker ${resource.resourceName}`,
                configs: [],
              };
            }
            const configs = Object.entries(brokerSettings())
              .filter(([name]) => wanted(name))
              .map(([name, value]) =>
                entry(
                  name,
                  value,
                  "string",
                  false,
                  CONFIG_SOURCE.STATIC_BROKER_CONFIG,
                  request.includeSynonyms,
                ),
              );
            return { ...base, errorCode: ErrorCode.NONE, errorMessage: null, configs };
          }
          return {
            ...base,
            errorCode: ErrorCode.INVALID_REQUEST,
            errorMessage: `Unsupported resource type ${resource.resourceType}`,
            configs: [],
          };
        }),
      };
    },
  });
}
