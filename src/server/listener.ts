/**
 * The Kafka TCP listener. Accepts connections and hands each to a `Connection`; keeps
 * the set of open connections so that a stop closes them all.
 */
import { createServer, type Server } from "node:net";
import { logger } from "../util/log.ts";
import { Connection, type RequestObserver } from "./connection.ts";
import type { HandlerRegistry } from "./registry.ts";

const log = logger("listener");

export interface KafkaListener {
  readonly port: number;
  connectionCount(): number;
  /** Connections whose reading is paused until their client takes its answers. */
  pausedConnectionCount(): number;
  stop(): Promise<void>;
}

export async function startKafkaListener(options: {
  host: string;
  port: number;
  frameBytesMax: number;
  registry: HandlerRegistry;
  /** Request latency for the metrics. */
  observer?: RequestObserver;
  /** See ConnectionOptions.ready. */
  ready?: () => Promise<void> | null;
}): Promise<KafkaListener> {
  const connections = new Set<Connection>();
  const server: Server = createServer((socket) => {
    const connection = new Connection(socket, {
      frameBytesMax: options.frameBytesMax,
      registry: options.registry,
      observer: options.observer,
      ready: options.ready,
      onClose: (closed) => connections.delete(closed),
    });
    connections.add(connection);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  log.info("Kafka listener serving", { host: options.host, port });
  return {
    port,
    connectionCount: () => connections.size,
    pausedConnectionCount: () => {
      let paused = 0;
      for (const connection of connections) if (connection.paused) paused++;
      return paused;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const connection of connections) connection.close("Broker stopping");
        server.close(() => resolve());
      }),
  };
}
