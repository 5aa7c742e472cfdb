/**
 * The listener's `ready` gate: a node whose metadata has not caught up answers
 * ApiVersions at once and holds every other request, in order, until it may answer.
 */
import { afterEach, expect, test } from "bun:test";
import { createApiVersionsHandler } from "../api/api-versions.ts";
import { KafkaConnection } from "../client/kafka-client.ts";
import { MetadataRequest, MetadataResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "./handler.ts";
import { type KafkaListener, startKafkaListener } from "./listener.ts";
import { HandlerRegistry } from "./registry.ts";

const METADATA = 3;
const API_VERSIONS = 18;

let listener: KafkaListener | null = null;
let client: KafkaConnection | null = null;

afterEach(async () => {
  client?.close();
  await listener?.stop();
  client = null;
  listener = null;
});

/** A Metadata handler that names the answer's order in `throttleTimeMs`. */
function registryCountingMetadata(): HandlerRegistry {
  const registry = new HandlerRegistry();
  registry.register(createApiVersionsHandler(registry));
  let answered = 0;
  registry.register(
    defineHandler({
      request: MetadataRequest,
      response: MetadataResponse,
      versions: [0, 12],
      handle: () => ({
        throttleTimeMs: ++answered,
        brokers: [],
        clusterId: null,
        controllerId: -1,
        topics: [],
      }),
    }),
  );
  return registry;
}

test("listener: until ready, ApiVersions is answered and other requests wait, then are answered in order", async () => {
  let open!: () => void;
  let gate: Promise<void> | null = new Promise<void>((resolve) => (open = resolve));
  void gate.then(() => (gate = null));
  // Requests that reached the gate while it was shut: the event the holding is about.
  let held = 0;
  listener = await startKafkaListener({
    host: "127.0.0.1",
    port: 0,
    frameBytesMax: 1 << 20,
    registry: registryCountingMetadata(),
    ready: () => {
      if (gate !== null) held++;
      return gate;
    },
  });
  client = await KafkaConnection.connect(listener.port);
  const versions = await client.request(API_VERSIONS, 3, {
    clientSoftwareName: "test",
    clientSoftwareVersion: "0",
  });
  expect(versions.errorCode).toBe(0);

  const answers: number[] = [];
  const first = client
    .request(METADATA, 9, { topics: [], allowAutoTopicCreation: false })
    .then((a) => answers.push(a.throttleTimeMs));
  const second = client
    .request(METADATA, 9, { topics: [], allowAutoTopicCreation: false })
    .then((a) => answers.push(a.throttleTimeMs));
  // Held, while a new connection's ApiVersions still gets through (on this one it would
  // wait: answers keep the order of the requests).
  while (held < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(answers).toEqual([]);
  const other = await KafkaConnection.connect(listener.port);
  try {
    const again = await other.request(API_VERSIONS, 3, {
      clientSoftwareName: "test",
      clientSoftwareVersion: "0",
    });
    expect(again.errorCode).toBe(0);
  } finally {
    other.close();
  }
  expect(answers).toEqual([]);

  open();
  await Promise.all([first, second]);
  expect(answers).toEqual([1, 2]);
  // Once open it stays open: the next request is answered at once.
  const third = await client.request(METADATA, 9, { topics: [], allowAutoTopicCreation: false });
  expect(third.throttleTimeMs).toBe(3);
});
