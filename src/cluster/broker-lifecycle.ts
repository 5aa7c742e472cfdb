/**
 * What the controller writes when a broker dies or comes back (docs/cluster.md, "The
 * controller"). A fenced broker leads nothing: each partition it led gets a new leader
 * from the rest of its ISR that is live, or from its live eligible leader replicas
 * (eligible-leaders.ts), with the leader epoch bumped, or no leader (-1) when none is
 * left, as Kafka does without unclean leader election. The dead broker leaves the ISR
 * unless it is the last member: the last ISR member stays, so that when it returns it is
 * known to hold everything acknowledged and may lead again. Unfencing gives a leaderless
 * partition back to a returning broker that is in its ISR or ELR.
 *
 * A broker that restarted after a machine crash (`lossy`) is fenced harder: it may have
 * lost writes it never synced, so it leaves the ELR too, and the ISR even as its last
 * member when an ELR member can take over.
 */
import { effectiveMinIsr, nextElr } from "./eligible-leaders.ts";
import type {
  MetadataImage,
  MetadataRecord,
  PartitionImage,
  TopicImage,
} from "./metadata-image.ts";

export const NO_LEADER = -1;

export function planBrokerFenced(
  image: MetadataImage,
  nodeId: number,
  options: { lossy?: boolean } = {},
): MetadataRecord[] {
  const broker = image.broker(nodeId);
  const lossy = options.lossy === true;
  if (broker === undefined || (broker.fenced && !lossy)) return [];
  const live = new Set(image.liveBrokers().map((b) => b.nodeId));
  live.delete(nodeId);
  const records: MetadataRecord[] = broker.fenced ? [] : [{ type: "fenceBroker", nodeId }];
  for (const topic of image.topics()) {
    for (const partition of topic.partitions) {
      const inIsr = partition.isr.includes(nodeId);
      const inElr = partition.elr.includes(nodeId);
      if (!inIsr && !(lossy && inElr) && partition.leader !== nodeId) continue;
      // A replica that may have lost writes is no longer eligible to lead, unless it is
      // the last one that is: then it stays, as Kafka's last known leader.
      const dropLossy =
        lossy &&
        (partition.isr.some((id) => id !== nodeId) || partition.elr.some((id) => id !== nodeId));
      // The last ISR member stays (see above).
      const isr =
        partition.isr.length > 1 || dropLossy
          ? partition.isr.filter((id) => id !== nodeId)
          : [...partition.isr];
      const change = elect(topic, partition, isr, live, dropLossy ? [nodeId] : []);
      if (change !== null) records.push(change);
    }
  }
  return records;
}

export function planBrokerUnfenced(image: MetadataImage, nodeId: number): MetadataRecord[] {
  const broker = image.broker(nodeId);
  if (broker === undefined || !broker.fenced) return [];
  const live = new Set(image.liveBrokers().map((b) => b.nodeId));
  live.add(nodeId);
  const records: MetadataRecord[] = [{ type: "unfenceBroker", nodeId }];
  for (const topic of image.topics()) {
    for (const partition of topic.partitions) {
      if (partition.leader !== NO_LEADER) continue;
      if (!partition.isr.includes(nodeId) && !partition.elr.includes(nodeId)) continue;
      const change = elect(topic, partition, [...partition.isr], live);
      if (change !== null) records.push(change);
    }
  }
  return records;
}

/**
 * The record that gives `partition` the ISR `isr` (and the ELR that follows from it), and
 * a leader: the current one if it stays live and in the ISR, else a live ISR member, else
 * a live ELR member, which becomes the ISR alone. Null when nothing changes.
 */
function elect(
  topic: TopicImage,
  partition: PartitionImage,
  isr: number[],
  live: ReadonlySet<number>,
  lossy: readonly number[] = [],
): MetadataRecord | null {
  const minIsr = effectiveMinIsr(topic, partition);
  let elr = nextElr(partition, isr, minIsr, lossy);
  let leader = partition.leader;
  if (leader === NO_LEADER || !live.has(leader) || !isr.includes(leader))
    leader = isr.find((id) => live.has(id)) ?? NO_LEADER;
  if (leader === NO_LEADER) {
    const fromElr = elr.find((id) => live.has(id));
    if (fromElr !== undefined) {
      // The ISR members that stay behind (a dead last member) hold every committed
      // write too, so they join the ELR.
      elr = nextElr({ ...partition, isr, elr }, [fromElr], minIsr, lossy);
      isr = [fromElr];
      leader = fromElr;
    }
  }
  if (
    leader === partition.leader &&
    sameMembers(isr, partition.isr) &&
    sameMembers(elr, partition.elr)
  )
    return null;
  return change(topic.topicId, partition, leader, isr, elr);
}

function change(
  topicId: string,
  partition: PartitionImage,
  leader: number,
  isr: number[],
  elr: number[],
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
    ...(elr.length === 0 ? {} : { elr }),
  };
}

function sameMembers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}
