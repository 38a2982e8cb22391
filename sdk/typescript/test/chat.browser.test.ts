// The built web chat in real headless Chromium (Debian's, through playwright-core):
// two pages, users of two federated providers, chat; a reload brings history and
// group state back.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { freePort, poll, repo } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
let serve: ChildProcess;
let browser: Browser;
let base = "";
let readyIn = 0;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is needed (apt-get install chromium)`);
  const port = await freePort();
  const t0 = Date.now();
  serve = spawn(process.execPath, ["--import", "tsx", "examples/chat/serve.ts"], {
    cwd: `${repo}sdk/typescript`,
    env: { ...process.env, CHAT_PORT: String(port), CHAT_TEST_CONTROL: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  serve.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  serve.stderr?.on("data", (b: Buffer) => (out += b.toString()));
  await poll(`chat server (${out})`, () => /chat: ready/.test(out) || undefined, 120000);
  base = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run",
      "--disable-component-update", "--disable-sync"],
  });
  readyIn = Date.now() - t0;
});

after(async () => {
  await browser?.close();
  if (serve && serve.exitCode === null) {
    const done = new Promise((r) => serve.once("exit", r));
    serve.kill("SIGTERM");
    await done;
  }
});

async function open(user: string): Promise<Page> {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error(`${user} page error:`, e));
  await page.goto(`${base}/?user=${user}`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 30000 });
  return page;
}

async function sendText(p: Page, text: string): Promise<void> {
  await p.fill("#text", text);
  await p.click("#send");
}

const seen = (p: Page, text: string) => p.waitForSelector(`#messages li:has-text("${text}")`, { timeout: 30000 });

test("two pages chat across two providers; a reload restores history and state", async () => {
  const t0 = Date.now();
  const bob = await open("bob");
  const alice = await open("alice");
  console.log(`chat: make-chat-equivalent to usable pages: ${readyIn + (Date.now() - t0)} ms (server ${readyIn} ms)`);
  await alice.click("#new-group");
  await alice.waitForSelector("#invite-btn:not([disabled])");
  await alice.fill("#invite", "mimi://b.example/u/bob");
  await alice.click("#invite-btn");
  await bob.waitForSelector("#text:not([disabled])", { timeout: 30000 });

  await sendText(alice, "hello bob, from a.example");
  await seen(bob, "hello bob, from a.example");
  await sendText(bob, "hi alice, from b.example");
  await seen(alice, "hi alice, from b.example");

  await bob.reload();
  await bob.waitForSelector("body[data-ready='1']", { timeout: 30000 });
  await seen(bob, "hello bob, from a.example");
  await seen(bob, "hi alice, from b.example");
  await sendText(alice, "still there after your reload?");
  await seen(bob, "still there after your reload?");
  await sendText(bob, "yes, state came back");
  await seen(alice, "yes, state came back");
  const lines = await bob.$$eval("#messages li", (els) => els.map((e) => e.textContent ?? ""));
  assert.equal(lines.filter((l) => l.includes("hello bob, from a.example")).length, 1, "no duplicate after reload");

  // Fault: bob's provider (b.example, the follower) restarts mid-chat. alice keeps
  // writing; bob's page reconnects and resumes: every message once, in order.
  const restart = fetch(`${base}/api/restart?domain=b.example&downMs=500`, { method: "POST" });
  for (let i = 0; i < 5; i++) await sendText(alice, `during the restart ${i}`);
  assert.equal((await restart).status, 200);
  await seen(bob, "during the restart 4");
  const reconnects = await bob.evaluate(() => (globalThis as unknown as { mimids: { client: { reconnects: number } } }).mimids.client.reconnects);
  assert.ok(reconnects >= 1, "bob's page reconnected");
  await sendText(bob, "back after the restart");
  await seen(alice, "back after the restart");
  const after = await bob.$$eval("#messages li", (els) => els.map((e) => e.textContent ?? ""));
  const during = after.filter((l) => l.includes("during the restart"));
  assert.deepEqual(during, [0, 1, 2, 3, 4].map((i) => `mimi://a.example/u/alice: during the restart ${i}`));
  if (process.env.CHAT_SCREENSHOT) await bob.screenshot({ path: process.env.CHAT_SCREENSHOT });
});
