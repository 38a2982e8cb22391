// keypackages.json: valid KeyPackages for users of a.example and b.example, and invalid ones.
import { signKeyPackage } from "ts-mls/keyPackage.js";
import {
  M,
  EXT_LAST_RESORT,
  clientCapabilities,
  keyPackageJson,
  makeKeyPackage,
  suiteImpl,
  userUri,
} from "./lib.mjs";

const DAY = 86400n;

export async function keyPackages(now) {
  const impl = await suiteImpl(1);
  const users = [
    ["alice", "a.example"],
    ["carol", "a.example"],
    ["erin", "a.example"],
    ["bob", "b.example"],
    ["dave", "b.example"],
    ["frank", "b.example"],
  ];
  const valid = [];
  for (const [user, provider] of users) {
    const identity = userUri(provider, user);
    const meta = { identity, user, provider };
    const lifetimes = [
      { notBefore: now - 3600n, notAfter: now + 30n * DAY },
      { notBefore: now - 3600n, notAfter: now + 90n * DAY },
    ];
    if (user === "frank") lifetimes.push(M.defaultLifetime);
    for (const lifetime of lifetimes) {
      const kp = await makeKeyPackage(impl, identity, { lifetime });
      valid.push(await keyPackageJson(impl, 1, kp.publicPackage, meta));
    }
    if (user === "alice" || user === "bob") {
      const kp = await makeKeyPackage(impl, identity, {
        lifetime: { notBefore: now - 3600n, notAfter: now + 365n * DAY },
        extensions: [{ extensionType: EXT_LAST_RESORT, extensionData: new Uint8Array() }],
        capabilities: clientCapabilities({ extra: [EXT_LAST_RESORT] }),
      });
      valid.push(await keyPackageJson(impl, 1, kp.publicPackage, meta));
    }
  }
  return {
    description:
      "Suite 1 KeyPackages as ts-mls generates them (GREASE in capabilities, 0xF0A0 listed). validation_time is the clock to validate lifetimes against. last_resort KeyPackages carry extension 0x000A (empty data) and list it in capabilities.",
    validation_time: now,
    key_packages: valid,
    invalid_key_packages: await invalidKeyPackages(impl, now),
  };
}

async function resign(impl, kp, priv, changes) {
  const { signature: _s, ...tbs } = { ...kp, ...changes };
  return signKeyPackage(tbs, priv.signaturePrivateKey, impl.signature);
}

function flipLast(b) {
  const c = new Uint8Array(b);
  c[c.length - 1] ^= 0x01;
  return c;
}

async function invalidKeyPackages(impl, now) {
  const meta = { identity: userUri("b.example", "mallory"), user: "mallory", provider: "b.example" };
  const good = { notBefore: now - 3600n, notAfter: now + 30n * DAY };
  const out = [];
  const add = async (reason, description, kp) => out.push({ reason, description, ...(await keyPackageJson(impl, 1, kp, meta)) });

  let g = await makeKeyPackage(impl, meta.identity, { lifetime: { notBefore: now - 60n * DAY, notAfter: now - 30n * DAY } });
  await add("expired", "lifetime.not_after is 30 days before validation_time", g.publicPackage);

  g = await makeKeyPackage(impl, meta.identity, { lifetime: { notBefore: now + 30n * DAY, notAfter: now + 60n * DAY } });
  await add("not_yet_valid", "lifetime.not_before is 30 days after validation_time", g.publicPackage);

  g = await makeKeyPackage(impl, meta.identity, { lifetime: good });
  await add("bad_key_package_signature", "last byte of KeyPackage.signature flipped", { ...g.publicPackage, signature: flipLast(g.publicPackage.signature) });

  g = await makeKeyPackage(impl, meta.identity, { lifetime: good });
  const badLeaf = { ...g.publicPackage.leafNode, signature: flipLast(g.publicPackage.leafNode.signature) };
  await add("bad_leaf_node_signature", "last byte of LeafNode.signature flipped; the KeyPackage is re-signed so only the leaf signature is bad", await resign(impl, g.publicPackage, g.privatePackage, { leafNode: badLeaf }));

  g = await makeKeyPackage(impl, meta.identity, { lifetime: good });
  await add("init_key_equals_encryption_key", "init_key set to leaf_node.encryption_key, re-signed", await resign(impl, g.publicPackage, g.privatePackage, { initKey: g.publicPackage.leafNode.hpkePublicKey }));

  const caps = clientCapabilities();
  g = await makeKeyPackage(impl, meta.identity, { lifetime: good, capabilities: { ...caps, credentials: ["x509"] } });
  await add("credential_type_not_in_capabilities", "basic credential but capabilities.credentials lists only x509 (RFC 9420 §7.2)", g.publicPackage);

  g = await makeKeyPackage(impl, meta.identity, {
    lifetime: good,
    leafExtensions: [{ extensionType: 0xf0b0, extensionData: new Uint8Array([1, 2, 3]) }],
  });
  await add("leaf_extension_not_in_capabilities", "LeafNode carries extension 0xF0B0 that its capabilities do not list (RFC 9420 §7.2)", g.publicPackage);
  return out;
}
