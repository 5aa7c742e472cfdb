/**
 * What the controller writes when a broker dies or comes back (docs/cluster.md, "The
 * controller"). A fenced broker leads nothing: each partition it led gets a new leader
 * from the rest of its ISR that is live, with the leader epoch bumped, or no leader
 * (-1) when none is left, as Kafka does without unclean leader election. The dead
 * broker leaves the ISR unless it is the last member: the last ISR member stays, so
 * that when it returns it is known to hold everything acknowledged and may lead again.
 * Unfencing gives a leaderless partition back to a returning broker that is in its ISR.
 */
import type { MetadataImage, MetadataRecord, PartitionImage } from "./metadata-image.ts";

export const NO_LEADER = -1;

export function planBrokerFenced(image: MetadataImage, nodeId: number): MetadataRecord[] {
  const broker = image.broker(nodeId);
  if (broker === undefined || broker.fenced) return [];
  const live = new Set(image.liveBrokers().map((b) => b.nodeId));
  live.delete(nodeId);
  const records: MetadataRecord[] = [{ type: "fenceBroker", nodeId }];
  for (const topic of image.topics()) {
    for (const partition of topic.partitions) {
      if (!partition.isr.includes(nodeId) && partition.leader !== nodeId) continue;
      const isr =
        partition.isr.length > 1 ? partition.isr.filter((id) => id !== nodeId) : [...partition.isr];
      let leader = partition.leader;
      if (leader === nodeId) leader = isr.find((id) => live.has(id)) ?? NO_LEADER;
      if (leader === partition.leader && sameMembers(isr, partition.isr)) continue;
      records.push(change(topic.topicId, partition, leader, isr));
    }
  }
  return records;
}

export function planBrokerUnfenced(image: MetadataImage, nodeId: number): MetadataRecord[] {
  const broker = image.broker(nodeId);
  if (broker === undefined || !broker.fenced) return [];
  const records: MetadataRecord[] = [{ type: "unfenceBroker", nodeId }];
  for (const topic of image.topics()) {
    for (const partition of topic.partitions) {
      if (partition.leader !== NO_LEADER || !partition.isr.includes(nodeId)) continue;
      records.push(change(topic.topicId, partition, nodeId, [...partition.isr]));
    }
  }
  return records;
}

function change(
  topicId: string,
  partition: PartitionImage,
  leader: number,
  isr: number[],
): MetadataRecord {
  return {
    type: "partition",
    topicId,
    partition: partition.partition,
    replicas: [...partition.replicas],
    leader,
    // A new epoch with every leadership change, so fenced leaders' requests are refused.
    leaderEpoch: leader === partition.leader ? partition.leaderEpoch : partition.leaderEpoch + 1,
    isr,
    // Every record written here changes the leader or the ISR, so a leader's AlterPartition
    // based on the state before it is refused as stale.
    partitionEpoch: partition.partitionEpoch + 1,
  };
}

function sameMembers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}
