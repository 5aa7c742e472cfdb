/**
 * Deno half of the runtime module: `Deno.serve`. Only the members used here are declared,
 * so this file type-checks without Deno's type definitions.
 */
import type { HttpServer, ServeHttpOptions } from "./index.ts";

interface DenoHttpServer {
  readonly addr: { readonly port: number };
  shutdown(): Promise<void>;
}

interface DenoGlobal {
  serve(
    options: { hostname: string; port: number; onListen: (address: unknown) => void },
    handler: (request: Request) => Response | Promise<Response>,
  ): DenoHttpServer;
}

export async function serveHttpDeno(options: ServeHttpOptions): Promise<HttpServer> {
  const deno = (globalThis as { Deno?: DenoGlobal }).Deno;
  if (deno === undefined) throw new Error("Not running under Deno");
  // Deno.serve binds before it returns (and throws when it cannot); onListen replaces
  // Deno's default "Listening on" console line.
  const server = deno.serve(
    { hostname: options.hostname, port: options.port, onListen: () => {} },
    (request) => options.fetch(request),
  );
  let stopped: Promise<void> | null = null;
  return {
    port: server.addr.port,
    stop() {
      stopped ??= server.shutdown();
      return stopped;
    },
  };
}
