// Two TypeScript clients against a real `mimids` built from this repository.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import * as M from "ts-mls";
import { decodeRatchetTree } from "ts-mls/ratchetTree.js";
import { treeHashRoot } from "ts-mls/treeHash.js";
import { fromUtf8, toHex, type Group, MimidsError, ConnectionClosedError, MemoryStorage, StorageMarkStore, MimidsClient, Member, Remote } from "../src/index.js";
import { nodeSocketFactory } from "../src/node.js";
import { buildMimids, poll, Provider, tempDir, User } from "./harness.js";

const tmp = tempDir();
let a: Provider;
let alice: User;
let bob: User;

before(async () => {
  const bin = await buildMimids(tmp.dir);
  a = new Provider(bin, tmp.dir, "a.example");
  await a.configure();
  await a.start();
  alice = new User("alice", a, await a.addClient("alice"));
  bob = new User("bob", a, await a.addClient("bob"));
  await alice.connect();
  await bob.connect();
});

after(async () => {
  alice?.close();
  bob?.close();
  await a?.stop();
  tmp.cleanup();
});

/** The hub's public view of the group, from group_info. */
async function hubView(u: User, g: Group): Promise<{ epoch: bigint; treeHash: string; members: string[] }> {
  const r = await u.client.groupInfo(g.groupId);
  const msg = M.decodeMlsMessage(r.groupInfo, 0)?.[0];
  assert.ok(msg && msg.wireformat === "mls_group_info");
  const gi = msg.groupInfo;
  let tree = r.ratchetTree ? decodeRatchetTree(r.ratchetTree, 0)?.[0] : undefined;
  const ext = gi.extensions.find((e) => e.extensionType === "ratchet_tree" || e.extensionType === 2);
  if (!tree && ext) tree = decodeRatchetTree(ext.extensionData, 0)?.[0];
  assert.ok(tree, "hub serves a tree");
  const members: string[] = [];
  tree.forEach((n, i) => {
    if (i % 2 === 0 && n !== undefined && n.nodeType === "leaf" && n.leaf.credential.credentialType === "basic") members.push(fromUtf8(n.leaf.credential.identity));
  });
  const impl = g.member.impl;
  assert.equal(toHex(await treeHashRoot(tree, impl.hash)), toHex(gi.groupContext.treeHash));
  return { epoch: gi.groupContext.epoch, treeHash: toHex(gi.groupContext.treeHash), members };
}

async function sameView(u: User, ...gs: Group[]): Promise<void> {
  const hub = await hubView(u, gs[0]);
  for (const g of gs) assert.deepEqual(await g.view(), hub);
}

const plaintexts: string[] = [];
function say(g: Group, text: string): Promise<number> {
  plaintexts.push(text);
  return g.send(text);
}

test("KeyPackages: upload with one last resort, stock counted", async () => {
  const refs = await bob.member.publishKeyPackages(3, true);
  assert.equal(refs.length, 4);
  const c = await bob.client.keyPackageCount(1);
  assert.deepEqual(c, { cipherSuite: 1, available: 3, lastResort: true });
  await alice.member.publishKeyPackages(2, true);
  // Pipelined requests on one socket are answered each.
  const answers = await Promise.all(await alice.client.pipeline([1, 2, 3].map((i) => ({ method: 1, body: new Uint8Array([i]) }))));
  assert.deepEqual(answers.map((b) => b[0]), [1, 2, 3]);
  // Typed errors: an unknown method.
  await assert.rejects(alice.client.request(0x7777, new Uint8Array(0)), (e: unknown) => e instanceof MimidsError && e.codeName === "unknown_method");
});

test("a bad token: typed connection error, close 4001, no reconnect", async () => {
  let closes = 0;
  const c = new MimidsClient({ url: a.socketUrl, token: "mdt_not-a-token", socket: nodeSocketFactory, onClose: () => closes++ });
  await assert.rejects(c.connect(), (e: unknown) => e instanceof ConnectionClosedError && e.closeCode === 4001 && e.fatal);
  assert.equal(c.lastConnError?.codeName, "unauthorized");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c.reconnects, 0);
  assert.equal(closes, 1);
});

test("full flow on one provider: create, add by fetch, Welcome, chat both ways, remove, re-add", async () => {
  const g = await alice.member.createGroup();
  await sameView(alice, g);

  const add = await g.add([bob.uri]);
  assert.equal(add.won, true);
  await poll("bob joins", () => bob.events.some((e) => e.type === "joined") || undefined);
  const gb = bob.member.groups.get(toHex(g.groupId));
  assert.ok(gb);
  await sameView(alice, g, gb);
  assert.deepEqual(g.members(), [alice.uri, bob.uri]);
  assert.equal(toHex(gb.partitionKey), toHex(g.partitionKey), "one partition key rule on both sides");

  await say(g, "hello bob, secret-plaintext-1");
  await bob.waitText("hello bob, secret-plaintext-1");
  await say(gb, "hi alice, secret-plaintext-2");
  await alice.waitText("hi alice, secret-plaintext-2");
  for (let i = 0; i < 20; i++) await say(i % 2 ? g : gb, `burst-plaintext-${i}`);
  await bob.waitText("burst-plaintext-19");
  await alice.waitText("burst-plaintext-18");
  // In order, once each.
  const odd = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19];
  assert.deepEqual(bob.texts().filter((t) => t.includes("burst-plaintext-")), odd.map((i) => `${alice.uri}: burst-plaintext-${i}`));
  assert.deepEqual(alice.texts().filter((t) => t.includes("burst-plaintext-")), odd.map((i) => `${bob.uri}: burst-plaintext-${i - 1}`));

  const rm = await g.remove([bob.uri]);
  assert.equal(rm.won, true);
  await poll("bob removed", () => bob.events.some((e) => e.type === "removed") || undefined);
  await sameView(alice, g);
  assert.deepEqual(g.members(), [alice.uri]);

  bob.events = bob.events.filter((e) => e.type === "message");
  const re = await g.add([bob.uri]);
  assert.equal(re.won, true);
  await poll("bob joins again", () => bob.events.some((e) => e.type === "joined") || undefined);
  const gb2 = bob.member.groups.get(toHex(g.groupId));
  assert.ok(gb2 && gb2 !== gb);
  await sameView(alice, g, gb2);
  await say(gb2, "back again, secret-plaintext-3");
  await alice.waitText("back again, secret-plaintext-3");
  await say(g, "welcome back, secret-plaintext-4");
  await bob.waitText("welcome back, secret-plaintext-4");
});

test("provider restart mid-chat: both clients reconnect and resume, nothing lost or duplicated", async () => {
  const g = alice.member.groups.values().next().value as Group;
  const gb = bob.member.groups.get(toHex(g.groupId));
  assert.ok(g && gb);
  const before = bob.client.reconnects;
  const sends: Promise<number>[] = [];
  for (let i = 0; i < 5; i++) sends.push(say(g, `restart-plaintext-${i}`));
  await Promise.all(sends);
  await a.stop();
  // Sent while the provider is down: encrypted now, delivered after the restart.
  for (let i = 5; i < 10; i++) sends.push(say(g, `restart-plaintext-${i}`));
  await a.start();
  const counters = await Promise.all(sends);
  assert.equal(new Set(counters).size, 10, "ten distinct counters");
  await bob.waitText("restart-plaintext-9");
  assert.ok(bob.client.reconnects > before, "bob reconnected");
  const got = bob.texts().filter((t) => t.includes("restart-plaintext-"));
  assert.deepEqual(got, [...Array(10).keys()].map((i) => `${alice.uri}: restart-plaintext-${i}`));
  await say(gb, "after restart, secret-plaintext-5");
  await alice.waitText("after restart, secret-plaintext-5");
});

test("a Welcome whose KeyPackage was already used is reported, not joined", async () => {
  // alice fetches carol's one-time KeyPackage once and uses it in two groups: the
  // provider served it, so both Welcomes reach carol; the second finds its private
  // key used up.
  const carol = new User("carol", a, await a.addClient("carol"));
  await carol.connect();
  try {
    await carol.member.publishKeyPackages(1, false);
    const kps = await alice.member.fetchKeyPackages([carol.uri]);
    const g1 = await alice.member.createGroup();
    assert.equal((await g1.addKeyPackages(kps)).won, true);
    await poll("carol joins", () => carol.events.some((e) => e.type === "joined") || undefined);
    const g2 = await alice.member.createGroup();
    assert.equal((await g2.addKeyPackages(kps)).won, true);
    const bad = await poll("carol is told", () => carol.events.find((e) => e.type === "welcome_unusable"));
    assert.equal(bad.type === "welcome_unusable" && toHex(bad.groupId), toHex(g2.groupId));
    assert.equal(carol.events.filter((e) => e.type === "joined").length, 1);
    assert.ok(!carol.member.groups.has(toHex(g2.groupId)));
    // The entry was acknowledged: the mailbox is empty.
    await poll("mailbox empty", async () => (await carol.client.mailboxStatus()).pending === 0n || undefined);
  } finally {
    carol.close();
  }
});

test("a commit that lost a fork race: the loser follows the first sequenced commit and is told", async () => {
  const g = alice.member.groups.values().next().value as Group;
  const gb = bob.member.groups.get(toHex(g.groupId));
  assert.ok(g && gb);
  const epoch = g.epoch;
  alice.events = [];
  bob.events = [];
  // Both commit in the same partition at once (empty commits: a full UpdatePath each).
  const [ra, rb] = await Promise.all([g.commit([], () => []), gb.commit([], () => [])]);
  assert.equal(ra.won !== rb.won, true, "exactly one commit won");
  const loser = ra.won ? bob : alice;
  await poll("the loser is told", () => loser.events.some((e) => e.type === "fork" && e.lost) || undefined);
  await poll("both in the next epoch", () => (g.epoch === epoch + 1n && gb.epoch === epoch + 1n) || undefined);
  assert.deepEqual(await g.view(), await gb.view());
  assert.equal(toHex(g.partitionKey), toHex(gb.partitionKey));
  await say(g, "after the fork, secret-plaintext-6");
  await bob.waitText("after the fork, secret-plaintext-6");
  await say(gb, "after the fork, secret-plaintext-7");
  await alice.waitText("after the fork, secret-plaintext-7");
});

test("a client restarted from its storage resumes its groups and mailbox", async () => {
  const storage = new MemoryStorage();
  const token = await a.addClient("dora");
  const open = async (events: string[]) => {
    let mb: Member | undefined;
    const c = new MimidsClient({
      url: a.socketUrl,
      token,
      socket: nodeSocketFactory,
      marks: new StorageMarkStore(storage),
      onMailbox: async (e) => {
        await poll("member", () => mb);
        await mb?.handleMailbox(e);
      },
    });
    const s = await c.connect();
    mb = await Member.create(c, new Remote({ baseUrl: a.url, token, ownDomain: s.domain }), storage);
    mb.on((e) => e.type === "message" && !e.own && events.push(e.text));
    return { c, mb };
  };
  const ev1: string[] = [];
  const d1 = await open(ev1);
  await d1.mb.publishKeyPackages(2, true);
  const g = await alice.member.createGroup();
  await g.add(["mimi://a.example/u/dora"]);
  await poll("dora joins", () => d1.mb.groups.get(toHex(g.groupId)));
  await say(g, "before restart, secret-plaintext-8");
  await poll("dora reads", () => ev1.includes("before restart, secret-plaintext-8") || undefined);
  d1.c.close();
  await say(g, "while away, secret-plaintext-9");
  const ev2: string[] = [];
  const d2 = await open(ev2);
  const gd = await poll("group restored", () => d2.mb.groups.get(toHex(g.groupId)));
  await poll("dora reads what came while away", () => ev2.includes("while away, secret-plaintext-9") || undefined);
  assert.ok(!ev2.includes("before restart, secret-plaintext-8"), "nothing handed over twice");
  await say(gd, "restored, secret-plaintext-10");
  await alice.waitText("restored, secret-plaintext-10");
  d2.c.close();
});

test("external join from the hub's GroupInfo; a report is filed", async () => {
  const erin = new User("erin", a, await a.addClient("erin"));
  await erin.connect();
  try {
    const g = await alice.member.createGroup();
    const ge = await erin.member.joinExternal(g.groupId);
    await poll("alice follows erin's external commit", () => (g.epoch === ge.epoch ? true : undefined));
    assert.deepEqual(await g.view(), await ge.view());
    await sameView(alice, g, ge);
    assert.deepEqual(g.members(), [alice.uri, erin.uri]);
    await say(ge, "joined from outside, secret-plaintext-11");
    await alice.waitText("joined from outside, secret-plaintext-11");
    const id = await erin.client.report({ kind: 1, groupId: g.groupId, subject: new TextEncoder().encode(alice.uri), reason: "test report" });
    assert.ok(id > 0n);
  } finally {
    erin.close();
  }
});

test("the store holds no plaintext of any application message", async () => {
  assert.ok(plaintexts.length > 20);
  const files = readdirSync(a.dataDir).map((f) => join(a.dataDir, f));
  const blob = Buffer.concat(files.map((f) => readFileSync(f)));
  assert.ok(blob.length > 0);
  for (const p of plaintexts) assert.equal(blob.indexOf(Buffer.from(p)), -1, `plaintext ${p} in the store`);
  // The check can see: a string the server does store is found.
  assert.notEqual(blob.indexOf(Buffer.from(alice.uri)), -1);
});
