// Generates the ts-mls fixtures in ../tsmls/. Run: npm ci && node gen.mjs [name ...]
// Keys are random: every run writes new bytes (see ../tsmls/README.md).
import { mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { TS_MLS_VERSION, nowSeconds, writeJson, SUITE_NAMES, PARTITION_LABEL, PARTITION_LENGTH } from "./lib.mjs";
import { create2, externalJoin, fork, gce, gceUnsupported, grow100, private3, suiteGroup } from "./groups.mjs";
import { keyPackages } from "./keypackages.mjs";

const outDir = join(dirname(fileURLToPath(import.meta.url)), "..", "tsmls");

async function suites() {
  const out = [];
  for (const id of Object.keys(SUITE_NAMES).map(Number)) out.push(await suiteGroup(id));
  return { description: "Cipher suites 1-7: three valid KeyPackages each and a small group (create, add, path commit, remove + add).", suites: out };
}

const scenarios = {
  "create-2": create2,
  "grow-100": grow100,
  "external-join": externalJoin,
  gce,
  "gce-unsupported": gceUnsupported,
  fork,
  "private-3": private3,
  suites,
  keypackages: keyPackages,
};

async function main() {
  const wanted = process.argv.slice(2);
  for (const w of wanted) if (!(w in scenarios)) throw new Error(`gen: unknown scenario ${w}`);
  mkdirSync(outDir, { recursive: true });
  for (const [name, fn] of Object.entries(scenarios)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    const t0 = Date.now();
    const now = nowSeconds();
    const body = await fn(now);
    const doc = {
      generator: { tool: "ts-mls", version: TS_MLS_VERSION, script: "mls/testdata/gen/gen.mjs" },
      generated_at: now,
      partition_key_exporter: { label: PARTITION_LABEL, context: "", length: PARTITION_LENGTH },
      ...body,
    };
    const path = join(outDir, `${name}.json`);
    writeJson(path, doc);
    console.log(`${name}.json  ${statSync(path).size} bytes  ${Date.now() - t0} ms`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
