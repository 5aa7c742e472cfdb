/**
 * Raft's rules one by one, each test naming the section of the paper ("In Search of an
 * Understandable Consensus Algorithm", extended version) or of Ongaro's dissertation it
 * checks, after etcd-io/raft's raft_paper_test.go. The cluster is driven by hand
 * (test-support.ts): every message waits until a test delivers it.
 */
import { expect, test } from "bun:test";
import { AssertionError } from "../../util/assert.ts";
import { SeededRandom } from "../../util/random.ts";
import { encodeMembership, membershipOfVoters } from "./membership.ts";
import { Raft } from "./raft.ts";
import { TestCluster } from "./test-support.ts";
import type { Entry, Message, StoredState } from "./types.ts";

const data = (text: string) => new TextEncoder().encode(text);

function configEntry(index: number, term: number, voters: number[]): Entry {
  return { index, term, kind: "config", data: encodeMembership(membershipOfVoters(voters)) };
}

function dataEntry(index: number, term: number): Entry {
  return { index, term, kind: "data", data: data(`d${index}`) };
}

function stored(term: number, entries: Entry[]): StoredState {
  return { hardState: { term, vote: null, commit: 0 }, snapshot: null, entries };
}

function raftWith(id: number, state: StoredState): Raft {
  return new Raft({
    id,
    random: new SeededRandom(id),
    electionTicks: 10,
    heartbeatTicks: 1,
    stored: state,
  });
}

/** Drains a lone Raft's Readies; answers the messages. */
function drain(raft: Raft): Message[] {
  const out: Message[] = [];
  while (raft.hasReady()) {
    out.push(...raft.ready().messages);
    raft.advance();
  }
  return out;
}

/** Three voters, node 1 elected leader with everything delivered. */
function electedCluster(ids = [1, 2, 3]): TestCluster {
  const cluster = new TestCluster(ids);
  for (const id of ids) cluster.on(id, (raft) => raft.bootstrap(ids));
  cluster.tickUntil(1, (raft) => raft.role === "preCandidate");
  cluster.deliverAll();
  expect(cluster.raft(1).role).toBe("leader");
  return cluster;
}

test("raft: bootstrap: a single-voter cluster elects its only node and commits a no-op", () => {
  const cluster = new TestCluster([1]);
  cluster.on(1, (raft) => raft.bootstrap([1]));
  expect(cluster.raft(1).role).toBe("follower");
  cluster.tickUntil(1, (raft) => raft.role === "leader", 30);
  const status = cluster.raft(1).status();
  expect(status.term).toBe(2);
  expect(status.commit).toBe(2);
  expect(cluster.node(1).applied.map((entry) => entry.kind)).toEqual(["config", "noop"]);
  expect(cluster.raft(1).propose(data("x"))).toEqual({ ok: true, index: 3, term: 2 });
  cluster.settle(1);
  expect(cluster.raft(1).status().commit).toBe(3);
});

test("raft: a sole voter elects itself at once; a voter among others does not", () => {
  const alone = new TestCluster([1]);
  alone.on(1, (raft) => raft.bootstrap([1]));
  alone.on(1, (raft) => expect(raft.campaignIfSoleVoter()).toBe(true));
  alone.settle(1);
  expect(alone.raft(1).role).toBe("leader");
  expect(alone.raft(1).status().commit).toBe(2);
  alone.on(1, (raft) => expect(raft.campaignIfSoleVoter()).toBe(false));
  const three = new TestCluster([1, 2, 3]);
  for (const id of [1, 2, 3]) three.on(id, (raft) => raft.bootstrap([1, 2, 3]));
  three.on(1, (raft) => expect(raft.campaignIfSoleVoter()).toBe(false));
  expect(three.raft(1).role).toBe("follower");
});

test("raft: paper 5.2 + dissertation 9.6: a follower times out, pre-votes without moving terms, then campaigns", () => {
  const cluster = new TestCluster([1, 2, 3]);
  for (const id of [1, 2, 3]) cluster.on(id, (raft) => raft.bootstrap([1, 2, 3]));
  // The election timeout is random in [10, 20) ticks.
  for (let tick = 1; tick < 10; tick++) {
    cluster.tick(1);
    expect(cluster.raft(1).role).toBe("follower");
  }
  cluster.tickUntil(1, (raft) => raft.role === "preCandidate", 10);
  const preVotes = cluster.take();
  expect(preVotes.map((m) => [m.type, m.to, m.term])).toEqual([
    ["preVote", 2, 2],
    ["preVote", 3, 2],
  ]);
  expect(cluster.raft(1).term).toBe(1);
  for (const message of preVotes) cluster.deliver(message);
  // Pre-votes changed nobody's term or vote.
  expect(cluster.raft(2).status()).toMatchObject({ term: 1, vote: null });
  cluster.deliver(cluster.take((m) => m.type === "preVoteResponse")[0]!);
  // One granted pre-vote plus its own is a majority of three: a real campaign in term 2.
  expect(cluster.raft(1).status()).toMatchObject({ role: "candidate", term: 2, vote: 1 });
  cluster.deliverAll();
  expect(cluster.raft(1).role).toBe("leader");
  expect(cluster.raft(2).status()).toMatchObject({ term: 2, vote: 1, leader: 1 });
  expect(cluster.raft(3).status()).toMatchObject({ term: 2, vote: 1, leader: 1 });
});

test("raft: paper 5.2: at most one vote per term", () => {
  const raft = raftWith(3, stored(1, [configEntry(1, 1, [1, 2, 3])]));
  raft.step({ type: "vote", from: 1, to: 3, term: 5, lastIndex: 1, lastTerm: 1, transfer: false });
  raft.step({ type: "vote", from: 2, to: 3, term: 5, lastIndex: 1, lastTerm: 1, transfer: false });
  raft.step({ type: "vote", from: 1, to: 3, term: 5, lastIndex: 1, lastTerm: 1, transfer: false });
  const answers = drain(raft).map((m) => (m.type === "voteResponse" ? [m.to, m.granted] : m.type));
  expect(answers).toEqual([
    [1, true],
    [2, false],
    [1, true],
  ]);
  expect(raft.status().vote).toBe(1);
});

test("raft: paper 5.4.1: a voter refuses a candidate whose log is less up to date", () => {
  const entries = [configEntry(1, 1, [1, 2, 3]), dataEntry(2, 2)];
  const raft = raftWith(3, stored(2, entries));
  raft.step({ type: "vote", from: 1, to: 3, term: 3, lastIndex: 5, lastTerm: 1, transfer: false });
  raft.step({ type: "vote", from: 2, to: 3, term: 3, lastIndex: 2, lastTerm: 2, transfer: false });
  const answers = drain(raft).map((m) =>
    m.type === "voteResponse" ? [m.from, m.to, m.granted] : [],
  );
  expect(answers).toEqual([
    [3, 1, false],
    [3, 2, true],
  ]);
});

test("raft: paper 5.1: messages with stale terms are answered or dropped, never thrown on", () => {
  const raft = raftWith(2, stored(5, [configEntry(1, 1, [1, 2, 3])]));
  raft.step({
    type: "append",
    from: 1,
    to: 2,
    term: 3,
    prevIndex: 1,
    prevTerm: 1,
    commit: 1,
    entries: [],
  });
  raft.step({ type: "vote", from: 3, to: 2, term: 4, lastIndex: 9, lastTerm: 4, transfer: false });
  raft.step({ type: "preVote", from: 3, to: 2, term: 4, lastIndex: 9, lastTerm: 4 });
  raft.step({ type: "appendResponse", from: 1, to: 2, term: 1, success: true, index: 7, hint: 0 });
  raft.step({ type: "voteResponse", from: 1, to: 2, term: 2, granted: true });
  raft.step({
    type: "snapshot",
    from: 1,
    to: 2,
    term: 2,
    snapshot: { index: 9, term: 2, membership: { members: [] }, data: new Uint8Array(0) },
  });
  const out = drain(raft);
  // The stale leader learns the term from the answer; the stale pre-candidate too.
  expect(out.map((m) => [m.type, m.to, m.term])).toEqual([
    ["appendResponse", 1, 5],
    ["preVoteResponse", 3, 5],
    ["appendResponse", 1, 5],
  ]);
  expect(raft.status()).toMatchObject({ term: 5, role: "follower", lastIndex: 1 });
});

test("raft: paper 5.1: a leader that hears of a higher term steps down", () => {
  const cluster = electedCluster();
  const term = cluster.raft(1).term;
  cluster.on(1, (raft) =>
    raft.step({
      type: "appendResponse",
      from: 2,
      to: 1,
      term: term + 3,
      success: false,
      index: 0,
      hint: 0,
    }),
  );
  expect(cluster.raft(1).status()).toMatchObject({
    role: "follower",
    term: term + 3,
    leader: null,
  });
});

test("raft: paper 5.3: conflicting entries are replaced; duplicates and reordered appends cut nothing", () => {
  const entries = [configEntry(1, 1, [1, 2]), dataEntry(2, 1), dataEntry(3, 1)];
  const raft = raftWith(2, stored(1, entries));
  const leaderEntries = [dataEntry(2, 2), dataEntry(3, 2)];
  raft.step({
    type: "append",
    from: 1,
    to: 2,
    term: 2,
    prevIndex: 1,
    prevTerm: 1,
    commit: 1,
    entries: leaderEntries,
  });
  const ready = raft.ready();
  expect(ready.truncateFrom).toBe(2);
  expect(ready.entries.map((e) => `${e.index}/${e.term}`)).toEqual(["2/2", "3/2"]);
  expect(ready.messages).toEqual([
    {
      type: "appendResponse",
      from: 2,
      to: 1,
      term: 2,
      success: true,
      index: 3,
      hint: 0,
    },
  ]);
  raft.advance();
  // An older message that holds only a prefix: nothing is cut, the answer is its last index.
  raft.step({
    type: "append",
    from: 1,
    to: 2,
    term: 2,
    prevIndex: 1,
    prevTerm: 1,
    commit: 1,
    entries: [dataEntry(2, 2)],
  });
  const again = raft.ready();
  expect(again.truncateFrom).toBeNull();
  expect(again.entries).toEqual([]);
  expect(again.messages[0]).toMatchObject({ success: true, index: 2 });
  raft.advance();
  expect(raft.status().lastIndex).toBe(3);
});

test("raft: paper 5.3: a follower missing the previous entry rejects with a hint that skips its conflicting term", () => {
  const entries = [
    configEntry(1, 1, [1, 2]),
    dataEntry(2, 1),
    dataEntry(3, 3),
    dataEntry(4, 3),
    dataEntry(5, 3),
  ];
  const raft = raftWith(2, stored(3, entries));
  // The leader's entry 5 is of term 2: everything of term 3 here is not in its log.
  raft.step({
    type: "append",
    from: 1,
    to: 2,
    term: 4,
    prevIndex: 5,
    prevTerm: 2,
    commit: 1,
    entries: [],
  });
  raft.step({
    type: "append",
    from: 1,
    to: 2,
    term: 4,
    prevIndex: 9,
    prevTerm: 4,
    commit: 1,
    entries: [],
  });
  const answers = drain(raft);
  expect(answers[0]).toMatchObject({ success: false, index: 5, hint: 2 });
  // Past its end: entry 5 (term 3 <= 4) may match, so probing resumes there.
  expect(answers[1]).toMatchObject({ success: false, index: 9, hint: 5 });
});

test("raft: paper 5.3: a follower commits no further than what the leader's message proves", () => {
  // Entries 3 and 4 here are stale; a heartbeat proving only 2 must not commit them.
  const entries = [configEntry(1, 1, [1, 2]), dataEntry(2, 1), dataEntry(3, 1), dataEntry(4, 1)];
  const raft = raftWith(2, stored(1, entries));
  raft.step({
    type: "append",
    from: 1,
    to: 2,
    term: 2,
    prevIndex: 2,
    prevTerm: 1,
    commit: 4,
    entries: [],
  });
  expect(raft.status().commit).toBe(2);
  const ready = raft.ready();
  expect(ready.committedEntries.map((entry) => entry.index)).toEqual([1, 2]);
  raft.advance();
});

test("raft: paper 5.4.2 (figure 8): a leader never commits an entry of an earlier term by counting replicas", () => {
  const cluster = new TestCluster([1, 2, 3]);
  // Node 1 holds an entry of term 2 that nobody else has.
  cluster.node(1).storage.saveHardState({ term: 2, vote: null });
  cluster.node(1).storage.append([configEntry(1, 1, [1, 2, 3]), dataEntry(2, 2)]);
  for (const id of [2, 3]) {
    cluster.node(id).storage.saveHardState({ term: 2, vote: null });
    cluster.node(id).storage.append([configEntry(1, 1, [1, 2, 3])]);
  }
  for (const id of [1, 2, 3]) {
    cluster.node(id).storage.sync();
    cluster.restart(id);
  }
  cluster.tickUntil(1, (raft) => raft.role === "preCandidate");
  while (cluster.raft(1).role !== "leader") {
    const votes = cluster.take((m) => m.type !== "append");
    expect(votes.length).toBeGreaterThan(0);
    for (const message of votes) cluster.deliver(message);
  }
  const term = cluster.raft(1).term;
  expect(term).toBe(3);
  cluster.take();
  // Node 2 acknowledges entry 2 (of term 2), but not the term-3 no-op at 3.
  cluster.on(1, (raft) =>
    raft.step({ type: "appendResponse", from: 2, to: 1, term, success: true, index: 2, hint: 0 }),
  );
  expect(cluster.raft(1).status().commit).toBe(0);
  cluster.on(1, (raft) =>
    raft.step({ type: "appendResponse", from: 2, to: 1, term, success: true, index: 3, hint: 0 }),
  );
  expect(cluster.raft(1).status().commit).toBe(3);
});

test("raft: dissertation 9.6: an isolated node's pre-votes fail and its term stays, so it does not disrupt on return", () => {
  const cluster = electedCluster();
  cluster.deliverAll();
  const term = cluster.raft(1).term;
  cluster.isolate(3);
  for (let i = 0; i < 100; i++) {
    cluster.tick(3);
    cluster.tick(1);
    cluster.tick(2);
    cluster.deliverAll();
  }
  expect(cluster.raft(3).term).toBe(term);
  expect(cluster.raft(3).role).toBe("preCandidate");
  cluster.heal();
  cluster.tick(1);
  cluster.deliverAll();
  expect(cluster.raft(1).status()).toMatchObject({ role: "leader", term });
  expect(cluster.raft(3).status()).toMatchObject({ role: "follower", term, leader: 1 });
});

test("raft: dissertation 6.2: a leader that hears from no quorum for an election timeout steps down", () => {
  const cluster = electedCluster();
  cluster.deliverAll();
  cluster.isolate(1);
  for (let i = 0; i < 9; i++) {
    cluster.tick(1);
    cluster.deliverAll();
  }
  expect(cluster.raft(1).role).toBe("leader");
  // The first round after the election still counts it active; the second does not.
  for (let i = 0; i < 11 && cluster.raft(1).role === "leader"; i++) {
    cluster.tick(1);
    cluster.deliverAll();
  }
  expect(cluster.raft(1).status()).toMatchObject({ role: "follower", leader: null });
});

test("raft: dissertation 4.2.3: a follower that hears from its leader ignores vote requests, except a transfer's", () => {
  const cluster = electedCluster();
  cluster.deliverAll();
  const term = cluster.raft(2).term;
  const voteFrom3 = (transfer: boolean) =>
    cluster.on(2, (raft) =>
      raft.step({
        type: "vote",
        from: 3,
        to: 2,
        term: term + 1,
        lastIndex: 99,
        lastTerm: term,
        transfer,
      }),
    );
  voteFrom3(false);
  expect(cluster.take((m) => m.from === 2)).toEqual([]);
  expect(cluster.raft(2).term).toBe(term);
  voteFrom3(true);
  expect(cluster.take((m) => m.from === 2)).toMatchObject([
    {
      type: "voteResponse",
      granted: true,
      term: term + 1,
    },
  ]);
});

test("raft: dissertation 4.1: a configuration takes effect when appended, one change at a time", () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.on(1, (raft) => raft.bootstrap([1]));
  cluster.tickUntil(1, (raft) => raft.role === "leader", 30);
  // Joining: node 2 learns everything from the leader, starting as an observer.
  expect(cluster.raft(2).role).toBe("observer");
  expect(cluster.on(1, (raft) => raft.addVoter(2))).toMatchObject({ ok: true, index: 3 });
  // In force at once: the leader now needs node 2 to commit anything.
  expect(cluster.raft(1).status().commit).toBe(2);
  expect(cluster.on(1, (raft) => raft.addVoter(3))).toMatchObject({
    ok: false,
    error: { kind: "configChangeInProgress" },
  });
  expect(cluster.on(1, (raft) => raft.propose(data("p")))).toMatchObject({ ok: true, index: 4 });
  expect(cluster.raft(1).status().commit).toBe(2);
  cluster.deliverAll();
  expect(cluster.raft(1).status().commit).toBe(4);
  expect(cluster.raft(2).status()).toMatchObject({ role: "follower", commit: 4, leader: 1 });
  expect(cluster.on(1, (raft) => raft.addObserver(3))).toMatchObject({ ok: true });
  cluster.deliverAll();
  expect(cluster.raft(3).role).toBe("observer");
  expect(cluster.on(1, (raft) => raft.addObserver(3))).toMatchObject({
    ok: false,
    error: { kind: "noChange" },
  });
  expect(cluster.on(1, (raft) => raft.removeNode(9))).toMatchObject({
    ok: false,
    error: { kind: "noChange" },
  });
});

test("raft: raft-dev 2015 (single-server changes): a new leader changes the configuration only after committing in its term", () => {
  const cluster = new TestCluster([1, 2, 3]);
  for (const id of [1, 2, 3]) cluster.on(id, (raft) => raft.bootstrap([1, 2, 3]));
  cluster.tickUntil(1, (raft) => raft.role === "preCandidate");
  // Votes only: the leader's no-op is appended but not yet committed.
  while (cluster.raft(1).role !== "leader") {
    for (const message of cluster.take((m) => m.type !== "append")) cluster.deliver(message);
  }
  expect(cluster.raft(1).addObserver(4)).toMatchObject({
    ok: false,
    error: { kind: "configChangeInProgress" },
  });
  cluster.deliverAll();
  expect(cluster.on(1, (raft) => raft.addObserver(4))).toMatchObject({ ok: true });
});

test("raft: dissertation 4.2.2: a leader that removed itself leads until the change commits, then hands over", () => {
  const cluster = electedCluster();
  cluster.deliverAll();
  expect(cluster.on(1, (raft) => raft.removeNode(1))).toMatchObject({ ok: true });
  expect(cluster.raft(1).role).toBe("leader");
  cluster.deliverAll();
  expect(cluster.raft(1).role).toBe("observer");
  const leaders = [2, 3].filter((id) => cluster.raft(id).role === "leader");
  expect(leaders).toHaveLength(1);
  expect(cluster.raft(leaders[0]!).membership.members.map((m) => m.id)).toEqual([2, 3]);
});

test("raft: observers replicate and apply, but never campaign", () => {
  const cluster = new TestCluster([1, 2, 3, 4, 5]);
  for (const id of [1, 2, 3, 4]) cluster.on(id, (raft) => raft.bootstrap([1, 2, 3, 4]));
  cluster.tickUntil(1, (raft) => raft.role === "preCandidate");
  cluster.deliverAll();
  cluster.on(1, (raft) => raft.addObserver(5));
  cluster.on(1, (raft) => raft.propose(data("seen by all")));
  cluster.deliverAll();
  cluster.tick(1);
  cluster.deliverAll();
  expect(cluster.raft(4).role).toBe("follower");
  cluster.crash(1);
  for (let i = 0; i < 200; i++) cluster.tick(4);
  expect(cluster.raft(4).role).not.toBe("observer");
  // Node 5 was never a member until added; as an observer it never campaigns.
  expect(cluster.raft(5).role).toBe("observer");
  for (let i = 0; i < 200; i++) cluster.tick(5);
  expect(cluster.raft(5).role).toBe("observer");
  expect(cluster.take((m) => m.from === 5 && (m.type === "preVote" || m.type === "vote"))).toEqual(
    [],
  );
  expect(cluster.node(5).applied.some((entry) => entry.kind === "data")).toBe(true);
});

test("raft: paper 7: a follower behind the leader's snapshot gets it whole and restores from it", () => {
  const cluster = electedCluster();
  cluster.deliverAll();
  cluster.isolate(3);
  for (let i = 0; i < 10; i++) cluster.on(1, (raft) => raft.propose(data(`v${i}`)));
  cluster.deliverAll();
  const applied = cluster.raft(1).status().applied;
  expect(cluster.on(1, (raft) => raft.compact(applied, data("state")))).toMatchObject({ ok: true });
  expect(cluster.raft(1).status().snapshotIndex).toBe(applied);
  expect(cluster.raft(1).compact(applied, data("again"))).toMatchObject({
    ok: false,
    kind: "stale",
  });
  cluster.heal();
  cluster.tick(1);
  const snapshots = cluster.mailbox.filter((m) => m.type === "snapshot");
  expect(snapshots.map((m) => m.to)).toEqual([3]);
  cluster.deliverAll();
  expect(cluster.raft(3).status()).toMatchObject({ snapshotIndex: applied, commit: applied });
  expect(cluster.raft(3).snapshot().data).toEqual(data("state"));
  // Replication goes on after it.
  cluster.on(1, (raft) => raft.propose(data("after")));
  cluster.deliverAll();
  cluster.tick(1);
  cluster.deliverAll();
  expect(cluster.raft(3).status().commit).toBe(applied + 1);
  expect(cluster.node(3).applied.map((entry) => entry.index)).toEqual([applied + 1]);
});

/** electedCluster with one proposal committed everywhere. */
function electedWithOneEntryCommitted(): TestCluster {
  const cluster = electedCluster();
  cluster.on(1, (raft) => raft.propose(data("kept")));
  cluster.deliverAll();
  cluster.tick(1);
  cluster.deliverAll();
  return cluster;
}

test("raft: a restarted node keeps term, vote and log, and relearns the commit index", () => {
  const cluster = electedWithOneEntryCommitted();
  const before = cluster.raft(2).status();
  cluster.crash(2);
  cluster.restart(2);
  const after = cluster.raft(2).status();
  expect(after).toMatchObject({
    term: before.term,
    vote: before.vote,
    lastIndex: before.lastIndex,
    commit: 0,
  });
  cluster.tick(1);
  cluster.deliverAll();
  expect(cluster.raft(2).status().commit).toBe(before.commit);
  expect(cluster.node(2).applied.map((entry) => entry.index)).toEqual([1, 2, 3]);
});

test("raft: a leader whose port refuses connections is replaced within a few ticks, the lowest id first, without a split vote", () => {
  const cluster = electedCluster([1, 2, 3, 4, 5]);
  cluster.deliverAll();
  const term = cluster.raft(1).term;
  cluster.crash(1);
  for (const id of [2, 3, 4, 5]) cluster.on(id, (raft) => raft.leaderUnreachable(1));
  // Another node's refusal, or a refusal reported to a node that follows someone else, changes nothing.
  cluster.on(3, (raft) => raft.leaderUnreachable(4));
  for (
    let tick = 0;
    tick < 3 && ![2, 3, 4, 5].some((id) => cluster.raft(id).role === "leader");
    tick++
  ) {
    for (const id of [2, 3, 4, 5]) cluster.tick(id);
    cluster.deliverAll();
  }
  expect(cluster.raft(2).status()).toMatchObject({ role: "leader", term: term + 1 });
  for (const id of [3, 4, 5])
    expect(cluster.raft(id).status()).toMatchObject({
      role: "follower",
      leader: 2,
      term: term + 1,
    });
});

test("raft: a refusal from a leader that is in fact alive does not depose it (pre-vote)", () => {
  const cluster = electedCluster();
  cluster.deliverAll();
  const term = cluster.raft(1).term;
  // Only node 3 saw a refusal (its connection broke); node 2 still hears the leader.
  cluster.on(3, (raft) => raft.leaderUnreachable(1));
  for (let tick = 0; tick < 5; tick++) {
    for (const id of [1, 2, 3]) cluster.tick(id);
    cluster.deliverAll();
  }
  expect(cluster.raft(1).status()).toMatchObject({ role: "leader", term });
  expect(cluster.raft(3).status()).toMatchObject({ role: "follower", leader: 1, term });
});

test("raft: a follower that comes back with an empty log is sent the whole log again", () => {
  const cluster = electedWithOneEntryCommitted();
  const leader = cluster.raft(1).status();
  cluster.restartEmpty(2);
  expect(cluster.raft(2).status().lastIndex).toBe(0);
  for (let i = 0; i < 3; i++) {
    cluster.tick(1);
    cluster.deliverAll();
  }
  expect(cluster.raft(2).status()).toMatchObject({
    lastIndex: leader.lastIndex,
    commit: leader.commit,
  });
  expect(cluster.node(2).applied.map((entry) => entry.index)).toEqual(
    cluster.node(1).applied.map((entry) => entry.index),
  );
});

test("raft: a restarted node learns how far its leader has committed only from the leader (leaderCommit)", () => {
  const cluster = electedWithOneEntryCommitted();
  const leader = cluster.raft(1).status();
  expect(leader.leaderCommit).toBe(leader.commit);
  expect(cluster.raft(2).status().leaderCommit).toBe(leader.commit);
  cluster.crash(2);
  cluster.restart(2);
  // Its log holds everything, but nothing says yet how much of it is committed.
  expect(cluster.raft(2).status()).toMatchObject({
    leaderCommit: null,
    applied: 0,
    lastIndex: leader.lastIndex,
  });
  cluster.tick(1);
  cluster.deliverAll();
  expect(cluster.raft(2).status()).toMatchObject({
    leaderCommit: leader.commit,
    applied: leader.commit,
  });
});

test("raft: dissertation 3.10: leadership transfer refuses proposals, then the target leads", () => {
  const cluster = electedCluster();
  cluster.deliverAll();
  const term = cluster.raft(1).term;
  expect(cluster.on(1, (raft) => raft.transferLeadership(2))).toBe(true);
  expect(cluster.raft(1).propose(data("no"))).toMatchObject({
    ok: false,
    error: { kind: "transferring" },
  });
  cluster.deliverAll();
  expect(cluster.raft(2).status()).toMatchObject({ role: "leader", term: term + 1 });
  expect(cluster.raft(1).status()).toMatchObject({ role: "follower", leader: 2 });
  expect(cluster.raft(1).propose(data("no"))).toEqual({
    ok: false,
    error: { kind: "notLeader", leader: 2 },
  });
});

test("raft: bad input: malformed or misaddressed messages are dropped", () => {
  const raft = raftWith(2, stored(1, [configEntry(1, 1, [1, 2])]));
  raft.step({
    type: "append",
    from: 1,
    to: 2,
    term: 2,
    prevIndex: 1,
    prevTerm: 1,
    commit: 1,
    entries: [dataEntry(5, 2)],
  });
  raft.step({
    type: "append",
    from: 1,
    to: 2,
    term: 2,
    prevIndex: 1,
    prevTerm: 1,
    commit: 1,
    entries: [dataEntry(2, 3)],
  });
  raft.step({
    type: "append",
    from: 1,
    to: 3,
    term: 2,
    prevIndex: 1,
    prevTerm: 1,
    commit: 1,
    entries: [],
  });
  raft.step({ type: "vote", from: -1, to: 2, term: 9, lastIndex: 0, lastTerm: 0, transfer: false });
  raft.step({ type: "bogus", from: 1, to: 2, term: 2 } as unknown as Message);
  expect(drain(raft)).toEqual([]);
  expect(raft.status()).toMatchObject({ term: 1, lastIndex: 1 });
});

test("raft: driver discipline: no input between ready() and advance()", () => {
  const raft = raftWith(1, stored(0, []));
  raft.bootstrap([1]);
  raft.ready();
  expect(() => raft.tick()).toThrow(AssertionError);
  raft.advance();
  expect(() => raft.advance()).toThrow(AssertionError);
});

test("raft: limits: oversized entries and too many uncommitted ones are refused", () => {
  const cluster = electedCluster();
  cluster.deliverAll();
  expect(cluster.raft(1).propose(new Uint8Array(1024 * 1024 + 1))).toMatchObject({
    ok: false,
    error: { kind: "tooLarge" },
  });
  cluster.isolate(1);
  let refused = null;
  for (let i = 0; i < 5000 && refused === null; i++) {
    const result = cluster.on(1, (raft) => raft.propose(data("x")));
    if (!result.ok) refused = result.error.kind;
  }
  expect(refused).toBe("busy");
});
