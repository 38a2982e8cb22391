// Shared helpers for the ts-mls fixture generator: encoding, key packages,
// and Sim, a small driver that runs a group scenario with real ts-mls client
// states and records every message plus the state ts-mls computes after it.
import { writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import * as M from "ts-mls";
import { encode } from "ts-mls/codec/tlsEncoder.js";
import { varLenDataEncoder, varLenTypeEncoder } from "ts-mls/codec/variableLength.js";
import { groupContextEncoder } from "ts-mls/groupContext.js";
import { encodeKeyPackage, makeKeyPackageRef } from "ts-mls/keyPackage.js";
import { decodeRatchetTree, encodeRatchetTree } from "ts-mls/ratchetTree.js";
import { treeHashRoot } from "ts-mls/treeHash.js";
import { leafNodeTBSEncoder } from "ts-mls/leafNode.js";
import { signWithLabel } from "ts-mls/crypto/signature.js";

export { M };

export const TS_MLS_VERSION = "1.6.4";
export const PARTITION_LABEL = "mimi partition key";
export const PARTITION_LENGTH = 16;
/** Private-range GroupContext extension carrying the hub's ban/mute list (provisional format). */
export const EXT_MODERATION = 0xf0a0;
/** last_resort KeyPackage extension (draft-ietf-mls-extensions, IANA 0x000A). */
export const EXT_LAST_RESORT = 0x000a;

export const SUITE_NAMES = {
  1: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
  2: "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
  3: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
  4: "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448",
  5: "MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
  6: "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448",
  7: "MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
};

const te = new TextEncoder();
const td = new TextDecoder();

export const hex = (b) => Buffer.from(b).toString("hex");
export const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));
export const utf8 = (s) => te.encode(s);
export const fromUtf8 = (b) => td.decode(b);
export const nowSeconds = () => BigInt(Math.floor(Date.now() / 1000));

export function assert(cond, msg) {
  if (!cond) throw new Error(`gen: assertion failed: ${msg}`);
}

export function eqBytes(a, b) {
  return Buffer.from(a).equals(Buffer.from(b));
}

export async function suiteImpl(id) {
  return M.getCiphersuiteImpl(M.getCiphersuiteFromName(SUITE_NAMES[id]));
}

/** Encodes an MLSMessage and checks that ts-mls decodes and re-encodes it to the same bytes. */
export function encodeMessage(msg) {
  const bytes = M.encodeMlsMessage(msg);
  const decoded = M.decodeMlsMessage(bytes, 0);
  assert(decoded !== undefined && decoded[1] === bytes.length, `decode ${msg.wireformat}`);
  assert(eqBytes(M.encodeMlsMessage(decoded[0]), bytes), `round-trip ${msg.wireformat}`);
  return bytes;
}

export const wrapKeyPackage = (kp) => ({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp });
export const wrapWelcome = (w) => ({ version: "mls10", wireformat: "mls_welcome", welcome: w });
export const wrapGroupInfo = (gi) => ({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi });
export const wrapPrivate = (pm) => ({ version: "mls10", wireformat: "mls_private_message", privateMessage: pm });
export const wrapPublic = (pm) => ({ version: "mls10", wireformat: "mls_public_message", publicMessage: pm });

/** Writes JSON with bigints as exact integer literals (lifetimes reach 2^63-1). */
export function writeJson(path, obj) {
  const text = JSON.stringify(obj, (_k, v) => (typeof v === "bigint" ? `__BIGINT__${v}` : v), 2);
  writeFileSync(path, text.replace(/"__BIGINT__(\d+)"/g, "$1") + "\n");
}

/** MLS variable-length vector of variable-length byte strings. */
const uriListEncoder = varLenTypeEncoder(varLenDataEncoder);

/**
 * Provisional content of the 0xF0A0 moderation extension:
 *   struct { opaque uri<V>; } UserURI;
 *   struct { UserURI banned<V>; UserURI muted<V>; } MimiModerationList;
 * The hub issue fixes the final format in docs/protocol.md; change only this function.
 */
export function encodeModerationList({ banned = [], muted = [] }) {
  const b = encode(uriListEncoder)(banned.map(utf8));
  const m = encode(uriListEncoder)(muted.map(utf8));
  return new Uint8Array([...b, ...m]);
}

export function moderationExtension(list) {
  return { extensionType: EXT_MODERATION, extensionData: encodeModerationList(list) };
}

export function requiredCapabilitiesExtension(extensionTypes) {
  return {
    extensionType: "required_capabilities",
    extensionData: M.encodeRequiredCapabilities({ extensionTypes, proposalTypes: [], credentialTypes: ["basic"] }),
  };
}

export function extensionTypeNumber(t) {
  return typeof t === "number" ? t : M.defaultExtensionTypes[t];
}

export function extensionsJson(exts) {
  return exts.map((e) => ({ extension_type: extensionTypeNumber(e.extensionType), extension_data: hex(e.extensionData) }));
}

export const userUri = (provider, user) => `mimi://${provider}/u/${user}`;

/** Capabilities as a MIMI client built on ts-mls would send: defaults (with GREASE) plus 0xF0A0. */
export function clientCapabilities({ moderation = true, extra = [] } = {}) {
  const caps = M.defaultCapabilities();
  const ext = [...(moderation ? [EXT_MODERATION] : []), ...extra];
  return { ...caps, extensions: [...ext, ...caps.extensions] };
}

/** Generates a KeyPackage; returns { publicPackage, privatePackage }. */
export async function makeKeyPackage(impl, identity, opts = {}) {
  const { lifetime = M.defaultLifetime, extensions = [], capabilities = clientCapabilities(opts), leafExtensions } = opts;
  const cred = { credentialType: "basic", identity: utf8(identity) };
  if (opts.signatureKeyPair) {
    return M.generateKeyPackageWithKey(cred, capabilities, lifetime, extensions, opts.signatureKeyPair, impl, leafExtensions);
  }
  return M.generateKeyPackage(cred, capabilities, lifetime, extensions, impl, leafExtensions);
}

/** The JSON record of one KeyPackage (see tsmls/README.md, "KeyPackage object"). */
export async function keyPackageJson(impl, suiteId, kp, meta) {
  const ref = await makeKeyPackageRef(kp, impl.hash);
  const lt = kp.leafNode.lifetime;
  return {
    identity: meta.identity,
    user: meta.user,
    provider: meta.provider,
    cipher_suite: suiteId,
    key_package: hex(encodeMessage(wrapKeyPackage(kp))),
    key_package_bare: hex(encodeKeyPackage(kp)),
    key_package_ref: hex(ref),
    lifetime: { not_before: lt.notBefore, not_after: lt.notAfter },
    extensions: extensionsJson(kp.extensions),
    last_resort: kp.extensions.some((e) => extensionTypeNumber(e.extensionType) === EXT_LAST_RESORT),
  };
}

export function membersOf(state) {
  const out = [];
  state.ratchetTree.forEach((node, i) => {
    if (i % 2 === 0 && node !== undefined) {
      assert(node.leaf.credential.credentialType === "basic", "basic credential");
      out.push({ leaf_index: i / 2, identity: fromUtf8(node.leaf.credential.identity) });
    }
  });
  return out;
}

export function leafOf(state, identity) {
  const m = membersOf(state).filter((x) => x.identity === identity);
  assert(m.length === 1, `exactly one leaf for ${identity}`);
  return m[0].leaf_index;
}

function leafIndexByHpkeKey(state, key) {
  for (let i = 0; i < state.ratchetTree.length; i += 2) {
    const n = state.ratchetTree[i];
    if (n !== undefined && eqBytes(n.leaf.hpkePublicKey, key)) return i / 2;
  }
  return undefined;
}

export async function partitionKey(state, impl) {
  return M.mlsExporter(state.keySchedule.exporterSecret, PARTITION_LABEL, new Uint8Array(0), PARTITION_LENGTH, impl);
}

/** A signed Update proposal for the member owning state, with the new leaf's HPKE private key. */
export async function makeUpdateProposal(state, impl) {
  const leafIndex = state.privatePath.leafIndex;
  const old = state.ratchetTree[leafIndex * 2].leaf;
  const kp = await impl.hpke.generateKeyPair();
  const hpkePublicKey = await impl.hpke.exportPublicKey(kp.publicKey);
  const hpkePrivateKey = await impl.hpke.exportPrivateKey(kp.privateKey);
  const tbs = {
    hpkePublicKey,
    signaturePublicKey: old.signaturePublicKey,
    credential: old.credential,
    capabilities: old.capabilities,
    leafNodeSource: "update",
    extensions: old.extensions,
    groupId: state.groupContext.groupId,
    leafIndex,
  };
  const signature = await signWithLabel(state.signaturePrivateKey, "LeafNodeTBS", encode(leafNodeTBSEncoder)(tbs), impl.signature);
  const { groupId: _g, leafIndex: _l, ...leaf } = tbs;
  return { proposal: { proposalType: "update", update: { leafNode: { ...leaf, signature } } }, hpkePrivateKey };
}

function proposalSummary(p) {
  return p.proposalType;
}

/**
 * Sim drives one group (or one branch of a forked group). clients is shared
 * between branches; states maps client name to its current ts-mls ClientState.
 */
export class Sim {
  constructor(impl, suiteId, opts = {}) {
    this.impl = impl;
    this.suiteId = suiteId;
    this.clients = opts.clients ?? new Map();
    this.states = opts.states ?? new Map();
    this.steps = [];
    this.current = opts.current; // EpochState JSON of the current epoch
    this.fullEvery = opts.fullEvery ?? 1; // include trees every n epochs (plus when asked)
    this.appCounter = 0;
  }

  fork() {
    return new Sim(this.impl, this.suiteId, {
      clients: this.clients,
      states: new Map(this.states),
      current: this.current,
      fullEvery: this.fullEvery,
    });
  }

  /** Registers a client (one per user); identity is the user's MIMI URI. */
  client(name, provider, opts = {}) {
    const c = { name, user: name, provider, identity: userUri(provider, name), opts, keyPackages: [] };
    this.clients.set(name, c);
    return c;
  }

  async freshKeyPackage(name, extraOpts = {}) {
    const c = this.clients.get(name);
    const kp = await makeKeyPackage(this.impl, c.identity, { ...c.opts, ...extraOpts });
    c.keyPackages.push(kp);
    return kp;
  }

  meta(name) {
    const c = this.clients.get(name);
    return { identity: c.identity, user: c.user, provider: c.provider };
  }

  senderJson(name, state) {
    return { sender_type: "member", leaf_index: state.privatePath.leafIndex, identity: this.clients.get(name).identity };
  }

  async epochState(state, full) {
    const impl = this.impl;
    const gc = state.groupContext;
    const th = await treeHashRoot(state.ratchetTree, impl.hash);
    assert(eqBytes(th, gc.treeHash), "tree hash matches group context");
    const pk = await partitionKey(state, impl);
    const gi = await M.createGroupInfoWithExternalPub(state, [], impl);
    const out = {
      epoch: gc.epoch,
      tree_hash: hex(gc.treeHash),
      group_context: hex(encode(groupContextEncoder)(gc)),
      extensions: extensionsJson(gc.extensions),
      members: membersOf(state),
      partition_key: hex(pk),
      masked_partition_key: hex(await impl.hash.digest(pk)),
      group_info_signer: state.privatePath.leafIndex,
      group_info: hex(encodeMessage(wrapGroupInfo(gi))),
    };
    if (full || gc.epoch % BigInt(this.fullEvery) === 0n) {
      const git = await M.createGroupInfoWithExternalPubAndRatchetTree(state, [], impl);
      out.group_info_with_tree = hex(encodeMessage(wrapGroupInfo(git)));
      out.ratchet_tree = hex(encodeRatchetTree(state.ratchetTree));
    }
    return out;
  }

  async create(name, { groupId = randomBytes(32), extensions = [], full = true } = {}) {
    const kp = await this.freshKeyPackage(name);
    const st = await M.createGroup(new Uint8Array(groupId), kp.publicPackage, kp.privatePackage, extensions, this.impl);
    this.states.set(name, st);
    this.groupId = hex(groupId);
    this.creator = { leaf_index: 0, identity: this.clients.get(name).identity };
    this.current = await this.epochState(st, full);
    return this.current;
  }

  /** Other tracked members in the same epoch as the sender. */
  peers(name, epoch) {
    return [...this.states.entries()].filter(
      ([n, st]) => n !== name && st.groupContext.epoch === epoch && st.groupActiveState.kind === "active",
    );
  }

  async app(name, text) {
    const st = this.states.get(name);
    const res = await M.createApplicationMessage(st, utf8(text), this.impl);
    this.states.set(name, res.newState);
    const msg = wrapPrivate(res.privateMessage);
    const bytes = encodeMessage(msg);
    const peers = this.peers(name, st.groupContext.epoch);
    if (peers.length > 0) {
      const [pn, pst] = peers[(this.appCounter++) % peers.length];
      const r = await M.processMessage(msg, pst, M.emptyPskIndex, M.acceptAll, this.impl);
      assert(r.kind === "applicationMessage" && fromUtf8(r.message) === text, `${pn} decrypts application message`);
      this.states.set(pn, r.newState);
    }
    const step = {
      kind: "application",
      description: `${name} sends an application message`,
      sender: this.senderJson(name, st),
      epoch: st.groupContext.epoch,
      partition_key: this.current.partition_key,
      wire_format: "mls_private_message",
      content_type: "application",
      message: hex(bytes),
      plaintext: text,
      authenticated_data: "",
    };
    this.steps.push(step);
    return step;
  }

  /** Sends a proposal; every tracked peer processes it. */
  async propose(name, proposal, { pub = true, description, hpkePrivateKey } = {}) {
    const st = this.states.get(name);
    const res = await M.createProposal(st, pub, proposal, this.impl);
    const before = new Set(Object.keys(st.unappliedProposals));
    const refs = Object.keys(res.newState.unappliedProposals).filter((k) => !before.has(k));
    assert(refs.length === 1, "one new proposal ref");
    let ns = res.newState;
    if (hpkePrivateKey !== undefined) {
      // ts-mls has no API for Update proposals: install the new leaf key ourselves.
      const li = ns.privatePath.leafIndex * 2;
      ns = { ...ns, privatePath: { ...ns.privatePath, privateKeys: { ...ns.privatePath.privateKeys, [li]: hpkePrivateKey } } };
    }
    this.states.set(name, ns);
    const bytes = encodeMessage(res.message);
    for (const [pn, pst] of this.peers(name, st.groupContext.epoch)) {
      const r = await M.processMessage(res.message, pst, M.emptyPskIndex, M.acceptAll, this.impl);
      assert(r.newState.unappliedProposals[refs[0]] !== undefined, `${pn} computes the same proposal ref`);
      this.states.set(pn, r.newState);
    }
    const step = {
      kind: "proposal",
      description: description ?? `${name} proposes ${proposal.proposalType}`,
      sender: this.senderJson(name, st),
      epoch: st.groupContext.epoch,
      partition_key: this.current.partition_key,
      wire_format: pub ? "mls_public_message" : "mls_private_message",
      content_type: "proposal",
      proposal_type: proposalSummary(proposal),
      proposal_ref: hex(Buffer.from(refs[0], "base64")),
      message: hex(bytes),
    };
    this.steps.push(step);
    return step;
  }

  /**
   * Commits by value: add (client names, each gets a fresh KeyPackage), remove
   * (client names), extra (Proposal objects); pending proposals go by reference.
   * join: names of added clients that process the Welcome and stay tracked.
   */
  async commit(name, { add = [], remove = [], extra = [], pub = true, join, description, full = false, rfcViolation, membersFail } = {}) {
    const impl = this.impl;
    const st = this.states.get(name);
    const epoch = st.groupContext.epoch;
    const beforeMembers = membersOf(st);
    const addKps = [];
    for (const n of add) addKps.push([n, await this.freshKeyPackage(n)]);
    const removeLeaves = remove.map((n) => leafOf(st, this.clients.get(n).identity));
    const byValue = [
      ...addKps.map(([, kp]) => ({ proposalType: "add", add: { keyPackage: kp.publicPackage } })),
      ...removeLeaves.map((l) => ({ proposalType: "remove", remove: { removed: l } })),
      ...extra,
    ];
    const refs = Object.keys(st.unappliedProposals).map((k) => ({
      by: "reference",
      proposal_type: st.unappliedProposals[k].proposal.proposalType,
      proposal_ref: hex(Buffer.from(k, "base64")),
    }));
    const res = await M.createCommit(
      { state: st, cipherSuite: impl },
      { wireAsPublicMessage: pub, ratchetTreeExtension: true, extraProposals: byValue },
    );
    const ns = res.newState;
    this.states.set(name, ns);
    const bytes = encodeMessage(res.commit);
    // A path replaces the committer's leaf (new HPKE key); this works for private commits too.
    const li = st.privatePath.leafIndex * 2;
    const hasPath = !eqBytes(st.ratchetTree[li].leaf.hpkePublicKey, ns.ratchetTree[li].leaf.hpkePublicKey);
    if (pub) assert(hasPath === (res.commit.publicMessage.content.commit.path !== undefined), "has_path");
    const after = await this.epochState(ns, full);
    await this.followCommit(name, res.commit, epoch, after, membersFail, removeLeaves);
    const added = addKps.map(([n, kp]) => ({
      leaf_index: leafIndexByHpkeKey(ns, kp.publicPackage.leafNode.hpkePublicKey),
      identity: this.clients.get(n).identity,
    }));
    const removed = removeLeaves.map((l) => beforeMembers.find((m) => m.leaf_index === l));
    const welcome = res.welcome === undefined ? null : await this.welcomeJson(res.welcome, addKps, added, join ?? add, after);
    assert((welcome === null) === (add.length === 0), "welcome iff adds");
    const step = {
      kind: "commit",
      description: description ?? `${name} commits`,
      sender: this.senderJson(name, st),
      epoch,
      partition_key: this.current.partition_key,
      wire_format: pub ? "mls_public_message" : "mls_private_message",
      content_type: "commit",
      message: hex(bytes),
      proposals: [...refs, ...byValue.map((p) => ({ by: "value", proposal_type: proposalSummary(p) }))],
      has_path: hasPath,
      added,
      removed,
      welcome,
      after,
    };
    if (rfcViolation) step.rfc_violation = rfcViolation;
    if (membersFail) step.members_fail = membersFail;
    this.steps.push(step);
    this.current = after;
    return step;
  }

  /** Every tracked peer processes the commit and must reach the committer's state. */
  async followCommit(name, msg, epoch, after, membersFail, removeLeaves = []) {
    const impl = this.impl;
    for (const [pn, pst] of this.peers(name, epoch)) {
      let r;
      try {
        r = await M.processMessage(msg, pst, M.emptyPskIndex, M.acceptAll, impl);
      } catch (e) {
        // ts-mls quirk: a removed member whose leaf is refilled by an Add in the
        // same commit does not notice its removal and fails on the UpdatePath.
        if (removeLeaves.includes(pst.privatePath.leafIndex) && /No overlap/.test(String(e))) {
          this.states.delete(pn);
          continue;
        }
        if (!membersFail || !/Open/.test(String(e))) throw e;
        this.states.delete(pn); // stuck in the old epoch
        continue;
      }
      if (r.newState.groupActiveState.kind === "removedFromGroup") {
        this.states.delete(pn);
        continue;
      }
      assert(!membersFail, `${pn} was expected to fail`);
      const s = r.newState;
      assert(s.groupContext.epoch === after.epoch, `${pn} epoch`);
      assert(hex(s.groupContext.treeHash) === after.tree_hash, `${pn} tree hash`);
      assert(hex(await partitionKey(s, impl)) === after.partition_key, `${pn} partition key`);
      this.states.set(pn, s);
    }
  }

  async welcomeJson(welcome, addKps, added, join, after) {
    const impl = this.impl;
    const newMembers = [];
    for (const [i, sec] of welcome.secrets.entries()) {
      let found;
      for (const [j, [n, kp]] of addKps.entries()) {
        const ref = await makeKeyPackageRef(kp.publicPackage, impl.hash);
        if (eqBytes(ref, sec.newMember)) found = { j, n, kp, ref };
      }
      assert(found !== undefined, `welcome secret ${i} matches an added KeyPackage`);
      const c = this.clients.get(found.n);
      newMembers.push({
        key_package_ref: hex(found.ref),
        identity: c.identity,
        provider: c.provider,
        leaf_index: added[found.j].leaf_index,
        key_package: hex(encodeMessage(wrapKeyPackage(found.kp.publicPackage))),
      });
    }
    for (const n of join) {
      const kp = addKps.find(([m]) => m === n)[1];
      const st = await M.joinGroup(welcome, kp.publicPackage, kp.privatePackage, M.emptyPskIndex, impl);
      assert(st.groupContext.epoch === after.epoch, `${n} joins at the commit's epoch`);
      assert(hex(st.groupContext.treeHash) === after.tree_hash, `${n} tree hash after join`);
      assert(hex(await partitionKey(st, impl)) === after.partition_key, `${n} partition key after join`);
      this.states.set(n, st);
    }
    return { message: hex(encodeMessage(wrapWelcome(welcome))), cipher_suite: this.suiteId, new_members: newMembers };
  }

  /** External join (external commit) by name, from the current epoch's published GroupInfo. */
  async externalJoin(name, { withTree = true, resync = false, description, full = true } = {}) {
    const impl = this.impl;
    const cur = this.current;
    assert(withTree ? cur.group_info_with_tree : cur.ratchet_tree, "current epoch has the needed GroupInfo/tree");
    const giMsg = M.decodeMlsMessage(unhex(withTree ? cur.group_info_with_tree : cur.group_info), 0)[0];
    const ratchetTree = withTree ? undefined : decodeRatchetTree(unhex(cur.ratchet_tree), 0)[0];
    const c = this.clients.get(name);
    const oldState = this.states.get(name);
    let kp;
    if (resync) {
      assert(oldState !== undefined, "resync needs the old state");
      const old = oldState.ratchetTree[oldState.privatePath.leafIndex * 2].leaf;
      kp = await this.freshKeyPackage(name, {
        signatureKeyPair: { signKey: oldState.signaturePrivateKey, publicKey: old.signaturePublicKey },
      });
    } else {
      kp = await this.freshKeyPackage(name);
    }
    const beforeMembers = cur.members;
    const res = await M.joinGroupExternal(giMsg.groupInfo, kp.publicPackage, kp.privatePackage, resync, impl, ratchetTree);
    const msg = wrapPublic(res.publicMessage);
    const bytes = encodeMessage(msg);
    const ns = res.newState;
    if (resync) this.states.delete(name);
    const after = await this.epochState(ns, full);
    await this.followCommit(name, msg, BigInt(cur.epoch), after);
    this.states.set(name, ns);
    const proposals = res.publicMessage.content.commit.proposals.map((p) => ({ by: "value", proposal_type: p.proposal.proposalType }));
    const removed = res.publicMessage.content.commit.proposals
      .filter((p) => p.proposal.proposalType === "remove")
      .map((p) => beforeMembers.find((m) => m.leaf_index === p.proposal.remove.removed));
    const step = {
      kind: "external_commit",
      description: description ?? `${name} joins by external commit`,
      sender: { sender_type: "new_member_commit", leaf_index: ns.privatePath.leafIndex, identity: c.identity },
      epoch: cur.epoch,
      partition_key: cur.partition_key,
      wire_format: "mls_public_message",
      content_type: "commit",
      message: hex(bytes),
      external_join_input: withTree ? "group_info_with_tree" : "group_info+ratchet_tree",
      proposals,
      has_path: res.publicMessage.content.commit.path !== undefined,
      added: [{ leaf_index: ns.privatePath.leafIndex, identity: c.identity }],
      removed,
      welcome: null,
      after,
    };
    this.steps.push(step);
    this.current = after;
    return step;
  }
}
