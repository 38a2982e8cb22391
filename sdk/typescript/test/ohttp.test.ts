// OHTTP and Binary HTTP against RFC 9458 Appendix A and the RFC 9292 examples
// (testdata/ohttp at the repository root).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fromHex, fromUtf8, toHex, utf8 } from "../src/codec.js";
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from "../src/bhttp.js";
import { decodeKeyConfig, decodeKeyConfigs, encapsulate } from "../src/ohttp.js";

const dir = new URL("../../../testdata/ohttp/", import.meta.url);
const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, dir), "utf8")) as T;

interface Expected {
  kind: "request" | "response";
  framing_indicator: number;
  method?: string;
  scheme?: string;
  authority?: string;
  path?: string;
  informational?: { status: number; headers: [string, string][] }[];
  status?: number;
  headers: [string, string][];
  content: string;
  trailers: [string, string][];
}
const ex = load<{ examples: { id: string; hex: string; expected: Expected }[]; derived_variants: { id: string; hex: string; same_message_as: string }[] }>(
  "rfc9292-examples.json",
);

for (const e of ex.examples) {
  test(`bhttp ${e.id}`, () => {
    const x = e.expected;
    const b = fromHex(e.hex);
    if (x.kind === "request") {
      const q = decodeRequest(b);
      assert.deepEqual(
        { method: q.method, scheme: q.scheme, authority: q.authority, path: q.path, headers: q.headers, content: fromUtf8(q.content), trailers: q.trailers },
        { method: x.method, scheme: x.scheme, authority: x.authority, path: x.path, headers: x.headers, content: x.content, trailers: x.trailers },
      );
      if (x.framing_indicator === 0 && e.id.startsWith("rfc9292")) assert.equal(toHex(encodeRequest(q)), e.hex);
    } else {
      const q = decodeResponse(b);
      assert.deepEqual(
        { informational: q.informational, status: q.status, headers: q.headers, content: fromUtf8(q.content), trailers: q.trailers },
        { informational: x.informational, status: x.status, headers: x.headers, content: x.content, trailers: x.trailers },
      );
      if (x.framing_indicator === 1 && e.id.startsWith("rfc9292")) assert.equal(toHex(encodeResponse(q)), e.hex);
    }
  });
}

for (const v of ex.derived_variants) {
  test(`bhttp ${v.id} decodes as ${v.same_message_as}`, () => {
    const base = ex.examples.find((e) => e.id === v.same_message_as);
    assert.ok(base);
    assert.deepEqual(decodeRequest(fromHex(v.hex)), decodeRequest(fromHex(base.hex)));
  });
}

interface Vector {
  key_config: string;
  request: string;
  client_ephemeral_secret_key: string;
  client_ephemeral_public_key: string;
  encapsulated_request: string;
  response: string;
  encapsulated_response: string;
}
const vec = load<{ vectors: Vector[] }>("rfc9458-vectors.json").vectors[0];

test("ohttp RFC 9458 Appendix A: request encapsulation and response", async () => {
  const kc = decodeKeyConfig(fromHex(vec.key_config));
  assert.equal(kc.keyId, 1);
  const enc = await encapsulate(kc, fromHex(vec.request), {
    ephemeralSecretKey: fromHex(vec.client_ephemeral_secret_key),
    ephemeralPublicKey: fromHex(vec.client_ephemeral_public_key),
  });
  assert.equal(toHex(enc.request), vec.encapsulated_request);
  const resp = await enc.decapsulate(fromHex(vec.encapsulated_response));
  assert.equal(toHex(resp), vec.response);
  const r = decodeResponse(resp);
  assert.equal(r.status, 200);
  // A flipped bit in the response does not open.
  const bad = fromHex(vec.encapsulated_response);
  bad[bad.length - 1] ^= 1;
  await assert.rejects(enc.decapsulate(bad));
});

test("ohttp key configuration list", () => {
  const one = fromHex(vec.key_config);
  const list = new Uint8Array([one.length >> 8, one.length & 0xff, ...one, 0, one.length, ...one]);
  assert.equal(decodeKeyConfigs(list).length, 2);
  assert.throws(() => decodeKeyConfigs(list.slice(0, list.length - 1)));
  // Random requests encapsulate to distinct bytes.
  return Promise.all([encapsulate(decodeKeyConfig(one), utf8("x")), encapsulate(decodeKeyConfig(one), utf8("x"))]).then(([a, b]) =>
    assert.notEqual(toHex(a.request), toHex(b.request)),
  );
});
