import { expect, test } from "bun:test";
import { createAdminApp } from "./app.ts";
import { startAdminServer } from "./server.ts";

test("admin: server: serves the app on a free loopback port, then stops", async () => {
  const app = createAdminApp({ isServing: () => true, nodeId: () => 1 });
  const server = await startAdminServer({ admin: { host: "127.0.0.1", port: 0 } }, app);
  try {
    expect(server.port).toBeGreaterThan(0);
    const response = await fetch(`http://127.0.0.1:${server.port}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  } finally {
    await server.stop();
    await server.stop(); // A second stop is harmless.
  }
  await expect(fetch(`http://127.0.0.1:${server.port}/health`)).rejects.toThrow();
});

test("admin: server: a port in use is an error naming the address", async () => {
  const app = createAdminApp({ isServing: () => true, nodeId: () => 1 });
  const first = await startAdminServer({ admin: { host: "127.0.0.1", port: 0 } }, app);
  try {
    const second = startAdminServer({ admin: { host: "127.0.0.1", port: first.port } }, app);
    await expect(second).rejects.toThrow(`Cannot serve the admin API on 127.0.0.1:${first.port}: `);
  } finally {
    await first.stop();
  }
});
