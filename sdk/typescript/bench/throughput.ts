// SDK throughput in Node: messages/s encrypted, sent, delivered and decrypted, for a
// group of N members (one sender; every other member decrypts every message).
//   node --import tsx bench/throughput.ts 10 200
import { buildMimids, poll, Provider, tempDir, User } from "../test/harness.js";
import { toHex } from "../src/index.js";

/** Encryptions per second of one member's ts-mls state (a copy: nothing is sent). */
async function alice_encrypt_rate(g: import("../src/index.js").Group): Promise<number> {
  const M = await import("ts-mls");
  let st = g.state;
  const t = performance.now();
  const k = 200;
  for (let i = 0; i < k; i++) st = (await M.createApplicationMessage(st, new TextEncoder().encode(`probe ${i}`), g.member.impl)).newState;
  return k / ((performance.now() - t) / 1000);
}

const n = Number(process.argv[2] ?? 10);
const count = Number(process.argv[3] ?? 200);
const tmp = tempDir();
const bin = await buildMimids(tmp.dir);
const p = new Provider(bin, tmp.dir, "a.example");
p.extra = { hub: { rate_per_second: -1 } }; // the per-user send limit (50/s) would be the figure otherwise
await p.configure();
await p.start();
const users: User[] = [];
try {
  for (let i = 0; i < n; i++) {
    const u = new User(`u${i}`, p, await p.addClient(`u${i}`));
    await u.connect();
    if (i > 0) await u.member.publishKeyPackages(1, true);
    users.push(u);
  }
  const g = await users[0].member.createGroup();
  for (let i = 1; i < n; i += 20) await g.add(users.slice(i, i + 20).map((u) => u.uri));
  const id = toHex(g.groupId);
  await poll("all joined", () => users.slice(1).every((u) => u.member.groups.get(id)?.epoch === g.epoch) || undefined, 120000);
  // Encryption alone (ts-mls, one sender).
  const probe = await alice_encrypt_rate(g);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) void g.send(`m${i}`);
  await poll("all delivered", () => users.slice(1).every((u) => u.texts().length >= count) || undefined, 600000);
  const s = (performance.now() - t0) / 1000;
  console.log(`group of ${n}: encrypt only ${probe.toFixed(0)} msg/s;`);
  console.log(`group of ${n}: ${count} messages in ${s.toFixed(2)} s: ${(count / s).toFixed(0)} msg/s sent; ${((count * (n - 1)) / s).toFixed(0)} decryptions/s across ${n - 1} receivers`);
} finally {
  for (const u of users) u.close();
  await p.stop();
  tmp.cleanup();
}
