/**
 * Serves the admin app on `--admin` through the runtime module (Bun.serve or Deno.serve).
 */
import type { NodeConfig } from "../config/node-config.ts";
import { formatHostPort } from "../config/node-config.ts";
import { serveHttp } from "../runtime/index.ts";
import { logger } from "../util/log.ts";

const log = logger("admin");

export interface AdminServer {
  readonly host: string;
  /** The port bound: differs from config.admin.port when that is 0. */
  readonly port: number;
  stop(): Promise<void>;
}

/** Anything with a fetch handler: a Hono app. */
export interface FetchApp {
  fetch: (request: Request) => Response | Promise<Response>;
}

/** Listens on config.admin; rejects with the address in the message if it cannot bind. */
export async function startAdminServer(
  config: Pick<NodeConfig, "admin">,
  app: FetchApp,
): Promise<AdminServer> {
  const { host } = config.admin;
  const fetch = (request: Request) => app.fetch(request);
  let server;
  try {
    server = await serveHttp({ hostname: host, port: config.admin.port, fetch });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const address = formatHostPort(config.admin);
    throw new Error(`Cannot serve the admin API on ${address}: ${reason}`, { cause: error });
  }
  const { port } = server;
  log.info("Admin API listening", { address: formatHostPort({ host, port }) });
  return {
    host,
    port,
    async stop() {
      await server.stop();
      log.info("Admin API stopped", { address: formatHostPort({ host, port }) });
    },
  };
}
