/**
 * The member side of MLS on ts-mls: KeyPackages (one last resort), groups
 * created here or joined from a Welcome in the mailbox, application messages,
 * commits processed in the order the hub sequenced them, and each epoch's
 * partition key (docs/protocol.md §4, "Partition keys").
 */
import * as M from "ts-mls";
import { decodeKeyPackage, encodeKeyPackage, makeKeyPackageRef } from "ts-mls/keyPackage.js";
import { decodeRatchetTree, encodeRatchetTree } from "ts-mls/ratchetTree.js";
import { treeHashRoot } from "ts-mls/treeHash.js";
import { defaultClientConfig } from "ts-mls/clientConfig.js";
import { equalBytes, fromHex, fromUtf8, toHex, utf8 } from "./codec.js";
import { MemoryStorage, type Storage } from "./storage.js";
import type { MailboxEntry, MimidsClient } from "./client.js";
import { MimidsError } from "./errors.js";
import * as m from "./messages.js";
import { domainOf, type Remote } from "./remote.js";

/** MLS-Exporter label and length of the partition key (context: empty). */
export const PARTITION_KEY_LABEL = "mimi partition key";
export const PARTITION_KEY_LENGTH = 16;
/** last_resort KeyPackage extension (0x000A). */
export const EXT_LAST_RESORT = 0x000a;

const SUITE_NAME: M.CiphersuiteName = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";

/** The partition key of the state's epoch: MLS-Exporter("mimi partition key", "", 16). */
export async function partitionKeyOf(state: M.ClientState, impl: M.CiphersuiteImpl): Promise<Uint8Array> {
  return M.mlsExporter(state.keySchedule.exporterSecret, PARTITION_KEY_LABEL, new Uint8Array(0), PARTITION_KEY_LENGTH, impl);
}

/** What the application hears about a group. */
export type GroupEvent =
  | { type: "message"; group: Group; sender: string; text: string; counter: number; own: boolean }
  | { type: "epoch"; group: Group; epoch: bigint; members: string[]; committer: string }
  | { type: "joined"; group: Group }
  | { type: "removed"; group: Group }
  | { type: "fork"; group: Group; detail: string; lost: boolean }
  | { type: "welcome_unusable"; groupId: Uint8Array; detail: string }
  | { type: "undecryptable"; group: Group; counter: number; detail: string };

interface StoredKeyPackage {
  publicPackage: M.KeyPackage;
  privatePackage: M.PrivateKeyPackage;
  lastResort: boolean;
}

/** One client of a user as an MLS member: its KeyPackages and groups. */
export class Member {
  readonly groups = new Map<string, Group>();
  private keyPackages = new Map<string, StoredKeyPackage>();
  private listeners: ((e: GroupEvent) => void)[] = [];

  private constructor(
    readonly client: MimidsClient,
    readonly remote: Remote,
    readonly identity: string,
    readonly impl: M.CiphersuiteImpl,
    readonly storage: Storage,
  ) {}

  /**
   * A member for the client's user; call after connect (the identity is the user
   * URI). With a storage, the KeyPackages and groups stored there come back and
   * each group follows its partition again from the stored counter.
   */
  static async create(client: MimidsClient, remote: Remote, storage: Storage = new MemoryStorage()): Promise<Member> {
    const s = client.info ?? (await client.ready());
    const impl = await M.getCiphersuiteImpl(M.getCiphersuiteFromName(SUITE_NAME));
    const mb = new Member(client, remote, s.userId, impl, storage);
    await mb.restore();
    return mb;
  }

  private async restore(): Promise<void> {
    for (const k of await this.storage.keys("kp:")) {
      const v = await this.storage.get(k);
      if (v === undefined) continue;
      const o = JSON.parse(v) as { pub: string; init: string; hpke: string; sig: string; lastResort: boolean };
      const pub = decodeKeyPackage(fromHex(o.pub), 0)?.[0];
      if (!pub) continue;
      this.keyPackages.set(k.slice(3), {
        publicPackage: pub,
        privatePackage: { initPrivateKey: fromHex(o.init), hpkePrivateKey: fromHex(o.hpke), signaturePrivateKey: fromHex(o.sig) },
        lastResort: o.lastResort,
      });
    }
    for (const k of await this.storage.keys("group:")) {
      const v = await this.storage.get(k);
      if (v === undefined) continue;
      const o = JSON.parse(v) as { state: string; counter: number };
      const gs = M.decodeGroupState(fromHex(o.state), 0)?.[0];
      if (!gs) continue;
      const g = await Group.open(this, { ...gs, clientConfig: defaultClientConfig });
      this.groups.set(k.slice(6), g);
      await g.follow(o.counter);
    }
  }

  private async saveKeyPackage(ref: string, k: StoredKeyPackage): Promise<void> {
    await this.storage.set(
      `kp:${ref}`,
      JSON.stringify({
        pub: toHex(encodeKeyPackage(k.publicPackage)),
        init: toHex(k.privatePackage.initPrivateKey),
        hpke: toHex(k.privatePackage.hpkePrivateKey),
        sig: toHex(k.privatePackage.signaturePrivateKey),
        lastResort: k.lastResort,
      }),
    );
  }

  /** @internal Persists a group's state and position. */
  async saveGroup(g: Group): Promise<void> {
    const key = `group:${toHex(g.groupId)}`;
    if (g.isStopped) await this.storage.delete(key);
    else await this.storage.set(key, JSON.stringify({ state: toHex(M.encodeGroupState(g.state)), counter: g.counter }));
  }

  on(fn: (e: GroupEvent) => void): void {
    this.listeners.push(fn);
  }
  /** @internal */
  emit(e: GroupEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** Makes and uploads `count` one-time KeyPackages, and a last resort when asked. */
  async publishKeyPackages(count: number, lastResort = true): Promise<Uint8Array[]> {
    const made: StoredKeyPackage[] = [];
    const cred: M.Credential = { credentialType: "basic", identity: utf8(this.identity) };
    for (let i = 0; i < count + (lastResort ? 1 : 0); i++) {
      const lr = lastResort && i === count;
      const caps = M.defaultCapabilities();
      if (lr) caps.extensions = [EXT_LAST_RESORT, ...caps.extensions];
      const exts: M.Extension[] = lr ? [{ extensionType: EXT_LAST_RESORT, extensionData: new Uint8Array(0) }] : [];
      const kp = await M.generateKeyPackage(cred, caps, M.defaultLifetime, exts, this.impl);
      made.push({ ...kp, lastResort: lr });
    }
    const wire = made.map((k) => M.encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: k.publicPackage }));
    const refs = await this.client.uploadKeyPackages(wire);
    for (const [i, r] of refs.entries()) {
      this.keyPackages.set(toHex(r), made[i]);
      await this.saveKeyPackage(toHex(r), made[i]);
    }
    return refs;
  }

  /** Creates a group hosted by the own provider. */
  async createGroup(): Promise<Group> {
    const kp = await M.generateKeyPackage({ credentialType: "basic", identity: utf8(this.identity) }, M.defaultCapabilities(), M.defaultLifetime, [], this.impl);
    const groupId = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const state = await M.createGroup(groupId, kp.publicPackage, kp.privatePackage, [], this.impl);
    const g = await Group.open(this, state);
    const gi = await M.createGroupInfoWithExternalPubAndRatchetTree(state, [], this.impl);
    await this.client.createGroup({
      groupInfo: M.encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi }),
      ratchetTree: null,
      partitionKey: g.partitionKey,
      welcomeData: null,
    });
    this.groups.set(toHex(groupId), g);
    await g.follow(0);
    await this.saveGroup(g);
    return g;
  }

  /** Handles one mailbox entry; pass it as the client's onMailbox. */
  async handleMailbox(e: MailboxEntry): Promise<void> {
    if (e.kind !== m.Kind.welcome) return;
    const d = m.decodeWelcomeDelivery(e.payload);
    const stored = d.keyPackageRefs.map((r) => this.keyPackages.get(toHex(r))).find((k) => k !== undefined);
    if (!stored) {
      this.emit({ type: "welcome_unusable", groupId: d.groupId, detail: "no private KeyPackage for its references (already used or unknown)" });
      return;
    }
    const msg = M.decodeMlsMessage(d.welcome, 0)?.[0];
    if (!msg || msg.wireformat !== "mls_welcome") throw new Error("WelcomeDelivery without a Welcome");
    let state: M.ClientState;
    try {
      state = await M.joinGroup(msg.welcome, stored.publicPackage, stored.privatePackage, M.emptyPskIndex, this.impl);
    } catch (err) {
      this.emit({ type: "welcome_unusable", groupId: d.groupId, detail: String(err) });
      return;
    }
    // One-time KeyPackages are used up; the last resort stays.
    if (!stored.lastResort)
      for (const r of d.keyPackageRefs) {
        this.keyPackages.delete(toHex(r));
        await this.storage.delete(`kp:${toHex(r)}`);
      }
    const key = toHex(state.groupContext.groupId);
    this.groups.get(key)?.stop();
    const g = await Group.open(this, state);
    this.groups.set(key, g);
    await g.follow(0);
    await this.saveGroup(g);
    this.emit({ type: "joined", group: g });
  }

  /**
   * Joins a group by external commit from the GroupInfo its hub serves
   * (group_info, then external_join; docs/protocol.md §4.8).
   */
  async joinExternal(groupId: Uint8Array): Promise<Group> {
    const r = await this.client.groupInfo(groupId);
    const gi = M.decodeMlsMessage(r.groupInfo, 0)?.[0];
    if (!gi || gi.wireformat !== "mls_group_info") throw new Error("group_info answered no GroupInfo");
    const tree = r.ratchetTree ? decodeRatchetTree(r.ratchetTree, 0)?.[0] : undefined;
    const kp = await M.generateKeyPackage({ credentialType: "basic", identity: utf8(this.identity) }, M.defaultCapabilities(), M.defaultLifetime, [], this.impl);
    const { publicMessage, newState } = await M.joinGroupExternal(gi.groupInfo, kp.publicPackage, kp.privatePackage, false, this.impl, tree);
    const next = await partitionKeyOf(newState, this.impl);
    const ngi = await M.createGroupInfoWithExternalPubAndRatchetTree(newState, [], this.impl);
    await this.client.externalJoin({
      message: M.encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage }),
      commitData: { nextPartitionKey: next, groupInfo: M.encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo: ngi }), welcomeData: null },
    });
    const key = toHex(groupId);
    this.groups.get(key)?.stop();
    const g = await Group.open(this, newState);
    this.groups.set(key, g);
    await g.follow(0);
    await this.saveGroup(g);
    this.emit({ type: "joined", group: g });
    return g;
  }

  /** Fetches one KeyPackage of each user through the relay. */
  async fetchKeyPackages(users: string[]): Promise<{ user: string; keyPackage: M.KeyPackage; provider: string }[]> {
    const out = [];
    for (const user of users) {
      const { keyPackage, provider } = await this.remote.keyPackageOf(user, 1);
      const kp = decodeKeyPackage(keyPackage, 0)?.[0];
      if (!kp) throw new Error(`KeyPackage of ${user} does not decode`);
      if (fromUtf8(credentialIdentity(kp.leafNode.credential)) !== user) throw new Error(`KeyPackage of ${user} names another identity`);
      out.push({ user, keyPackage: kp, provider });
    }
    return out;
  }
}

function credentialIdentity(c: M.Credential): Uint8Array {
  return c.credentialType === "basic" ? c.identity : new Uint8Array(0);
}

/** The result of a commit this member sent. */
export interface CommitOutcome {
  /** The commit was the first sequenced in its partition: the group follows it. */
  won: boolean;
  counter: number;
}

interface PendingCommit {
  bytes: Uint8Array;
  newState: M.ClientState;
  done: (won: boolean) => void;
}

/** One group: its MLS state and the partition it reads and sends to. */
export class Group {
  partitionKey!: Uint8Array;
  masked!: Uint8Array;
  /** Masked keys of partitions this group left (late application messages are still read). */
  private old = new Set<string>();
  private sent = new Set<string>();
  private pending: PendingCommit | undefined;
  private stopped = false;
  /** Counter of the next message in the current partition. */
  counter = 0;
  /** Serializes every change of `state` (sends and received messages). */
  private lock: Promise<unknown> = Promise.resolve();

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private constructor(
    readonly member: Member,
    public state: M.ClientState,
  ) {}

  static async open(member: Member, state: M.ClientState): Promise<Group> {
    const g = new Group(member, state);
    await g.setEpoch(state);
    return g;
  }

  get groupId(): Uint8Array {
    return this.state.groupContext.groupId;
  }
  get epoch(): bigint {
    return this.state.groupContext.epoch;
  }
  /** Member identities in leaf order. */
  members(): string[] {
    return membersOf(this.state);
  }
  get treeHash(): Uint8Array {
    return this.state.groupContext.treeHash;
  }

  private async setEpoch(state: M.ClientState): Promise<void> {
    this.state = state;
    this.partitionKey = await partitionKeyOf(state, this.member.impl);
    this.masked = await this.member.impl.hash.digest(this.partitionKey);
    this.counter = 0;
  }

  /** Subscribes to the current partition from counter. */
  async follow(counter: number): Promise<void> {
    const masked = this.masked;
    const pk = this.partitionKey;
    this.counter = counter;
    const sub = () => this.member.client.subscribe(pk, counter, (c, msg) => this.onPush(masked, c, msg), undefined, masked);
    try {
      await sub();
    } catch (err) {
      // A follower learns a partition's hub from a `receive` (docs/protocol.md §5.10):
      // a client just welcomed to a group hosted elsewhere reads first, then subscribes.
      if (!(err instanceof MimidsError) || err.codeName !== "not_found") throw err;
      await this.member.client.receive(pk, counter);
      await sub();
    }
  }

  stop(): void {
    this.stopped = true;
  }
  get isStopped(): boolean {
    return this.stopped;
  }

  /** Encrypts and sends an application message; resolves with its counter. */
  async send(text: string): Promise<number> {
    const bytes = await this.locked(() => this.encrypt(text));
    const pk = this.partitionKey;
    // One send in flight per group: the server may sequence concurrent requests in
    // any order, and a chat wants the order the user typed.
    const run = this.sendChain.then(() => this.member.client.send({ message: bytes, partitionKey: pk, commitData: null }));
    this.sendChain = run.catch(() => undefined);
    return run;
  }
  private sendChain: Promise<unknown> = Promise.resolve();

  private async encrypt(text: string): Promise<Uint8Array> {
    const body = utf8(JSON.stringify({ from: this.member.identity, text }));
    const { newState, privateMessage } = await M.createApplicationMessage(this.state, body, this.member.impl);
    this.state = newState;
    const bytes = M.encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage });
    this.sent.add(toHex(bytes));
    await this.member.saveGroup(this);
    return bytes;
  }

  /** Adds users: fetches their KeyPackages, commits, and sends the Welcome naming their providers. */
  async add(users: string[]): Promise<CommitOutcome> {
    return this.addKeyPackages(await this.member.fetchKeyPackages(users));
  }

  /** Adds members from KeyPackages fetched before (Member.fetchKeyPackages). */
  async addKeyPackages(kps: { keyPackage: M.KeyPackage; provider: string }[]): Promise<CommitOutcome> {
    const proposals: M.Proposal[] = kps.map((k) => ({ proposalType: "add", add: { keyPackage: k.keyPackage } }));
    const providerByRef = new Map<string, string>();
    for (const k of kps) providerByRef.set(toHex(await makeKeyPackageRef(k.keyPackage, this.member.impl.hash)), k.provider);
    return this.commit(proposals, (w) => w.secrets.map((s) => providerByRef.get(toHex(s.newMember)) ?? ""));
  }

  /** Removes every leaf of the given users. */
  async remove(users: string[]): Promise<CommitOutcome> {
    const proposals: M.Proposal[] = [];
    this.state.ratchetTree.forEach((n, i) => {
      if (i % 2 === 0 && n !== undefined && n.nodeType === "leaf" && users.includes(fromUtf8(credentialIdentity(n.leaf.credential))))
        proposals.push({ proposalType: "remove", remove: { removed: i / 2 } });
    });
    if (proposals.length === 0) throw new Error("none of these users is a member");
    return this.commit(proposals, () => []);
  }

  /** Commits the proposals (a PublicMessage, so the hub can follow the group's public state). */
  async commit(proposals: M.Proposal[], providers: (w: M.Welcome) => string[]): Promise<CommitOutcome> {
    const { counter, decided } = await this.locked(() => this.sendCommit(proposals, providers));
    return { won: await decided, counter };
  }

  private async sendCommit(proposals: M.Proposal[], providers: (w: M.Welcome) => string[]): Promise<{ counter: number; decided: Promise<boolean> }> {
    const impl = this.member.impl;
    const res = await M.createCommit({ state: this.state, cipherSuite: impl }, { wireAsPublicMessage: true, ratchetTreeExtension: true, extraProposals: proposals });
    const bytes = M.encodeMlsMessage(res.commit);
    const gi = await M.createGroupInfoWithExternalPubAndRatchetTree(res.newState, [], impl);
    const next = await partitionKeyOf(res.newState, impl);
    const welcomeData =
      res.welcome === undefined
        ? null
        : { welcome: M.encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome }), serviceProviders: providers(res.welcome) };
    const decided = new Promise<boolean>((done) => (this.pending = { bytes, newState: res.newState, done }));
    const counter = await this.member.client.send({
      message: bytes,
      partitionKey: this.partitionKey,
      commitData: { nextPartitionKey: next, groupInfo: M.encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi }), welcomeData },
    });
    return { counter, decided };
  }

  private onPush(masked: Uint8Array, counter: number, hm: m.HubMessage): Promise<void> {
    return this.locked(async () => {
      await this.handlePush(masked, counter, hm);
      await this.member.saveGroup(this);
    });
  }

  private async handlePush(masked: Uint8Array, counter: number, hm: m.HubMessage): Promise<void> {
    if (this.stopped) return;
    const current = equalBytes(masked, this.masked);
    if (current) this.counter = counter + 1;
    const msg = M.decodeMlsMessage(hm.message, 0)?.[0];
    if (!msg || (msg.wireformat !== "mls_private_message" && msg.wireformat !== "mls_public_message")) return;
    if (hm.contentType === "commit" || hm.contentType === "proposal") {
      if (!current) {
        if (hm.contentType === "commit")
          this.member.emit({ type: "fork", group: this, lost: false, detail: `another commit at counter ${counter} of a partition this group left: not followed` });
        return;
      }
      if (hm.contentType === "proposal") {
        this.state = (await M.processMessage(msg, this.state, M.emptyPskIndex, M.acceptAll, this.member.impl)).newState;
        return;
      }
      await this.onCommit(msg, hm, counter);
      return;
    }
    // Application message.
    const own = this.sent.delete(toHex(hm.message));
    if (own) {
      this.member.emit({ type: "message", group: this, sender: this.member.identity, text: "", counter, own: true });
      return;
    }
    let r;
    try {
      r = await M.processMessage(msg, this.state, M.emptyPskIndex, M.acceptAll, this.member.impl);
    } catch (err) {
      this.member.emit({ type: "undecryptable", group: this, counter, detail: String(err) });
      return;
    }
    if (r.kind !== "applicationMessage") return;
    this.state = r.newState;
    const { from, text } = parseChat(r.message);
    this.member.emit({ type: "message", group: this, sender: from, text, counter, own: false });
  }

  private async onCommit(msg: M.MlsPrivateMessage | M.MlsPublicMessage, hm: m.HubMessage, counter: number): Promise<void> {
    const p = this.pending;
    let committer = "";
    if (p && equalBytes(p.bytes, hm.message)) {
      this.pending = undefined;
      committer = this.member.identity;
      await this.advance(p.newState);
      p.done(true);
    } else {
      if (p) {
        this.pending = undefined;
        p.done(false);
        this.member.emit({ type: "fork", group: this, lost: true, detail: `own commit lost the race to counter ${counter}: following the first sequenced commit` });
      }
      committer = senderOf(this.state, msg);
      const before = leafIndexOf(this.state);
      let r;
      try {
        r = await M.processMessage(msg, this.state, M.emptyPskIndex, M.acceptAll, this.member.impl);
      } catch (err) {
        if (removesLeaf(msg, before)) return this.removed();
        throw err;
      }
      if (r.newState.groupActiveState.kind === "removedFromGroup" || removesLeaf(msg, before)) return this.removed();
      await this.advance(r.newState);
    }
    this.member.emit({ type: "epoch", group: this, epoch: this.epoch, members: this.members(), committer });
  }

  private removed(): void {
    this.stopped = true;
    void this.member.saveGroup(this);
    this.member.emit({ type: "removed", group: this });
  }

  private async advance(state: M.ClientState): Promise<void> {
    this.old.add(toHex(this.masked));
    await this.setEpoch(state);
    await this.follow(0);
  }

  /** The public view: what the hub must agree with. */
  async view(): Promise<{ epoch: bigint; treeHash: string; members: string[] }> {
    return { epoch: this.epoch, treeHash: toHex(await treeHashRoot(this.state.ratchetTree, this.member.impl.hash)), members: this.members() };
  }

  /** The ratchet tree, encoded. */
  ratchetTree(): Uint8Array {
    return encodeRatchetTree(this.state.ratchetTree);
  }
}

/**
 * Application messages carry {"from": user URI, "text": string} as JSON. ts-mls does
 * not return a PrivateMessage's sender leaf, so `from` is the sender's own claim
 * (any member could spoof another member's name; not an outsider).
 */
function parseChat(b: Uint8Array): { from: string; text: string } {
  try {
    const v = JSON.parse(fromUtf8(b)) as { from?: unknown; text?: unknown };
    return { from: typeof v.from === "string" ? v.from : "", text: typeof v.text === "string" ? v.text : "" };
  } catch {
    return { from: "", text: fromUtf8(b) };
  }
}

function membersOf(state: M.ClientState): string[] {
  const out: string[] = [];
  state.ratchetTree.forEach((n, i) => {
    if (i % 2 === 0 && n !== undefined && n.nodeType === "leaf") out.push(fromUtf8(credentialIdentity(n.leaf.credential)));
  });
  return out;
}

function leafIndexOf(state: M.ClientState): number {
  return state.privatePath.leafIndex;
}

function removesLeaf(msg: M.MlsPrivateMessage | M.MlsPublicMessage, leaf: number): boolean {
  if (msg.wireformat !== "mls_public_message") return false;
  const c = msg.publicMessage.content;
  if (c.contentType !== "commit") return false;
  return c.commit.proposals.some((p) => p.proposalOrRefType === "proposal" && p.proposal.proposalType === "remove" && p.proposal.remove.removed === leaf);
}

function senderOf(state: M.ClientState, msg: M.MlsPrivateMessage | M.MlsPublicMessage): string {
  let leaf: number | undefined;
  if (msg.wireformat === "mls_public_message" && msg.publicMessage.content.sender.senderType === "member") leaf = msg.publicMessage.content.sender.leafIndex;
  if (leaf === undefined) return "";
  const n = state.ratchetTree[leaf * 2];
  return n !== undefined && n.nodeType === "leaf" ? fromUtf8(credentialIdentity(n.leaf.credential)) : "";
}

export { encodeKeyPackage, domainOf };
