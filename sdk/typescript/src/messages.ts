/**
 * Request and response bodies of the socket methods, mailbox payloads and the
 * Oblivious HTTP inner bodies (docs/protocol.md §1.4, §1.5, §3, §4.1).
 */
import { decodeMlsMessage } from "ts-mls";
import { DecodeError, Reader, Writer } from "./codec.js";

/** Request methods (docs/protocol.md §1.5). */
export const Method = {
  ping: 0x0001,
  mailboxStatus: 0x0002,
  keyPackageUpload: 0x0101,
  keyPackageCount: 0x0102,
  createGroup: 0x0201,
  send: 0x0202,
  receive: 0x0203,
  subscribe: 0x0204,
  unsubscribe: 0x0205,
  groupInfo: 0x0206,
  externalJoin: 0x0207,
  report: 0x0208,
  groupInfoAt: 0x0209,
  externalJoinAt: 0x020a,
} as const;

/** Mailbox entry kinds (docs/protocol.md §1.4). */
export const Kind = { notice: 1, welcome: 2, groupMessage: 3, keyPackagesLow: 4, keyPackagesExhausted: 5 } as const;

/** A partition key is exactly 16 bytes. */
export const PARTITION_KEY_SIZE = 16;

export type ContentType = "application" | "proposal" | "commit";
export type WireFormat = "mls_public_message" | "mls_private_message" | "mls_welcome" | "mls_group_info" | "mls_key_package";

/** The length, wire format and (for framed messages) content type of one MLSMessage. */
export interface MlsMessageInfo {
  bytes: Uint8Array;
  wireFormat: WireFormat;
  contentType?: ContentType;
}

/** Reads one self-delimiting MLSMessage from r (ts-mls decodes it). */
export function readMlsMessage(r: Reader, field: string): MlsMessageInfo {
  const rest = r.rest();
  let d;
  try {
    d = decodeMlsMessage(rest, 0);
  } catch (e) {
    throw new DecodeError(field, `not an MLSMessage: ${String(e)}`);
  }
  if (d === undefined) throw new DecodeError(field, "not an MLSMessage");
  const [m, n] = d;
  const bytes = rest.slice(0, n);
  r.skip(n);
  let contentType: ContentType | undefined;
  if (m.wireformat === "mls_public_message") contentType = m.publicMessage.content.contentType;
  if (m.wireformat === "mls_private_message") contentType = m.privateMessage.contentType;
  return { bytes, wireFormat: m.wireformat, contentType };
}

/** The info of a complete MLSMessage. */
export function mlsMessageInfo(b: Uint8Array, field = "message"): MlsMessageInfo {
  const r = new Reader(b);
  const m = readMlsMessage(r, field);
  r.done(field);
  return m;
}

function readPartitionKey(r: Reader, field: string): Uint8Array {
  const k = r.opaque(field, 64);
  if (k.length !== PARTITION_KEY_SIZE) throw new DecodeError(field, `partition key of ${k.length} bytes`);
  return k;
}

function writePartitionKey(w: Writer, k: Uint8Array): void {
  if (k.length !== PARTITION_KEY_SIZE) throw new RangeError(`partition key of ${k.length} bytes`);
  w.opaque(k);
}

function expectWire(m: MlsMessageInfo, want: WireFormat, field: string): Uint8Array {
  if (m.wireFormat !== want) throw new DecodeError(field, `wire format ${m.wireFormat}, want ${want}`);
  return m.bytes;
}

// ---- groups (§4.1) ----

export interface WelcomeData {
  welcome: Uint8Array;
  serviceProviders: string[];
}
export interface CommitData {
  nextPartitionKey: Uint8Array;
  groupInfo: Uint8Array | null;
  welcomeData: WelcomeData | null;
}

function writeWelcomeData(w: Writer, d: WelcomeData): void {
  w.raw(d.welcome).vector((v) => d.serviceProviders.forEach((p) => v.string(p)));
}
function readWelcomeData(r: Reader): WelcomeData {
  const welcome = expectWire(readMlsMessage(r, "WelcomeData.welcome"), "mls_welcome", "WelcomeData.welcome");
  const v = r.vector("WelcomeData.service_providers");
  const serviceProviders: string[] = [];
  while (v.more()) serviceProviders.push(v.string("ServiceProviderId", 255));
  return { welcome, serviceProviders };
}
function writeCommitData(w: Writer, c: CommitData): void {
  writePartitionKey(w, c.nextPartitionKey);
  w.optional(c.groupInfo !== null);
  if (c.groupInfo !== null) w.raw(c.groupInfo);
  w.optional(c.welcomeData !== null);
  if (c.welcomeData !== null) writeWelcomeData(w, c.welcomeData);
}
function readCommitData(r: Reader): CommitData {
  const nextPartitionKey = readPartitionKey(r, "CommitData.next_partition_key");
  const groupInfo = r.optional("CommitData.group_info")
    ? expectWire(readMlsMessage(r, "CommitData.group_info"), "mls_group_info", "CommitData.group_info")
    : null;
  const welcomeData = r.optional("CommitData.welcome_data") ? readWelcomeData(r) : null;
  return { nextPartitionKey, groupInfo, welcomeData };
}

export interface CreateGroupRequest {
  groupInfo: Uint8Array;
  ratchetTree: Uint8Array | null;
  partitionKey: Uint8Array;
  welcomeData: WelcomeData | null;
}
export function encodeCreateGroupRequest(q: CreateGroupRequest): Uint8Array {
  const w = new Writer(q.groupInfo.length + 64).raw(q.groupInfo).optional(q.ratchetTree !== null);
  if (q.ratchetTree !== null) w.raw(q.ratchetTree);
  writePartitionKey(w, q.partitionKey);
  w.optional(q.welcomeData !== null);
  if (q.welcomeData !== null) writeWelcomeData(w, q.welcomeData);
  return w.bytes();
}
export function decodeCreateGroupRequest(b: Uint8Array): CreateGroupRequest {
  const r = new Reader(b);
  const groupInfo = expectWire(readMlsMessage(r, "group_info"), "mls_group_info", "group_info");
  let ratchetTree: Uint8Array | null = null;
  if (r.optional("ratchet_tree")) {
    // RatchetTree is optional<Node> ratchet_tree<V>: one vector.
    const start = r.offset;
    r.vector("ratchet_tree");
    ratchetTree = b.slice(start, r.offset);
  }
  const partitionKey = readPartitionKey(r, "partition_key");
  const welcomeData = r.optional("welcome_data") ? readWelcomeData(r) : null;
  r.done("CreateGroupRequest");
  return { groupInfo, ratchetTree, partitionKey, welcomeData };
}

export interface MaskedKeyBody {
  maskedPartitionKey: Uint8Array;
}
export function encodeMaskedKey(q: MaskedKeyBody): Uint8Array {
  return new Writer().opaque(q.maskedPartitionKey).bytes();
}
export function decodeMaskedKey(b: Uint8Array): MaskedKeyBody {
  const r = new Reader(b);
  const maskedPartitionKey = r.opaque("masked_partition_key", 64);
  r.done("masked_partition_key");
  return { maskedPartitionKey };
}

export interface SendRequest {
  message: Uint8Array;
  partitionKey: Uint8Array;
  commitData: CommitData | null;
}
export function encodeSendRequest(q: SendRequest): Uint8Array {
  const w = new Writer(q.message.length + 64).raw(q.message);
  writePartitionKey(w, q.partitionKey);
  if (q.commitData !== null) writeCommitData(w, q.commitData);
  return w.bytes();
}
export function decodeSendRequest(b: Uint8Array): SendRequest {
  const r = new Reader(b);
  const m = readMlsMessage(r, "message");
  const partitionKey = readPartitionKey(r, "partition_key");
  const commitData = m.contentType === "commit" ? readCommitData(r) : null;
  r.done("SendRequest");
  return { message: m.bytes, partitionKey, commitData };
}

export interface CounterBody {
  counter: number;
}
export function encodeCounter(q: CounterBody): Uint8Array {
  return new Writer().u32(q.counter).bytes();
}
export function decodeCounter(b: Uint8Array): CounterBody {
  const r = new Reader(b);
  const counter = r.u32("counter");
  r.done("counter");
  return { counter };
}

/** ReceiveRequest and SubscribeRequest have the same shape. */
export interface PartitionPosition {
  partitionKey: Uint8Array;
  counter: number;
}
export function encodePartitionPosition(q: PartitionPosition): Uint8Array {
  const w = new Writer();
  writePartitionKey(w, q.partitionKey);
  return w.u32(q.counter).bytes();
}
export function decodePartitionPosition(b: Uint8Array): PartitionPosition {
  const r = new Reader(b);
  const partitionKey = readPartitionKey(r, "partition_key");
  const counter = r.u32("counter");
  r.done("PartitionPosition");
  return { partitionKey, counter };
}

/** The draft's Message: a sequenced MLS message; commits add the opened partition. */
export interface HubMessage {
  message: Uint8Array;
  contentType?: ContentType;
  /** Masked key of the partition the commit opened (commits only). */
  nextPartitionKey: Uint8Array | null;
  groupInfo: Uint8Array | null;
}
function writeHubMessage(w: Writer, m: HubMessage): void {
  w.raw(m.message);
  if (m.nextPartitionKey !== null) {
    w.opaque(m.nextPartitionKey).optional(m.groupInfo !== null);
    if (m.groupInfo !== null) w.raw(m.groupInfo);
  }
}
function readHubMessage(r: Reader): HubMessage {
  const m = readMlsMessage(r, "Message.message");
  if (m.contentType !== "commit") return { message: m.bytes, contentType: m.contentType, nextPartitionKey: null, groupInfo: null };
  const nextPartitionKey = r.opaque("Message.next_partition_key", 64);
  const groupInfo = r.optional("Message.group_info")
    ? expectWire(readMlsMessage(r, "Message.group_info"), "mls_group_info", "Message.group_info")
    : null;
  return { message: m.bytes, contentType: "commit", nextPartitionKey, groupInfo };
}
export function encodeHubMessage(m: HubMessage): Uint8Array {
  const w = new Writer(m.message.length + 64);
  writeHubMessage(w, m);
  return w.bytes();
}
export function decodeHubMessage(b: Uint8Array): HubMessage {
  const r = new Reader(b);
  const m = readHubMessage(r);
  r.done("Message");
  return m;
}

export interface HintedEpoch {
  maskedPartitionKey: Uint8Array;
  epoch: HubMessage[];
}
export interface ReceiveResponse {
  epoch: HubMessage[];
  hints: HintedEpoch[];
}
function writeEpoch(w: Writer, e: HubMessage[]): void {
  w.vector((v) => e.forEach((m) => writeHubMessage(v, m)));
}
function readEpoch(r: Reader): HubMessage[] {
  const v = r.vector("Epoch.messages");
  const out: HubMessage[] = [];
  while (v.more()) out.push(readHubMessage(v));
  return out;
}
export function encodeReceiveResponse(q: ReceiveResponse): Uint8Array {
  const w = new Writer();
  writeEpoch(w, q.epoch);
  w.vector((v) => q.hints.forEach((h) => writeEpoch(v.opaque(h.maskedPartitionKey), h.epoch)));
  return w.bytes();
}
export function decodeReceiveResponse(b: Uint8Array): ReceiveResponse {
  const r = new Reader(b);
  const epoch = readEpoch(r);
  const hv = r.vector("hints");
  const hints: HintedEpoch[] = [];
  while (hv.more()) hints.push({ maskedPartitionKey: hv.opaque("masked_partition_key", 64), epoch: readEpoch(hv) });
  r.done("ReceiveResponse");
  return { epoch, hints };
}

export interface GroupIdBody {
  groupId: Uint8Array;
}
export function encodeGroupId(q: GroupIdBody): Uint8Array {
  return new Writer().opaque(q.groupId).bytes();
}
export function decodeGroupId(b: Uint8Array): GroupIdBody {
  const r = new Reader(b);
  const groupId = r.opaque("group_id");
  r.done("GroupInfoRequest");
  return { groupId };
}

export interface GroupInfoResponse {
  groupInfo: Uint8Array;
  ratchetTree: Uint8Array | null;
}
export function encodeGroupInfoResponse(q: GroupInfoResponse): Uint8Array {
  const w = new Writer().raw(q.groupInfo).optional(q.ratchetTree !== null);
  if (q.ratchetTree !== null) w.raw(q.ratchetTree);
  return w.bytes();
}
export function decodeGroupInfoResponse(b: Uint8Array): GroupInfoResponse {
  const r = new Reader(b);
  const groupInfo = expectWire(readMlsMessage(r, "group_info"), "mls_group_info", "group_info");
  let ratchetTree: Uint8Array | null = null;
  if (r.optional("ratchet_tree")) {
    const start = r.offset;
    r.vector("ratchet_tree");
    ratchetTree = b.slice(start, r.offset);
  }
  r.done("GroupInfoResponse");
  return { groupInfo, ratchetTree };
}

export interface ExternalJoinRequest {
  message: Uint8Array;
  commitData: CommitData;
}
export function encodeExternalJoinRequest(q: ExternalJoinRequest): Uint8Array {
  const w = new Writer().raw(q.message);
  writeCommitData(w, q.commitData);
  return w.bytes();
}
export function decodeExternalJoinRequest(b: Uint8Array): ExternalJoinRequest {
  const r = new Reader(b);
  const message = readMlsMessage(r, "message").bytes;
  const commitData = readCommitData(r);
  r.done("ExternalJoinRequest");
  return { message, commitData };
}

export interface ExternalJoinResponse {
  maskedPartitionKey: Uint8Array;
  counter: number;
}
export function encodeExternalJoinResponse(q: ExternalJoinResponse): Uint8Array {
  return new Writer().opaque(q.maskedPartitionKey).u32(q.counter).bytes();
}
export function decodeExternalJoinResponse(b: Uint8Array): ExternalJoinResponse {
  const r = new Reader(b);
  const out = { maskedPartitionKey: r.opaque("masked_partition_key", 64), counter: r.u32("counter") };
  r.done("ExternalJoinResponse");
  return out;
}

/** ReportKind: member(1), message(2), hub(3), follower(4). */
export interface Report {
  kind: number;
  groupId: Uint8Array;
  subject: Uint8Array;
  reason: string;
}
export function encodeReport(q: Report): Uint8Array {
  return new Writer().u8(q.kind).opaque(q.groupId).opaque(q.subject).string(q.reason).bytes();
}
export function decodeReport(b: Uint8Array): Report {
  const r = new Reader(b);
  const out = { kind: r.u8("kind"), groupId: r.opaque("group_id"), subject: r.opaque("subject", 4096), reason: r.string("reason", 4096) };
  r.done("Report");
  return out;
}
export function encodeReportResponse(q: { reportId: bigint }): Uint8Array {
  return new Writer().u64(q.reportId).bytes();
}
export function decodeReportResponse(b: Uint8Array): { reportId: bigint } {
  const r = new Reader(b);
  const reportId = r.u64("report_id");
  r.done("report_id");
  return { reportId };
}

export interface WelcomeDelivery {
  groupId: Uint8Array;
  keyPackageRefs: Uint8Array[];
  welcome: Uint8Array;
}
export function encodeWelcomeDelivery(q: WelcomeDelivery): Uint8Array {
  return new Writer()
    .opaque(q.groupId)
    .vector((v) => q.keyPackageRefs.forEach((k) => v.opaque(k)))
    .raw(q.welcome)
    .bytes();
}
export function decodeWelcomeDelivery(b: Uint8Array): WelcomeDelivery {
  const r = new Reader(b);
  const groupId = r.opaque("group_id");
  const v = r.vector("key_package_refs");
  const keyPackageRefs: Uint8Array[] = [];
  while (v.more()) keyPackageRefs.push(v.opaque("KeyPackageRef", 64));
  const welcome = expectWire(readMlsMessage(r, "welcome"), "mls_welcome", "welcome");
  r.done("WelcomeDelivery");
  return { groupId, keyPackageRefs, welcome };
}

// ---- KeyPackages and mailbox payloads (§1, §3) ----

function encodeOpaqueList(l: Uint8Array[]): Uint8Array {
  return new Writer().vector((v) => l.forEach((x) => v.opaque(x))).bytes();
}
function decodeOpaqueList(b: Uint8Array, field: string): Uint8Array[] {
  const r = new Reader(b);
  const v = r.vector(field);
  const out: Uint8Array[] = [];
  while (v.more()) out.push(v.opaque(field));
  r.done(field);
  return out;
}
export const encodeKeyPackageUpload = (q: { keyPackages: Uint8Array[] }): Uint8Array => encodeOpaqueList(q.keyPackages);
export const decodeKeyPackageUpload = (b: Uint8Array): { keyPackages: Uint8Array[] } => ({
  keyPackages: decodeOpaqueList(b, "key_packages"),
});
export const encodeKeyPackageUploadResult = (q: { refs: Uint8Array[] }): Uint8Array => encodeOpaqueList(q.refs);
export const decodeKeyPackageUploadResult = (b: Uint8Array): { refs: Uint8Array[] } => ({ refs: decodeOpaqueList(b, "refs") });

export const encodeCipherSuite = (q: { cipherSuite: number }): Uint8Array => new Writer().u16(q.cipherSuite).bytes();
export function decodeCipherSuite(b: Uint8Array): { cipherSuite: number } {
  const r = new Reader(b);
  const cipherSuite = r.u16("cipher_suite");
  r.done("cipher_suite");
  return { cipherSuite };
}

export interface KeyPackageCount {
  cipherSuite: number;
  available: number;
  lastResort: boolean;
}
export const encodeKeyPackageCount = (q: KeyPackageCount): Uint8Array =>
  new Writer().u16(q.cipherSuite).u32(q.available).u8(q.lastResort ? 1 : 0).bytes();
export function decodeKeyPackageCount(b: Uint8Array): KeyPackageCount {
  const r = new Reader(b);
  const out = { cipherSuite: r.u16("cipher_suite"), available: r.u32("available"), lastResort: r.u8("last_resort") === 1 };
  r.done("KeyPackageCount");
  return out;
}

export interface MailboxStatus {
  pending: bigint;
  firstSeq: bigint;
  lastSeq: bigint;
}
export const encodeMailboxStatus = (q: MailboxStatus): Uint8Array => new Writer().u64(q.pending).u64(q.firstSeq).u64(q.lastSeq).bytes();
export function decodeMailboxStatus(b: Uint8Array): MailboxStatus {
  const r = new Reader(b);
  const out = { pending: r.u64("pending"), firstSeq: r.u64("first_seq"), lastSeq: r.u64("last_seq") };
  r.done("MailboxStatus");
  return out;
}

export const encodeNotice = (q: { text: string }): Uint8Array => new Writer().string(q.text).bytes();
export function decodeNotice(b: Uint8Array): { text: string } {
  const r = new Reader(b);
  const text = r.string("notice.text");
  r.done("Notice");
  return { text };
}

export const encodeKeyPackagesLow = (q: { cipherSuite: number; remaining: number }): Uint8Array =>
  new Writer().u16(q.cipherSuite).u32(q.remaining).bytes();
export function decodeKeyPackagesLow(b: Uint8Array): { cipherSuite: number; remaining: number } {
  const r = new Reader(b);
  const out = { cipherSuite: r.u16("cipher_suite"), remaining: r.u32("remaining") };
  r.done("KeyPackagesLow");
  return out;
}
/** reason: last_resort_served(1), claims_limited(2). */
export const encodeKeyPackagesExhausted = (q: { cipherSuite: number; reason: number }): Uint8Array =>
  new Writer().u16(q.cipherSuite).u8(q.reason).bytes();
export function decodeKeyPackagesExhausted(b: Uint8Array): { cipherSuite: number; reason: number } {
  const r = new Reader(b);
  const out = { cipherSuite: r.u16("cipher_suite"), reason: r.u8("reason") };
  r.done("KeyPackagesExhausted");
  return out;
}

// ---- Oblivious HTTP inner bodies (§3.2) ----

export const encodeDiscoveryRequest = (q: { userId: string }): Uint8Array => new Writer().string(q.userId).bytes();
export function decodeDiscoveryRequest(b: Uint8Array): { userId: string } {
  const r = new Reader(b);
  const userId = r.string("user_id");
  r.done("DiscoveryRequest");
  return { userId };
}
export interface DiscoveryResponse {
  userId: string;
  provider: string;
  bearerToken: string;
}
export const encodeDiscoveryResponse = (q: DiscoveryResponse): Uint8Array =>
  new Writer().string(q.userId).string(q.provider).string(q.bearerToken).bytes();
export function decodeDiscoveryResponse(b: Uint8Array): DiscoveryResponse {
  const r = new Reader(b);
  const out = { userId: r.string("user_id"), provider: r.string("provider"), bearerToken: r.string("bearer_token") };
  r.done("DiscoveryResponse");
  return out;
}

export interface KeyPackageRequest {
  userId: string;
  bearerToken: string;
  version: number;
  cipherSuite: number;
}
export function encodeKeyPackageRequestBundle(q: { requests: KeyPackageRequest[] }): Uint8Array {
  return new Writer()
    .vector((v) => q.requests.forEach((x) => v.string(x.userId).string(x.bearerToken).u16(x.version).u16(x.cipherSuite)))
    .bytes();
}
export function decodeKeyPackageRequestBundle(b: Uint8Array): { requests: KeyPackageRequest[] } {
  const r = new Reader(b);
  const v = r.vector("requests");
  const requests: KeyPackageRequest[] = [];
  while (v.more())
    requests.push({ userId: v.string("user_id"), bearerToken: v.string("bearer_token"), version: v.u16("version"), cipherSuite: v.u16("cipher_suite") });
  r.done("KeyPackageRequestBundle");
  return { requests };
}

/** Fetch status: 0 ok, 1 unknown_user, 2 bad_token, 3 revoked_token, 4 no_key_package, 5 malformed, 6 rate_limited, 7 internal. */
export interface KeyPackageResult {
  status: number;
  /** The bare KeyPackage (status 0). */
  keyPackage: Uint8Array | null;
  message: string | null;
}
export function encodeKeyPackageResponseBundle(q: { results: KeyPackageResult[] }): Uint8Array {
  return new Writer()
    .vector((v) =>
      q.results.forEach((x) => {
        v.u16(x.status);
        if (x.status === 0) v.raw(x.keyPackage ?? new Uint8Array(0));
        else v.string(x.message ?? "");
      }),
    )
    .bytes();
}
export function decodeKeyPackageResponseBundle(b: Uint8Array): { results: KeyPackageResult[] } {
  const r = new Reader(b);
  const v = r.vector("results");
  const results: KeyPackageResult[] = [];
  while (v.more()) {
    const status = v.u16("status");
    if (status === 0) {
      // A bare KeyPackage: decode it as the MLSMessage wrapper would see it.
      const rest = v.rest();
      const wrapped = new Uint8Array(4 + rest.length);
      wrapped.set([0, 1, 0, 5]);
      wrapped.set(rest, 4);
      const m = readMlsMessage(new Reader(wrapped), "KeyPackageResponse.key_package");
      v.skip(m.bytes.length - 4);
      results.push({ status, keyPackage: m.bytes.slice(4), message: null });
    } else {
      results.push({ status, keyPackage: null, message: v.string("message") });
    }
  }
  r.done("KeyPackageResponseBundle");
  return { results };
}
