// `make chat`: builds the web chat, starts two federated providers (a.example and
// b.example, each its own `mimids serve` built from this repository) and serves the
// chat on one origin, proxying /p/<domain>/ (HTTP and the client socket) to each
// provider, so the page's WebSocket and Oblivious HTTP requests are same-origin.
import { createServer, request, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { buildMimids, poll, Provider, tempDir } from "../../test/harness.js";

const run = promisify(execFile);
const here = fileURLToPath(new URL(".", import.meta.url));
const port = Number(process.env.CHAT_PORT ?? 8090);
const t0 = performance.now();

await build({
  entryPoints: [join(here, "app.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  minify: true,
  outfile: join(here, "dist", "app.js"),
  logLevel: "warning",
});

const tmp = tempDir();
const bin = await buildMimids(tmp.dir);
const fed = join(tmp.dir, "fed");
await run(bin, ["cert", "ca", "-out", fed]);
const a = new Provider(bin, tmp.dir, "a.example");
const b = new Provider(bin, tmp.dir, "b.example");
const providers = new Map([
  [a.domain, a],
  [b.domain, b],
]);
for (const p of [a, b]) await run(bin, ["cert", "issue", "-ca", fed, "-out", fed, p.domain]);
await a.configure([], { ca: fed });
await b.configure([], { ca: fed });
await a.configure([b], { ca: fed });
await b.configure([a], { ca: fed });
await Promise.all([a.start(), b.start()]);
await a.cli("peer", "add", "-url", `wss://127.0.0.1:${b.fedPort}`, "-ca", join(fed, "ca.pem"), b.domain);
await b.cli("peer", "add", "-url", `wss://127.0.0.1:${a.fedPort}`, "-ca", join(fed, "ca.pem"), a.domain);
for (const p of [a, b]) await poll(`${p.domain} linked`, async () => /\bup\b/.test(await p.cli("peer", "list")) || undefined, 30000);

const users: Record<string, { token: string; domain: string }> = {};
for (const [name, p] of [
  ["alice", a],
  ["bob", b],
  ["carol", b],
] as const)
  users[name] = { token: await p.addClient(name, "browser"), domain: p.domain };

const files: Record<string, [string, string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/app.js": ["dist/app.js", "text/javascript"],
};

/** /p/<domain>/rest → the provider and the path it serves. */
function target(url: string): { p: Provider; path: string } | undefined {
  const m = /^\/p\/([^/]+)(\/.*)$/.exec(url);
  const p = m ? providers.get(m[1]) : undefined;
  return m && p ? { p, path: m[2] } : undefined;
}

const server = createServer((req: IncomingMessage, res) => {
  const url = req.url ?? "/";
  const u = new URL(url, "http://x");
  if (u.pathname === "/api/config") {
    const name = u.searchParams.get("user") ?? "";
    const user = users[name];
    if (!user) {
      res.writeHead(404).end("unknown user");
      return;
    }
    const providerUrls = Object.fromEntries([...providers.keys()].map((d) => [d, `/p/${d}`]));
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ user: name, userId: `mimi://${user.domain}/u/${name}`, token: user.token, domain: user.domain, providerUrls, users: Object.keys(users).map((n) => `mimi://${users[n].domain}/u/${n}`) }));
    return;
  }
  if (u.pathname === "/api/restart" && req.method === "POST" && process.env.CHAT_TEST_CONTROL === "1") {
    // Test control (only with CHAT_TEST_CONTROL=1): restart one provider process.
    const p = providers.get(u.searchParams.get("domain") ?? "");
    if (!p) {
      res.writeHead(404).end("unknown provider");
      return;
    }
    void (async () => {
      await p.stop();
      await new Promise((r) => setTimeout(r, Number(u.searchParams.get("downMs") ?? 0)));
      await p.start();
      res.writeHead(200).end("restarted");
    })();
    return;
  }
  const f = files[u.pathname];
  if (f) {
    res.writeHead(200, { "content-type": f[1], "cache-control": "no-store" });
    res.end(readFileSync(join(here, f[0])));
    return;
  }
  const t = target(url);
  if (!t) {
    res.writeHead(404).end("not found");
    return;
  }
  const up = request({ host: "127.0.0.1", port: t.p.port, path: t.path, method: req.method, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on("error", () => res.writeHead(502).end("provider unreachable"));
  req.pipe(up);
});

// The client socket: pass the upgrade through to the provider byte for byte.
server.on("upgrade", (req, sock, head) => {
  const t = target(req.url ?? "");
  if (!t) {
    sock.destroy();
    return;
  }
  const up = connect(t.p.port, "127.0.0.1", () => {
    const lines = [`${req.method} ${t.path} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    up.write(lines.join("\r\n") + "\r\n\r\n");
    up.write(head);
    up.pipe(sock);
    sock.pipe(up);
  });
  const end = () => {
    up.destroy();
    sock.destroy();
  };
  up.on("error", end);
  sock.on("error", end);
  up.on("close", end);
  sock.on("close", end);
});

server.listen(port, "127.0.0.1", () => {
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`chat: ready in ${s} s: http://127.0.0.1:${port}/?user=alice (a.example), http://127.0.0.1:${port}/?user=bob (b.example), ?user=carol (b.example)`);
});

const stop = async () => {
  server.close();
  await Promise.all([a.stop(), b.stop()]);
  tmp.cleanup();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
