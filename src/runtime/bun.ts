/**
 * Bun half of the runtime module: `Bun.serve`. Only the members used here are declared,
 * so this file type-checks without Bun's type definitions.
 */
import type { HttpServer, ServeHttpOptions } from "./index.ts";

interface BunServer {
  readonly port: number | undefined;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}

interface BunGlobal {
  serve(options: {
    hostname: string;
    port: number;
    development: boolean;
    reusePort: boolean;
    fetch: (request: Request) => Response | Promise<Response>;
  }): BunServer;
}

export async function serveHttpBun(options: ServeHttpOptions): Promise<HttpServer> {
  const bun = (globalThis as { Bun?: BunGlobal }).Bun;
  if (bun === undefined) throw new Error("Not running under Bun");
  // Throws at once when the address cannot be bound (EADDRINUSE, EACCES).
  const server = bun.serve({
    hostname: options.hostname,
    port: options.port,
    development: false, // No HTML error pages.
    // Said explicitly: with development false, Bun 1.4 otherwise binds a port that is
    // already in use (SO_REUSEPORT) and two nodes would share one admin port.
    reusePort: false,
    fetch: (request) => options.fetch(request),
  });
  const port = server.port;
  if (port === undefined) throw new Error("Bun.serve did not report its port");
  let stopped: Promise<void> | null = null;
  return {
    port,
    stop() {
      // true: close keep-alive and in-flight connections too, so stop never waits on a
      // client. Admin requests are short and a client retries.
      stopped ??= Promise.resolve(server.stop(true));
      return stopped;
    },
  };
}
