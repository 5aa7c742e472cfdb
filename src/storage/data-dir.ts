/**
 * The data directory's identity file, `<data-dir>/meta.json`: node id, cluster id and
 * format version, written on first start and checked on every later one, so a node
 * never serves another cluster's data by mistake.
 *
 * A new data dir started without `--join` founds a cluster: its cluster id is made
 * here. One started with `--join` has no cluster id until it joins: the cluster's id
 * is then adopted (`adoptClusterId`), and a data dir that already belongs to another
 * cluster is refused.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Random, systemRandom } from "../util/random.ts";

/** 2: the metadata log is the Raft log (issue 7); version 1 data dirs are not read. */
export const FORMAT_VERSION = 2;
/** Node id when none is given and the data dir is new. */
export const DEFAULT_NODE_ID = 1;
/**
 * A joining node without --node-id takes a random id from here (Kafka's generated
 * broker ids also start above 1000), so that nodes joining at once do not collide.
 */
export const JOINING_NODE_ID_MIN = 1001;
export const JOINING_NODE_ID_SPAN = 2 ** 30;

export interface DataDirMeta {
  nodeId: number;
  /** Null until a node started with --join has joined its cluster. */
  clusterId: string | null;
  formatVersion: number;
}

export class DataDirError extends Error {
  override name = "DataDirError";
}

/** Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding. */
export function newClusterId(): string {
  return randomBytes(16).toString("base64url");
}

export function openDataDir(
  dataDir: string,
  requestedNodeId: number | null,
  options: { joining?: boolean; random?: Random } = {},
): DataDirMeta {
  const joining = options.joining === true;
  const random = options.random ?? systemRandom;
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    throw new DataDirError(`Cannot create data dir ${dataDir}: ${(error as Error).message}`);
  }
  const path = join(dataDir, "meta.json");
  if (!existsSync(path)) {
    const nodeId =
      requestedNodeId ??
      (joining ? JOINING_NODE_ID_MIN + random.int(0, JOINING_NODE_ID_SPAN - 1) : DEFAULT_NODE_ID);
    const meta: DataDirMeta = {
      nodeId,
      clusterId: joining ? null : newClusterId(),
      formatVersion: FORMAT_VERSION,
    };
    writeMeta(path, meta);
    return meta;
  }
  let meta: DataDirMeta;
  try {
    meta = JSON.parse(readFileSync(path, "utf8")) as DataDirMeta;
  } catch (error) {
    throw new DataDirError(`Unreadable ${path}: ${(error as Error).message}`);
  }
  const clusterIdValid =
    meta.clusterId === null || (typeof meta.clusterId === "string" && meta.clusterId !== "");
  if (!Number.isInteger(meta.nodeId) || meta.nodeId < 0 || !clusterIdValid) {
    throw new DataDirError(`Corrupt ${path}: node id and cluster id required`);
  }
  if (meta.formatVersion !== FORMAT_VERSION) {
    throw new DataDirError(
      `${path} has format version ${meta.formatVersion}, this build reads ${FORMAT_VERSION}`,
    );
  }
  if (requestedNodeId !== null && requestedNodeId !== meta.nodeId) {
    throw new DataDirError(
      `Data dir ${dataDir} belongs to node ${meta.nodeId}, not --node-id ${requestedNodeId}`,
    );
  }
  return meta;
}

/**
 * The cluster this node joined has id `clusterId` (learned from `source`, a seed's
 * address): a data dir without a cluster id takes it; one of another cluster is refused.
 */
export function adoptClusterId(
  dataDir: string,
  meta: DataDirMeta,
  clusterId: string,
  source: string,
): DataDirMeta {
  if (meta.clusterId === clusterId) return meta;
  if (meta.clusterId !== null) {
    throw new DataDirError(
      `Data dir ${dataDir} belongs to cluster ${meta.clusterId}, but ${source} is in cluster ${clusterId}`,
    );
  }
  const adopted = { ...meta, clusterId };
  writeMeta(join(dataDir, "meta.json"), adopted);
  return adopted;
}

function writeMeta(path: string, meta: DataDirMeta): void {
  try {
    writeFileSync(`${path}.tmp`, `${JSON.stringify(meta, null, 2)}\n`);
    renameSync(`${path}.tmp`, path);
  } catch (error) {
    throw new DataDirError(`Cannot write ${path}: ${(error as Error).message}`);
  }
}
