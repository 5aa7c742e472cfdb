/**
 * Test aids for the group coordinator: a harness on a ManualClock, callbacks that
 * record what they were answered, and ConsumerProtocol subscription bytes.
 */
import { Buffer } from "node:buffer";
import { Writer } from "../protocol/writer.ts";
import { ManualClock } from "../util/clock.ts";
import { SeededRandom } from "../util/random.ts";
import type { OffsetsTopic } from "./log-offset-store.ts";
import {
  GroupCoordinator,
  type GroupCoordinatorConfig,
  type GroupMetadataStore,
  type GroupProtocol,
  type JoinGroupInput,
  type JoinGroupResult,
  type SyncGroupResult,
} from "./group-coordinator.ts";
import { MemoryOffsetStore } from "./offset-store.ts";

export const SESSION_TIMEOUT_MS = 10_000;
export const REBALANCE_TIMEOUT_MS = 30_000;

export interface Harness {
  readonly clock: ManualClock;
  readonly offsets: MemoryOffsetStore;
  readonly coordinator: GroupCoordinator;
  /** Advances the clock and ticks every 100 ms, as the driver would. */
  advance(ms: number): void;
}

export function harness(
  config: Partial<GroupCoordinatorConfig> = {},
  seed = 1,
  options: {
    clock?: ManualClock;
    groupStore?: GroupMetadataStore;
    ownsGroup?: (groupId: string) => boolean;
  } = {},
): Harness {
  const clock = options.clock ?? new ManualClock();
  const offsets = new MemoryOffsetStore();
  const coordinator = new GroupCoordinator({
    clock,
    random: new SeededRandom(seed),
    groupHasOffsets: (groupId) => offsets.hasGroup(groupId),
    ...(options.groupStore === undefined ? {} : { groupStore: options.groupStore }),
    ...(options.ownsGroup === undefined ? {} : { ownsGroup: options.ownsGroup }),
    config,
  });
  return {
    clock,
    offsets,
    coordinator,
    advance(ms: number) {
      let left = ms;
      while (left > 0) {
        const step = Math.min(100, left);
        clock.advance(step);
        left -= step;
        coordinator.tick();
        coordinator.checkInvariants();
      }
    },
  };
}

/** An in-memory twin of `__consumer_offsets`: batches per partition, as appended. */
export class TopicTwin implements OffsetsTopic {
  readonly partitionCount = 5;
  readonly partitions: Uint8Array[][] = Array.from({ length: 5 }, () => []);
  failing = false;
  async append(partition: number, batch: Uint8Array): Promise<void> {
    if (this.failing) throw new Error("Disk on fire");
    this.partitions[partition]!.push(Uint8Array.from(batch));
  }
  replay(
    visit: (batch: Uint8Array) => void,
    only: (partition: number) => boolean = () => true,
  ): number[] {
    const read: number[] = [];
    for (const [partition, batches] of this.partitions.entries()) {
      if (!only(partition)) continue;
      for (const batch of batches) visit(batch);
      read.push(partition);
    }
    return read;
  }
}

/** A callback that records its answers. */
export class Reply<T> {
  readonly values: T[] = [];
  readonly callback = (value: T): void => {
    this.values.push(value);
  };
  get answered(): boolean {
    return this.values.length > 0;
  }
  /** The one answer; fails when there is none or more than one. */
  get value(): T {
    if (this.values.length !== 1) throw new Error(`Expected one answer, got ${this.values.length}`);
    return this.values[0]!;
  }
}

export function bytes(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text));
}

export function text(data: Uint8Array): string {
  return Buffer.from(data).toString();
}

/** ConsumerProtocol subscription v0: version, topics, null user data. */
export function subscription(topics: readonly string[], version = 0): Uint8Array {
  const writer = new Writer();
  writer.int16(version);
  writer.int32(topics.length);
  for (const topic of topics) {
    const length = Buffer.byteLength(topic);
    writer.int16(length);
    writer.utf8(topic, length);
  }
  writer.int32(-1);
  return new Uint8Array(writer.toBuffer());
}

export function protocols(...names: string[]): GroupProtocol[] {
  return names.map((name) => ({ name, metadata: bytes(`meta-${name}`) }));
}

export function joinInput(overrides: Partial<JoinGroupInput> = {}): JoinGroupInput {
  return {
    groupId: "g",
    memberId: "",
    groupInstanceId: null,
    requireKnownMemberId: true,
    supportSkippingAssignment: false,
    clientId: "client",
    clientHost: "/127.0.0.1",
    rebalanceTimeoutMs: REBALANCE_TIMEOUT_MS,
    sessionTimeoutMs: SESSION_TIMEOUT_MS,
    protocolType: "consumer",
    protocols: protocols("range"),
    ...overrides,
  };
}

export function join(h: Harness, overrides: Partial<JoinGroupInput> = {}): Reply<JoinGroupResult> {
  const reply = new Reply<JoinGroupResult>();
  h.coordinator.joinGroup(joinInput(overrides), reply.callback);
  h.coordinator.checkInvariants();
  return reply;
}

/**
 * A dynamic member's KIP-394 join: the first JoinGroup gets MEMBER_ID_REQUIRED and an
 * id, the second (returned, usually parked) joins with it.
 */
export function joinNew(
  h: Harness,
  overrides: Partial<JoinGroupInput> = {},
): {
  memberId: string;
  reply: Reply<JoinGroupResult>;
} {
  const first = join(h, { ...overrides, memberId: "" });
  const { error, memberId } = first.value;
  if (error !== "memberIdRequired") throw new Error(`Expected memberIdRequired, got ${error}`);
  return { memberId, reply: join(h, { ...overrides, memberId }) };
}

export function sync(
  h: Harness,
  memberId: string,
  generationId: number,
  assignments: Record<string, string> = {},
  overrides: { groupId?: string; groupInstanceId?: string | null } = {},
): Reply<SyncGroupResult> {
  const reply = new Reply<SyncGroupResult>();
  h.coordinator.syncGroup(
    {
      groupId: overrides.groupId ?? "g",
      generationId,
      memberId,
      groupInstanceId: overrides.groupInstanceId ?? null,
      protocolType: null,
      protocolName: null,
      assignments: Object.entries(assignments).map(([id, value]) => ({
        memberId: id,
        assignment: bytes(value),
      })),
    },
    reply.callback,
  );
  h.coordinator.checkInvariants();
  return reply;
}

export function heartbeat(
  h: Harness,
  memberId: string,
  generationId: number,
  groupInstanceId: string | null = null,
) {
  const error = h.coordinator.heartbeat({ groupId: "g", generationId, memberId, groupInstanceId });
  h.coordinator.checkInvariants();
  return error;
}
