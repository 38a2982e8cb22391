// Group scenarios: each returns the JSON object written to ../tsmls/<name>.json.
import {
  Sim,
  keyPackageJson,
  makeKeyPackage,
  assert,
  makeUpdateProposal,
  moderationExtension,
  requiredCapabilitiesExtension,
  userUri,
  EXT_MODERATION,
  suiteImpl,
} from "./lib.mjs";

const GCE_PATH_BUG =
  "ts-mls 1.6.4 encrypts the UpdatePath to a provisional GroupContext that keeps the OLD extensions (RFC 9420 §12.4.2 says the new ones), so ts-mls members (bob, dave) fail to decrypt it and stay in the old epoch; the public content (signature, membership tag, tree, parent hashes, confirmation tag) is valid and a DS computes the `after` state";
const GCE_NO_PATH =
  "RFC 9420 §12.4: group_context_extensions is a path-required proposal type, but ts-mls 1.6.4 omits the UpdatePath";

function header(sim, description, extra = {}) {
  return { description, cipher_suite: sim.suiteId, group_id: sim.groupId, creator: sim.creator, ...extra };
}

function finish(sim, initial, description, extra = {}) {
  return { ...header(sim, description, extra), initial, steps: sim.steps };
}

/** create-2.json: two members, add, application messages, Update proposal, full commit, remove. */
export async function create2() {
  const sim = new Sim(await suiteImpl(1), 1);
  sim.client("alice", "a.example");
  sim.client("bob", "b.example");
  const initial = await sim.create("alice");
  await sim.app("alice", "note to self before anyone joins");
  await sim.commit("alice", { add: ["bob"], description: "alice adds bob (Add only: no UpdatePath); Welcome for bob" });
  await sim.app("bob", "hi alice");
  await sim.app("alice", "hi bob");
  const up = await makeUpdateProposal(sim.states.get("bob"), sim.impl);
  await sim.propose("bob", up.proposal, { hpkePrivateKey: up.hpkePrivateKey, description: "bob proposes an Update of his leaf" });
  await sim.commit("alice", { description: "alice commits bob's Update proposal by reference (UpdatePath required)" });
  await sim.app("bob", "my leaf is fresh");
  await sim.commit("bob", { description: "bob commits with no proposals (full commit with UpdatePath)" });
  await sim.app("alice", "thanks bob");
  await sim.app("bob", "bye");
  await sim.commit("alice", { remove: ["bob"], description: "alice removes bob" });
  await sim.app("alice", "alone again");
  return finish(sim, initial, "Suite 1: alice creates a group, adds bob, both talk, bob's Update proposal is committed by alice, bob commits with a path, alice removes bob.");
}

// Several grow-100 users, spread over the two providers.
function growUsers(sim, from, count) {
  const names = [];
  for (let i = from; i < from + count; i++) {
    const name = `user${String(i).padStart(3, "0")}`;
    sim.client(name, i % 2 === 0 ? "a.example" : "b.example");
    names.push(name);
  }
  return names;
}

/** grow-100.json: 3 members grow to 100, then shrink to about 50 with blank leaves and a refill. */
export async function grow100() {
  const sim = new Sim(await suiteImpl(1), 1, { fullEvery: 1000 });
  sim.client("alice", "a.example");
  sim.client("bob", "b.example");
  sim.client("carol", "a.example");
  const initial = await sim.create("alice");
  await sim.commit("alice", { add: ["bob", "carol"], full: true, description: "alice adds bob and carol (group of 3)" });
  await sim.app("bob", "epoch 1 hello");
  let next = 4;
  const take = (n) => {
    const names = growUsers(sim, next, n);
    next += n;
    return names;
  };
  const adds = [
    ["bob", 1, "single add"],
    ["alice", 15, "batch of 15 adds"],
    ["user004", 0, "empty commit with path by a member who joined by Welcome"],
    ["carol", 20, "batch of 20 adds"],
    ["bob", 1, "single add"],
    ["user010", 18, "batch of 18 adds together with a remove (so it has a path)"],
    ["alice", 12, "batch of 12 adds"],
    ["carol", 1, "single add"],
    ["bob", 10, "batch of 10 adds"],
  ];
  let removedWithAdds = false;
  for (const [committer, n, what] of adds) {
    const names = take(n);
    const opts = { add: names, description: `${committer}: ${what}` };
    // Track a few joiners so that they can commit later.
    opts.join = names.filter((x) => ["user004", "user010", "user030", "user061"].includes(x));
    if (n === 18 && !removedWithAdds) {
      opts.remove = ["user006"];
      removedWithAdds = true;
    }
    await sim.commit(committer, opts);
    await sim.app(committer, `${sim.current.members.length} members now`);
  }
  // Fill up to exactly 100 members.
  const missing = 100 - sim.current.members.length;
  assert(missing > 0 && missing <= 20, `fill batch ${missing}`);
  await sim.commit("user030", { add: take(missing), full: true, description: `user030: batch of ${missing} adds to reach 100 members` });
  assert(sim.current.members.length === 100, "100 members");
  await sim.app("user061", "one hundred");
  await sim.commit("user061", { full: true, description: "user061: empty commit with path in the 100-member group" });
  await sim.app("alice", "shrinking now");
  const members = () => sim.current.members.map((m) => m.identity.split("/").pop());
  const keep = new Set(["alice", "bob", "carol", "user004", "user010", "user030", "user061"]);
  const pick = (pred, n) => members().filter((x) => !keep.has(x) && pred(x)).slice(0, n);
  // Tail batch: every leaf from 60 up, so the rightmost non-blank leaf drops below 64
  // and the tree truncates from 128 to 64 leaves.
  const tail = sim.current.members.filter((m) => m.leaf_index >= 60).map((m) => m.identity.split("/").pop());
  assert(tail.every((x) => !keep.has(x)), "tracked members sit below leaf 60");
  await sim.commit("alice", { remove: tail, full: true, description: `alice removes the ${tail.length} members at leaves 60-99 (the tree truncates to 64 leaves)` });
  await sim.app("bob", "tail gone");
  const midMember = sim.current.members.filter((m) => !keep.has(m.identity.split("/").pop()))[20];
  const mid = midMember.identity.split("/").pop();
  await sim.commit("bob", { remove: [mid], description: `bob removes ${mid} at leaf ${midMember.leaf_index}, a member in the middle (blank leaf)` });
  await sim.app("carol", "middle gone");
  const scattered = pick((x) => Number(x.slice(4)) % 7 === 0, 6);
  await sim.commit("user010", { remove: scattered, full: true, description: "user010 removes 6 scattered members (more blank leaves)" });
  await sim.app("user010", "scattered removes");
  const one = pick(() => true, 1);
  await sim.commit("carol", { remove: one, description: `carol removes ${one[0]} (single remove)` });
  await sim.app("alice", "single remove done");
  const filler = take(1);
  const leavesBefore = sim.current.members.map((m) => m.leaf_index);
  const st = await sim.commit("bob", { add: filler, full: true, description: `bob adds ${filler[0]}, who fills the leftmost blank leaf` });
  const filled = st.added[0].leaf_index;
  assert(!leavesBefore.includes(filled) && filled < Math.max(...leavesBefore), "add fills a blank");
  await sim.app("carol", "welcome to a blank leaf");
  const last = pick(() => true, sim.current.members.length - 50);
  await sim.commit("user004", { remove: last, full: true, description: `user004 removes ${last.length} to reach 50 members` });
  await sim.app("user004", "fifty");
  assert(sim.current.members.length === 50, "50 members at the end");
  return finish(
    sim,
    initial,
    "Suite 1: a group of 3 grows to 100 (single adds and batches; add-only commits carry no UpdatePath, commits with removes or no proposals do) and shrinks to 50 (tail truncation, blank leaves in the middle, a later add that fills a blank). group_info_with_tree and ratchet_tree are present only in EpochStates marked with them.",
  );
}

/** external-join.json: group of 3, external joins (with and without the tree in the GroupInfo, and a resync), then member commits. */
export async function externalJoin() {
  const sim = new Sim(await suiteImpl(1), 1);
  for (const [n, p] of [["alice", "a.example"], ["bob", "b.example"], ["carol", "a.example"], ["dave", "b.example"], ["erin", "a.example"]]) sim.client(n, p);
  const initial = await sim.create("alice");
  await sim.commit("alice", { add: ["bob", "carol"], description: "alice adds bob and carol" });
  await sim.app("carol", "three of us");
  await sim.externalJoin("dave", { withTree: true, description: "dave joins by external commit, using the epoch-1 GroupInfo with external_pub and ratchet_tree" });
  await sim.app("dave", "hello, I joined from the GroupInfo");
  await sim.externalJoin("erin", { withTree: false, description: "erin joins by external commit, using the epoch-2 GroupInfo without ratchet_tree plus the separate ratchet_tree" });
  await sim.app("erin", "me too");
  await sim.externalJoin("bob", { withTree: true, resync: true, description: "bob rejoins by external commit with resync: the commit also removes his old leaf (same signature key)" });
  await sim.app("bob", "resynced");
  await sim.commit("carol", { description: "carol, a regular member, commits with an UpdatePath after the external joins" });
  await sim.app("alice", "after carol's commit");
  await sim.commit("alice", { remove: ["dave"], description: "alice removes dave" });
  await sim.app("erin", "dave left");
  return finish(sim, initial, "Suite 1: a group of 3 publishes GroupInfo with external_pub; dave joins externally with the tree in the GroupInfo, erin with the tree given separately, bob resyncs (external commit with a Remove of his old leaf); then regular member commits.");
}

/** gce.json: GroupContextExtensions by value, by reference, and with a Remove (path). */
export async function gce() {
  const sim = new Sim(await suiteImpl(1), 1);
  for (const [n, p] of [["alice", "a.example"], ["bob", "b.example"], ["carol", "a.example"], ["dave", "b.example"]]) sim.client(n, p);
  const initial = await sim.create("alice");
  await sim.commit("alice", { add: ["bob", "carol"], description: "alice adds bob and carol (all list 0xF0A0 in capabilities)" });
  await sim.app("bob", "before moderation");
  const v1 = [requiredCapabilitiesExtension([EXT_MODERATION]), moderationExtension({ banned: [userUri("b.example", "mallory")], muted: [] })];
  await sim.commit("alice", {
    extra: [{ proposalType: "group_context_extensions", groupContextExtensions: { extensions: v1 } }],
    description: "alice commits a GroupContextExtensions proposal by value: required_capabilities(0xF0A0) + moderation list banning mallory",
    rfcViolation: GCE_NO_PATH,
  });
  await sim.app("carol", "mallory is banned");
  const v2 = [requiredCapabilitiesExtension([EXT_MODERATION]), moderationExtension({ banned: [userUri("b.example", "mallory")], muted: [userUri("a.example", "carol")] })];
  await sim.propose("bob", { proposalType: "group_context_extensions", groupContextExtensions: { extensions: v2 } }, {
    description: "bob proposes GroupContextExtensions muting carol (PublicMessage proposal)",
  });
  await sim.commit("alice", { description: "alice commits bob's GroupContextExtensions proposal by reference", rfcViolation: GCE_NO_PATH });
  await sim.app("carol", "a message from muted carol (the hub refuses it in this epoch)");
  await sim.app("alice", "carol is muted");
  await sim.commit("bob", { add: ["dave"], description: "bob adds dave, whose KeyPackage supports the required 0xF0A0" });
  await sim.app("dave", "hello");
  const v3 = [
    requiredCapabilitiesExtension([EXT_MODERATION]),
    moderationExtension({ banned: [userUri("b.example", "mallory"), userUri("a.example", "carol")], muted: [] }),
  ];
  await sim.commit("alice", {
    remove: ["carol"],
    extra: [{ proposalType: "group_context_extensions", groupContextExtensions: { extensions: v3 } }],
    description: "alice bans and removes carol: Remove + GroupContextExtensions by value (the Remove makes ts-mls add an UpdatePath)",
    membersFail: GCE_PATH_BUG,
  });
  await sim.app("alice", "carol is banned (only alice reached this epoch)");
  return finish(sim, initial, "Suite 1: GroupContextExtensions with a private-range extension 0xF0A0 (provisional ban/mute list, see README) plus required_capabilities: by value, by reference, and with a Remove.", {
    moderation_extension_type: EXT_MODERATION,
  });
}

/** gce-unsupported.json: a GCE adds 0xF0A0 although bob does not list it; ts-mls accepts. */
export async function gceUnsupported() {
  const sim = new Sim(await suiteImpl(1), 1);
  sim.client("alice", "a.example");
  sim.client("bob", "b.example", { moderation: false });
  const initial = await sim.create("alice");
  await sim.commit("alice", { add: ["bob"], description: "alice adds bob, whose capabilities do not list 0xF0A0" });
  await sim.app("bob", "hi");
  await sim.commit("alice", {
    extra: [{ proposalType: "group_context_extensions", groupContextExtensions: { extensions: [moderationExtension({ banned: [userUri("b.example", "mallory")] })] } }],
    description: "alice sets the 0xF0A0 extension although bob does not support it; ts-mls (alice and bob) accepts",
    rfcViolation: `RFC 9420 §13.4: every GroupContext extension must be supported by every member (bob does not list 0xF0A0 in capabilities.extensions); and ${GCE_NO_PATH}`,
  });
  await sim.app("bob", "ts-mls let this through");
  return finish(sim, initial, "Suite 1, negative: ts-mls accepts a GroupContextExtensions commit adding an extension that a member does not support. A strict DS rejects the commit at step with rfc_violation.", {
    moderation_extension_type: EXT_MODERATION,
  });
}

/** fork.json: two commits for the same epoch, each branch followed separately. */
export async function fork() {
  const sim = new Sim(await suiteImpl(1), 1);
  for (const [n, p] of [["alice", "a.example"], ["bob", "b.example"], ["carol", "a.example"], ["dave", "b.example"], ["erin", "a.example"]]) sim.client(n, p);
  const initial = await sim.create("alice");
  await sim.commit("alice", { add: ["bob", "carol"], description: "alice adds bob and carol" });
  await sim.app("carol", "hello");
  await sim.commit("bob", { description: "bob commits with a path" });
  await sim.app("alice", "epoch 2");
  const forkEpoch = sim.current.epoch;
  const a = sim.fork();
  const b = sim.fork();
  const ban = moderationExtension({ banned: [userUri("a.example", "carol")], muted: [userUri("b.example", "bob")] });
  await a.commit("alice", { remove: ["carol"], description: "branch a: alice removes carol" });
  await a.app("alice", "branch a: carol is out");
  await a.commit("alice", {
    extra: [{ proposalType: "group_context_extensions", groupContextExtensions: { extensions: [ban] } }],
    description: "branch a: alice sets the moderation list (carol banned, bob muted)",
    rfcViolation: GCE_NO_PATH,
  });
  await a.app("alice", "branch a: moderation on");
  await a.app("bob", "branch a: bob is muted here (the hub refuses this in branch a)");
  const aSharedSteps = a.steps.length;
  const aAfterBan = a.fork();
  await a.commit("alice", { add: ["dave"], description: "branch a: alice adds dave" });
  await a.app("dave", "branch a: dave here");
  await b.commit("bob", { add: ["erin"], description: "branch b: bob adds erin" });
  await b.app("carol", "branch b: carol is still a member, not banned");
  await b.app("bob", "branch b: bob is not muted");
  await b.app("erin", "branch b: erin here");
  await aAfterBan.commit("alice", { add: ["carol"], description: "branch a-readd: alice re-adds carol, who is banned in branch a (the hub refuses this commit)" });
  await aAfterBan.app("carol", "branch a-readd: carol again");
  return {
    ...header(sim, "Suite 1: a group of 3 forks at one epoch: branch a (alice removes carol, then bans her and mutes bob by GroupContextExtensions, then adds dave) and branch b (bob adds erin; carol stays, nobody is muted); branch a-readd forks branch a after the ban with a commit re-adding the banned carol.", {
      moderation_extension_type: EXT_MODERATION,
    }),
    initial,
    steps: sim.steps,
    branches: [
      { name: "a", parent: "trunk", fork_after_steps: sim.steps.length, fork_epoch: forkEpoch, steps: a.steps },
      { name: "b", parent: "trunk", fork_after_steps: sim.steps.length, fork_epoch: forkEpoch, steps: b.steps },
      { name: "a-readd", parent: "a", fork_after_steps: aSharedSteps, fork_epoch: forkEpoch + 2n, steps: aAfterBan.steps },
    ],
  };
}

/** private-3.json: handshakes as PrivateMessage. */
export async function private3() {
  const sim = new Sim(await suiteImpl(1), 1);
  for (const [n, p] of [["alice", "a.example"], ["bob", "b.example"], ["carol", "a.example"], ["dave", "b.example"]]) sim.client(n, p);
  const initial = await sim.create("alice");
  await sim.commit("alice", { add: ["bob", "carol"], pub: false, description: "alice adds bob and carol (PrivateMessage commit)" });
  await sim.app("bob", "private handshakes from here");
  await sim.commit("bob", { pub: false, description: "bob commits with a path (PrivateMessage)" });
  await sim.app("carol", "epoch 2");
  await sim.commit("carol", { add: ["dave"], pub: false, description: "carol adds dave (PrivateMessage commit, Welcome)" });
  await sim.app("dave", "hi from dave");
  const up = await makeUpdateProposal(sim.states.get("carol"), sim.impl);
  await sim.propose("carol", up.proposal, { pub: false, hpkePrivateKey: up.hpkePrivateKey, description: "carol proposes an Update (PrivateMessage proposal)" });
  await sim.commit("bob", { remove: ["dave"], pub: false, description: "bob removes dave and commits carol's Update by reference (PrivateMessage)" });
  await sim.app("alice", "three again");
  return finish(sim, initial, "Suite 1: a group of 3 whose handshakes are PrivateMessages (the hub sees no content): adds, a path commit, a private Update proposal by reference, a remove.");
}

/** One suite's entry in suites.json. */
export async function suiteGroup(id) {
  const impl = await suiteImpl(id);
  const sim = new Sim(impl, id);
  sim.client("alice", "a.example");
  sim.client("bob", "b.example");
  sim.client("carol", "a.example");
  const kps = [];
  for (const n of ["alice", "bob", "carol"]) {
    const kp = await makeKeyPackage(impl, sim.clients.get(n).identity);
    kps.push(await keyPackageJson(impl, id, kp.publicPackage, sim.meta(n)));
  }
  const initial = await sim.create("alice");
  await sim.app("alice", "suite check");
  await sim.commit("alice", { add: ["bob"], description: "alice adds bob" });
  await sim.app("bob", "hi");
  await sim.commit("bob", { description: "bob commits with a path" });
  await sim.app("alice", "path ok");
  await sim.commit("alice", { remove: ["bob"], add: ["carol"], description: "alice removes bob and adds carol (path)" });
  await sim.app("carol", "hello");
  return {
    cipher_suite: id,
    name: impl.name,
    key_packages: kps,
    group: finish(sim, initial, `Suite ${id}: create, add, path commit, remove + add.`),
  };
}
