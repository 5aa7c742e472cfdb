/**
 * DescribeCluster (key 60), v0-v1.
 * v1 adds the endpoint type (1 brokers; 2 controllers, which a single node also is).
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import { DescribeClusterRequest, DescribeClusterResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";
import type { BrokerServices } from "./services.ts";

const AUTHORIZED_OPERATIONS_OMITTED = -2147483648;

export function createDescribeClusterHandler(services: BrokerServices) {
  return defineHandler({
    request: DescribeClusterRequest,
    response: DescribeClusterResponse,
    versions: [0, 1],
    handle(request) {
      const endpointType = request.endpointType;
      if (endpointType !== 1 && endpointType !== 2) {
        return {
          errorCode: ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
          errorMessage: `Unknown endpoint type ${endpointType}`,
          endpointType,
          clusterId: services.clusterId,
          controllerId: -1,
          brokers: [],
        };
      }
      return {
        throttleTimeMs: 0,
        errorCode: ErrorCode.NONE,
        errorMessage: null,
        endpointType,
        clusterId: services.clusterId,
        controllerId:
          services.controllerId === undefined ? services.nodeId : (services.controllerId() ?? -1),
        brokers: services.image
          .liveBrokers()
          .map((b) => ({ brokerId: b.nodeId, host: b.host, port: b.port, rack: b.rack })),
        clusterAuthorizedOperations: AUTHORIZED_OPERATIONS_OMITTED,
      };
    },
  });
}
