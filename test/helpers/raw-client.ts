/**
 * A minimal Kafka client on Brook's own codec, for tests that must send exact bytes
 * (bad input, specific versions) and read exact answers. Requests are pipelined; answers
 * are matched by correlation id. The client itself lives in `src/client/kafka-client.ts`,
 * where `brook produce` and `brook consume` use it too.
 */
export { KafkaConnection as RawClient } from "../../src/client/kafka-client.ts";
