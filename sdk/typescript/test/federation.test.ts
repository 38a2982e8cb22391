// Two TypeScript clients on two federated `mimids` providers.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { readFileSync, readdirSync } from "node:fs";
import * as M from "ts-mls";
import { toHex, type Group } from "../src/index.js";
import { buildMimids, poll, Provider, tempDir, User } from "./harness.js";

const run = promisify(execFile);
const tmp = tempDir();
let a: Provider;
let b: Provider;
let alice: User;
let bob: User;

before(async () => {
  const bin = await buildMimids(tmp.dir);
  const fed = join(tmp.dir, "fed");
  await run(bin, ["cert", "ca", "-out", fed]);
  a = new Provider(bin, tmp.dir, "a.example");
  b = new Provider(bin, tmp.dir, "b.example");
  for (const p of [a, b]) await run(bin, ["cert", "issue", "-ca", fed, "-out", fed, p.domain]);
  await a.configure([], { ca: fed });
  await b.configure([], { ca: fed });
  await a.configure([b], { ca: fed });
  await b.configure([a], { ca: fed });
  await a.start();
  await b.start();
  for (const [p, o] of [
    [a, b],
    [b, a],
  ] as const)
    await p.cli("peer", "add", "-url", `wss://127.0.0.1:${o.fedPort}`, "-ca", join(fed, "ca.pem"), o.domain);
  for (const p of [a, b]) await poll(`${p.domain} linked`, async () => /\bup\b/.test(await p.cli("peer", "list")) || undefined, 30000);
  alice = new User("alice", a, await a.addClient("alice"));
  bob = new User("bob", b, await b.addClient("bob"));
  const urls = { "a.example": a.url, "b.example": b.url };
  await alice.connect(urls);
  await bob.connect(urls);
});

after(async () => {
  alice?.close();
  bob?.close();
  await a?.stop();
  await b?.stop();
  tmp.cleanup();
});

/** The hub's GroupInfo (asked by u, forwarded when u's provider is not the hub): epoch and tree hash. */
async function hubView(u: User, g: Group): Promise<{ epoch: bigint; treeHash: string }> {
  const r = await u.client.groupInfo(g.groupId);
  const msg = M.decodeMlsMessage(r.groupInfo, 0)?.[0];
  assert.ok(msg && msg.wireformat === "mls_group_info");
  return { epoch: msg.groupInfo.groupContext.epoch, treeHash: toHex(msg.groupInfo.groupContext.treeHash) };
}
async function sameView(...pairs: [User, Group][]): Promise<void> {
  for (const [u, g] of pairs) {
    const v = await g.view();
    assert.deepEqual(await hubView(u, g), { epoch: v.epoch, treeHash: v.treeHash }, `${u.name}'s view is the hub's`);
  }
}
const plaintexts = ["hello from a.example", "hello from b.example", "back on b.example"];

test("federated: alice on a.example adds bob on b.example; chat both ways; remove; re-add", async () => {
  await bob.member.publishKeyPackages(2, true);
  const g = await alice.member.createGroup();
  assert.equal((await g.add([bob.uri])).won, true);
  await poll("bob joins across providers", () => bob.events.some((e) => e.type === "joined") || undefined, 30000);
  const gb = bob.member.groups.get(toHex(g.groupId));
  assert.ok(gb);
  assert.deepEqual(await gb.view(), await g.view());
  await sameView([alice, g], [bob, gb]);
  await g.send("hello from a.example");
  await bob.waitText("hello from a.example");
  await gb.send("hello from b.example");
  await alice.waitText("hello from b.example");
  assert.equal((await g.remove([bob.uri])).won, true);
  await poll("bob removed", () => bob.events.some((e) => e.type === "removed") || undefined, 30000);
  await sameView([alice, g]);
  bob.events = [];
  assert.equal((await g.add([bob.uri])).won, true);
  await poll("bob joins again", () => bob.events.some((e) => e.type === "joined") || undefined, 30000);
  const gb2 = bob.member.groups.get(toHex(g.groupId));
  assert.ok(gb2);
  await sameView([alice, g], [bob, gb2]);
  await gb2.send("back on b.example");
  await alice.waitText("back on b.example");
});

test("federated: neither provider's store holds a plaintext", () => {
  for (const p of [a, b]) {
    const blob = Buffer.concat(readdirSync(p.dataDir).map((f) => readFileSync(join(p.dataDir, f))));
    for (const t of plaintexts) assert.equal(blob.indexOf(Buffer.from(t)), -1, `${t} in ${p.domain}'s store`);
    assert.notEqual(blob.indexOf(Buffer.from(p.domain)), -1);
  }
});
