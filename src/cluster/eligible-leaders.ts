/**
 * Who may lead a partition, as Kafka's controller decides with eligible leader replicas
 * (KIP-966, on by default from Kafka 4.1). Three rules work together:
 *
 * 1. Strict minimum ISR: a leader moves its high watermark only while the committed ISR
 *    has at least `effectiveMinIsr` members (src/replication/leader-state.ts).
 * 2. A replica that leaves the ISR while the ISR is (or becomes) smaller than that joins
 *    the ELR: by rule 1 nothing was committed after it left, and as an ISR member it
 *    held everything committed before, so it may lead without losing an acknowledged
 *    write. Once the ISR is back at the minimum, the high watermark moves again and the
 *    ELR is emptied.
 * 3. A replica that restarted after a machine crash may have lost writes it had not
 *    synced (Brook, like Kafka, does not fsync each write by default), so it leaves
 *    every ISR and ELR when it registers (`lossy`): it is not known to hold anything.
 *    The only exception is a partition it alone could lead: then it stays, as the last
 *    known leader Kafka falls back to, because the partition would otherwise stay
 *    offline for good.
 *
 * An election picks a live ISR member first, then a live ELR member (which becomes the
 * ISR, alone); with neither, the partition waits without a leader.
 */
import type { PartitionImage, TopicImage } from "./metadata-image.ts";
import { topicConfigNumber } from "./topic-config.ts";

/** min.insync.replicas, at most the replica count (a larger one could never be met). */
export function effectiveMinIsr(topic: TopicImage, partition: PartitionImage): number {
  const configured = topicConfigNumber(topic.configs, "min.insync.replicas");
  return Math.max(1, Math.min(configured, partition.replicas.length));
}

/**
 * The ELR once the ISR changes from `partition.isr` to `isr`: members that left join it
 * while the new ISR is below the minimum (rule 2), members back in the ISR leave it, and
 * `lossy` replicas (rule 3) never belong.
 */
export function nextElr(
  partition: PartitionImage,
  isr: readonly number[],
  minIsr: number,
  lossy: readonly number[] = [],
): number[] {
  if (isr.length >= minIsr) return [];
  const left = partition.isr.filter((id) => !isr.includes(id));
  const elr: number[] = [];
  for (const id of [...partition.elr, ...left]) {
    if (isr.includes(id) || lossy.includes(id) || elr.includes(id)) continue;
    elr.push(id);
  }
  return elr;
}
