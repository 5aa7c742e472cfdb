/**
 * @module
 * What a leader knows about one follower's log (etcd-io/raft's tracker.Progress), and
 * the flow control it implies:
 *
 * - probe: the leader does not know where the logs match. One Append is out at a time;
 *   a rejection moves `next` back (to the follower's hint), and the heartbeat resends.
 * - replicate: the logs match up to `match`; Appends are pipelined, at most
 *   INFLIGHT_APPENDS_MAX unacknowledged. A heartbeat resends whatever is unacknowledged
 *   (messages may be lost), a rejection drops back to probe.
 * - snapshot: the entries the follower needs are compacted; one Snapshot message is out.
 *   The heartbeat resends it when no answer came within an election timeout.
 */
import { INFLIGHT_APPENDS_MAX } from "./limits.ts";

export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  /** Highest index known to match the leader's log. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = "probe";
  /** probe: an Append is out and unanswered; wait for its answer or the next heartbeat. */
  probeSent = false;
  /** replicate: last index of each Append in flight, ascending. */
  readonly inflight: number[] = [];
  /** snapshot: the index of the snapshot sent, and leader ticks since it was sent. */
  pendingSnapshot = 0;
  snapshotTicks = 0;
  /** Heard from since the last check-quorum round (dissertation 6.2). */
  recentActive = true;

  constructor(next: number) {
    this.next = next;
  }

  /** The leader should not send more until an answer or the next heartbeat. */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflight.length >= INFLIGHT_APPENDS_MAX;
      case "snapshot":
        return true;
    }
  }

  becomeProbe(): void {
    this.state = "probe";
    this.probeSent = false;
    this.inflight.length = 0;
    this.next = this.match + 1;
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.probeSent = false;
    this.inflight.length = 0;
    this.next = this.match + 1;
  }

  becomeSnapshot(index: number): void {
    this.state = "snapshot";
    this.probeSent = false;
    this.inflight.length = 0;
    this.pendingSnapshot = index;
    this.snapshotTicks = 0;
  }

  /** The follower's log ends at `lastIndex`, below `match`: it lost what it had acknowledged. */
  logLost(lastIndex: number): void {
    this.match = Math.max(0, lastIndex);
    this.next = this.match + 1;
  }

  /** An acknowledgement up to `index`: true when it moved `match`. */
  acknowledge(index: number): boolean {
    while (this.inflight.length > 0 && this.inflight[0]! <= index) this.inflight.shift();
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    return true;
  }
}
