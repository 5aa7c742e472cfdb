/**
 * The one module where runtime-specific calls live (Hono's adapter split): everything else
 * uses `node:` built-ins and web standards, so the same source runs under Bun and Deno 2.
 * Each runtime has its own file; this one picks by the global the runtime defines. The
 * runtime files declare the few types they need locally, so neither needs the other's
 * type definitions.
 */
import { serveHttpBun } from "./bun.ts";
import { serveHttpDeno } from "./deno.ts";

export interface ServeHttpOptions {
  /** Address to bind: an IPv4/IPv6 address or hostname, without brackets. */
  hostname: string;
  /** Port to bind; 0 asks for any free port (see HttpServer.port). */
  port: number;
  fetch: (request: Request) => Response | Promise<Response>;
}

export interface HttpServer {
  /** The port actually bound. */
  readonly port: number;
  /** Stops listening and closes open connections; calling it again is harmless. */
  stop(): Promise<void>;
}

export type RuntimeName = "bun" | "deno";

export function runtimeName(): RuntimeName | null {
  const globals = globalThis as { Bun?: unknown; Deno?: unknown };
  if (globals.Bun !== undefined) return "bun";
  if (globals.Deno !== undefined) return "deno";
  return null;
}

/** Serves HTTP on hostname:port; resolves once listening, rejects if it cannot bind. */
export async function serveHttp(options: ServeHttpOptions): Promise<HttpServer> {
  const runtime = runtimeName();
  switch (runtime) {
    case "bun":
      return serveHttpBun(options);
    case "deno":
      return serveHttpDeno(options);
    case null:
      throw new Error("Unsupported runtime: Brook runs under Bun or Deno");
  }
}
