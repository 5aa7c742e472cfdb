import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SeededRandom } from "../util/random.ts";
import { adoptClusterId, DataDirError, JOINING_NODE_ID_MIN, openDataDir } from "./data-dir.ts";

const dirs: string[] = [];
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), "brook-data-dir-"));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test("storage: data dir: a founding node makes a cluster id; a restart keeps it", () => {
  const dir = fresh();
  const meta = openDataDir(dir, null);
  expect(meta.nodeId).toBe(1);
  expect(meta.clusterId).toMatch(/^[A-Za-z0-9_-]{22}$/);
  expect(openDataDir(dir, null)).toEqual(meta);
});

test("storage: data dir: a joining node has a random id above 1000 and no cluster id until it joins", () => {
  const dir = fresh();
  const meta = openDataDir(dir, null, { joining: true, random: new SeededRandom(5) });
  expect(meta.nodeId).toBeGreaterThanOrEqual(JOINING_NODE_ID_MIN);
  expect(meta.clusterId).toBeNull();
  const joined = adoptClusterId(dir, meta, "cluster-A", "127.0.0.1:7946");
  expect(joined.clusterId).toBe("cluster-A");
  expect(JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")).clusterId).toBe("cluster-A");
  // Restarted with --join again: the same node, the same cluster.
  const again = openDataDir(dir, null, { joining: true });
  expect(again).toEqual(joined);
  expect(adoptClusterId(dir, again, "cluster-A", "127.0.0.1:7946")).toEqual(joined);
});

test("storage: data dir: a data dir of another cluster is refused with one line", () => {
  const dir = fresh();
  const meta = openDataDir(dir, 3);
  let error: unknown;
  try {
    adoptClusterId(dir, meta, "someone-else", "10.0.0.9:7946");
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(DataDirError);
  expect((error as Error).message).toBe(
    `Data dir ${dir} belongs to cluster ${meta.clusterId}, but 10.0.0.9:7946 is in cluster someone-else`,
  );
  expect((error as Error).message).not.toContain("\n");
});
