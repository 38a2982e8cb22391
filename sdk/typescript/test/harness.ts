// Starts real `mimids` processes built from this repository, on loopback.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { MimidsClient, Member, Remote, type GroupEvent } from "../src/index.js";
import { nodeSocketFactory } from "../src/node.js";

const run = promisify(execFile);
export const repo = fileURLToPath(new URL("../../../", import.meta.url));

let built: Promise<string> | undefined;
/** Builds bin once per test process. */
export function buildMimids(dir: string): Promise<string> {
  built ??= (async () => {
    const out = join(dir, "mimids");
    await run("go", ["build", "-o", out, "./cmd/mimids"], { cwd: repo });
    return out;
  })();
  return built;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

export async function poll<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 15000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

export class Provider {
  proc: ChildProcess | undefined;
  port = 0;
  fedPort = 0;
  readonly dataDir: string;
  readonly config: string;
  constructor(
    readonly bin: string,
    readonly dir: string,
    readonly domain: string,
  ) {
    this.dataDir = join(dir, "data", domain);
    this.config = join(dir, `${domain}.json`);
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get socketUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/socket`;
  }
  /** Further configuration keys merged into the file (e.g. {hub: {rate_per_second: -1}}). */
  extra: Record<string, unknown> = {};
  async configure(peers: Provider[] = [], fed?: { ca: string }): Promise<void> {
    this.port ||= await freePort();
    if (fed) this.fedPort ||= await freePort();
    const c: Record<string, unknown> = {
      domain: this.domain,
      listen: `127.0.0.1:${this.port}`,
      data_dir: this.dataDir,
      peers: peers.map((p) => ({ domain: p.domain, url: p.url })),
    };
    if (fed)
      c.federation = {
        listen: `127.0.0.1:${this.fedPort}`,
        cert_file: join(fed.ca, `${this.domain}.pem`),
        key_file: join(fed.ca, `${this.domain}-key.pem`),
        min_backoff: "50ms",
        max_backoff: "500ms",
        peer_refresh: "100ms",
      };
    mkdirSync(this.dataDir, { recursive: true });
    writeFileSync(this.config, JSON.stringify({ ...c, ...this.extra }, null, 2));
  }
  async start(): Promise<void> {
    this.proc = spawn(this.bin, ["serve", "-config", this.config], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    this.proc.stderr?.on("data", (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    await poll(`${this.domain} ready (${err})`, async () => (await fetch(`${this.url}/readyz`)).ok || undefined);
  }
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const done = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await done;
  }
  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run(this.bin, [...args.slice(0, 2), "-config", this.config, ...args.slice(2)], { cwd: this.dir });
    return stdout;
  }
  /** A new user with one device; returns its token. */
  async addClient(user: string, device = "phone"): Promise<string> {
    const o = await this.cli("client", "add", "-create-user", user, device);
    const t = o.split("\n").map((l) => l.trim().split(/\s+/)).find((f) => f.length === 2 && f[0] === "token:");
    if (!t) throw new Error(`client add printed no token: ${o}`);
    return t[1];
  }
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "mimids-ts-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A connected client with an MLS member, recording its events. */
export class User {
  events: GroupEvent[] = [];
  errors: unknown[] = [];
  client!: MimidsClient;
  member!: Member;
  constructor(
    readonly name: string,
    readonly provider: Provider,
    readonly token: string,
  ) {}
  get uri(): string {
    return `mimi://${this.provider.domain}/u/${this.name}`;
  }
  async connect(providerUrls: Record<string, string> = {}): Promise<void> {
    let member: Member | undefined;
    const early: Parameters<Member["handleMailbox"]>[0][] = [];
    this.client = new MimidsClient({
      url: this.provider.socketUrl,
      token: this.token,
      socket: nodeSocketFactory,
      minBackoffMs: 50,
      maxBackoffMs: 500,
      onMailbox: async (e) => {
        if (member) await member.handleMailbox(e);
        else early.push(e);
      },
    });
    this.client.handlerError = (e) => {
      this.errors.push(e);
      if (process.env.MIMIDS_TS_DEBUG) console.error(`${this.name} handler:`, e);
    };
    const s = await this.client.connect();
    const remote = new Remote({ baseUrl: this.provider.url, token: this.token, ownDomain: s.domain, providerUrls });
    member = await Member.create(this.client, remote);
    member.on((e) => this.events.push(e));
    for (const e of early) await member.handleMailbox(e);
    this.member = member;
  }
  texts(): string[] {
    return this.events.flatMap((e) => (e.type === "message" && !e.own ? [`${e.sender}: ${e.text}`] : []));
  }
  async waitText(t: string): Promise<void> {
    await poll(`${this.name} receives ${t}`, () => this.texts().some((x) => x.endsWith(`: ${t}`)) || undefined);
  }
  close(): void {
    this.client.close();
  }
}
