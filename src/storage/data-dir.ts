/**
 * The data directory's identity file, `<data-dir>/meta.json`: node id, cluster id and
 * format version, written on first start and checked on every later one, so a node
 * never serves another cluster's data by mistake.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const FORMAT_VERSION = 1;
/** Node id when none is given and the data dir is new. */
export const DEFAULT_NODE_ID = 1;

export interface DataDirMeta {
  nodeId: number;
  clusterId: string;
  formatVersion: number;
}

export class DataDirError extends Error {
  override name = "DataDirError";
}

/** Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding. */
export function newClusterId(): string {
  return randomBytes(16).toString("base64url");
}

export function openDataDir(dataDir: string, requestedNodeId: number | null): DataDirMeta {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    throw new DataDirError(`Cannot create data dir ${dataDir}: ${(error as Error).message}`);
  }
  const path = join(dataDir, "meta.json");
  if (!existsSync(path)) {
    const meta: DataDirMeta = { nodeId: requestedNodeId ?? DEFAULT_NODE_ID, clusterId: newClusterId(), formatVersion: FORMAT_VERSION };
    try {
      writeFileSync(`${path}.tmp`, `${JSON.stringify(meta, null, 2)}\n`);
      renameSync(`${path}.tmp`, path);
    } catch (error) {
      throw new DataDirError(`Cannot write ${path}: ${(error as Error).message}`);
    }
    return meta;
  }
  let meta: DataDirMeta;
  try {
    meta = JSON.parse(readFileSync(path, "utf8")) as DataDirMeta;
  } catch (error) {
    throw new DataDirError(`Unreadable ${path}: ${(error as Error).message}`);
  }
  if (!Number.isInteger(meta.nodeId) || meta.nodeId < 0 || typeof meta.clusterId !== "string" || meta.clusterId === "") {
    throw new DataDirError(`Corrupt ${path}: node id and cluster id required`);
  }
  if (meta.formatVersion !== FORMAT_VERSION) {
    throw new DataDirError(`${path} has format version ${meta.formatVersion}, this build reads ${FORMAT_VERSION}`);
  }
  if (requestedNodeId !== null && requestedNodeId !== meta.nodeId) {
    throw new DataDirError(`Data dir ${dataDir} belongs to node ${meta.nodeId}, not --node-id ${requestedNodeId}`);
  }
  return meta;
}
