/**
 * The client socket (docs/protocol.md §1): connect with the `mimids.v1`
 * subprotocol, authenticate, pipeline requests, receive the durable mailbox in
 * order (ack after the handler), follow partitions, and reconnect with backoff,
 * resuming the mailbox from the last processed seq and every subscription from
 * its next counter.
 */
import { Reader, toHex, Writer, utf8 } from "./codec.js";
import { ConnectionClosedError, FATAL_CLOSE_CODES, MimidsError } from "./errors.js";
import { encodeFrame, readFrame, writeFrame, type Frame } from "./frames.js";
import * as m from "./messages.js";
import { defaultSocketFactory, messageBytes, type SocketFactory, type SocketLike } from "./socket.js";

export const SUBPROTOCOL = "mimids.v1";

/** Where the client keeps what must survive a restart: the mailbox mark. */
export interface MarkStore {
  load(): Promise<Marks | undefined>;
  save(marks: Marks): Promise<void>;
}
export interface Marks {
  /** The highest mailbox seq processed. */
  lastSeq: bigint;
  /** The store incarnation the marks belong to (hex; "" = none named). */
  incarnation: string;
}

/** Keeps marks in memory only. */
export class MemoryMarkStore implements MarkStore {
  private marks: Marks | undefined;
  async load(): Promise<Marks | undefined> {
    return this.marks;
  }
  async save(marks: Marks): Promise<void> {
    this.marks = { ...marks };
  }
}

/** One mailbox entry handed to the application. */
export interface MailboxEntry {
  seq: bigint;
  kind: number;
  enqueuedAtMs: bigint;
  payload: Uint8Array;
}

export interface SessionInfo {
  clientId: string;
  userId: string;
  /** The provider's domain, from userId. */
  domain: string;
  pending: bigint;
  maxFrameSize: number;
  incarnation: string;
  /** The store's incarnation changed: marks were dropped (docs/protocol.md §1.3.1). */
  storeReset: boolean;
}

export type PushHandler = (counter: number, message: m.HubMessage) => Promise<void> | void;
export type PartitionEventHandler = (event: number) => Promise<void> | void;

export interface ClientOptions {
  /** ws:// or wss:// URL of /v1/socket. */
  url: string;
  /** The device token. */
  token: string;
  socket?: SocketFactory;
  marks?: MarkStore;
  /** Called for each new mailbox entry, in seq order; the entry is acked when it resolves. */
  onMailbox?: (e: MailboxEntry) => Promise<void> | void;
  /** Called after every (re)authentication. */
  onSession?: (s: SessionInfo) => Promise<void> | void;
  /** Called when the socket closes; `willReconnect` tells what follows. */
  onClose?: (err: ConnectionClosedError, willReconnect: boolean) => void;
  /** Reconnect backoff in ms (default 100 .. 5000, doubling, with jitter). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Time to wait for auth_ok (default 10 s). */
  authTimeoutMs?: number;
}

interface Pending {
  method: number;
  body: Uint8Array;
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
  /** Sent again after a reconnect instead of failing (idempotent requests). */
  retry: boolean;
}

interface Subscription {
  partitionKey: Uint8Array;
  /** The next counter to hand to the handler. */
  next: number;
  onPush: PushHandler;
  onEvent?: PartitionEventHandler;
}

/** A mimids client connection that reconnects by itself until closed. */
export class MimidsClient {
  private ws: SocketLike | undefined;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private subs = new Map<string, Subscription>();
  private marks: Marks = { lastSeq: 0n, incarnation: "" };
  private marksLoaded = false;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private backoff: number;
  private authed = false;
  private session: SessionInfo | undefined;
  private waiters: { resolve: (s: SessionInfo) => void; reject: (e: Error) => void }[] = [];
  private readonly store: MarkStore;
  private readonly factory: SocketFactory;
  /** Reconnects made (for tests and metrics). */
  reconnects = 0;

  constructor(private readonly opts: ClientOptions) {
    this.store = opts.marks ?? new MemoryMarkStore();
    this.factory = opts.socket ?? defaultSocketFactory();
    this.backoff = opts.minBackoffMs ?? 100;
  }

  /** Connects and resolves once authenticated (rejects on a fatal failure). */
  async connect(): Promise<SessionInfo> {
    if (!this.marksLoaded) {
      this.marks = (await this.store.load()) ?? this.marks;
      this.marksLoaded = true;
    }
    const p = this.ready();
    if (!this.ws) this.open();
    return p;
  }

  /** Resolves when the client is authenticated (now, or after the next reconnect). */
  ready(): Promise<SessionInfo> {
    if (this.authed && this.session) return Promise.resolve(this.session);
    if (this.closed) return Promise.reject(new ConnectionClosedError(1000, "client closed"));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  get info(): SessionInfo | undefined {
    return this.session;
  }

  /** Closes for good. */
  close(): void {
    this.closed = true;
    this.ws?.close(1000);
    this.failAll(new ConnectionClosedError(1000, "client closed"), true);
  }

  private open(): void {
    const ws = this.factory(this.opts.url, SUBPROTOCOL);
    this.ws = ws;
    this.authed = false;
    ws.binaryType = "arraybuffer";
    let timer: ReturnType<typeof setTimeout> | undefined;
    ws.onopen = () => {
      if (ws.protocol !== SUBPROTOCOL) {
        ws.close(4000, "no subprotocol");
        return;
      }
      ws.send(encodeFrame({ type: "auth", requestId: 0xffffffff, token: utf8(this.opts.token) }));
      timer = setTimeout(() => ws.close(4002, "no auth_ok"), this.opts.authTimeoutMs ?? 10_000);
    };
    ws.onmessage = (ev) => {
      const b = messageBytes(ev.data);
      if (!b) {
        ws.close(4000, "text message");
        return;
      }
      try {
        const r = new Reader(b);
        while (r.more()) {
          const f = readFrame(r);
          if (f.type === "auth_ok") clearTimeout(timer);
          this.onFrame(ws, f);
        }
      } catch (e) {
        ws.close(4000, `bad frame: ${String(e)}`.slice(0, 120));
      }
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      clearTimeout(timer);
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.authed = false;
      const err = new ConnectionClosedError(ev.code, ev.reason);
      const again = !this.closed && !FATAL_CLOSE_CODES.has(ev.code);
      this.failAll(err, !again);
      this.opts.onClose?.(err, again);
      if (!again) {
        this.closed = true;
        return;
      }
      const jitter = 0.5 + Math.random() / 2;
      setTimeout(() => {
        if (this.closed) return;
        this.reconnects++;
        this.open();
      }, this.backoff * jitter);
      this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs ?? 5000);
    };
  }

  /** Fails requests in flight (those marked retry wait for the next session unless final). */
  private failAll(err: ConnectionClosedError, final: boolean): void {
    for (const [id, p] of this.pending) {
      if (p.retry && !final) continue;
      this.pending.delete(id);
      p.reject(err);
    }
    if (final) for (const w of this.waiters.splice(0)) w.reject(err);
  }

  private onFrame(ws: SocketLike, f: Frame): void {
    switch (f.type) {
      case "auth_ok":
        this.serial(() => this.onAuthOK(ws, f));
        return;
      case "response": {
        const p = this.pending.get(f.requestId);
        if (!p) return;
        this.pending.delete(f.requestId);
        p.resolve(f.body);
        return;
      }
      case "error": {
        if (f.requestId === 0) {
          // Connection-level: a close follows (except `invalid` for an ack).
          this.lastConnError = new MimidsError(f.code, f.message);
          return;
        }
        const p = this.pending.get(f.requestId);
        if (!p) return;
        this.pending.delete(f.requestId);
        p.reject(new MimidsError(f.code, f.message, p.method));
        return;
      }
      case "deliver":
        this.serial(() => this.onDeliver(ws, f));
        return;
      case "push": {
        const sub = this.subs.get(toHex(f.masked));
        if (!sub) return;
        const msg = m.decodeHubMessage(f.message);
        const counter = f.counter;
        this.serial(async () => {
          if (counter < sub.next) return; // already handed over (resubscribe overlap)
          if (counter > sub.next) return; // a gap cannot happen on one subscription; the resubscribe refills it
          await sub.onPush(counter, msg);
          sub.next = counter + 1;
        });
        return;
      }
      case "partition_event": {
        const sub = this.subs.get(toHex(f.masked));
        if (sub?.onEvent) this.serial(async () => sub.onEvent?.(f.event));
        return;
      }
      default:
        ws.close(4000, `unexpected ${f.type}`);
    }
  }

  /** The last connection-level error frame (request_id 0). */
  lastConnError: MimidsError | undefined;

  /** Runs fn after every earlier incoming event: one order for mailbox and pushes. */
  private serial(fn: () => Promise<void> | void): void {
    this.queue = this.queue.then(fn).catch((e: unknown) => {
      // A handler that throws leaves the entry unacknowledged: it comes again after a reconnect.
      this.ws?.close(1000, "handler failed");
      this.handlerError?.(e);
    });
  }

  /** Called with errors thrown by the application's handlers. */
  handlerError: ((e: unknown) => void) | undefined;

  private async onAuthOK(ws: SocketLike, f: Extract<Frame, { type: "auth_ok" }>): Promise<void> {
    const inc = toHex(f.incarnation);
    let storeReset = false;
    if (inc !== "" && this.marks.incarnation !== "" && inc !== this.marks.incarnation) {
      storeReset = true;
      this.marks = { lastSeq: 0n, incarnation: inc };
      for (const s of this.subs.values()) s.next = 0;
      await this.store.save(this.marks);
    } else if (inc !== "" && this.marks.incarnation === "") {
      this.marks = { ...this.marks, incarnation: inc };
      await this.store.save(this.marks);
    }
    const domain = /^mimi:\/\/([^/]+)\//.exec(f.userId)?.[1] ?? "";
    this.session = {
      clientId: f.clientId,
      userId: f.userId,
      domain,
      pending: f.pending,
      maxFrameSize: f.maxFrameSize,
      incarnation: inc,
      storeReset,
    };
    this.authed = true;
    this.backoff = this.opts.minBackoffMs ?? 100;
    // Resubscribe, then resend the idempotent requests that waited.
    for (const s of this.subs.values()) this.sendSubscribe(ws, s);
    for (const [id, p] of this.pending) this.sendFrame(ws, { type: "request", requestId: id, method: p.method, body: p.body });
    await this.opts.onSession?.(this.session);
    for (const w of this.waiters.splice(0)) w.resolve(this.session);
  }

  private async onDeliver(ws: SocketLike, f: Extract<Frame, { type: "deliver" }>): Promise<void> {
    if (f.seq <= this.marks.lastSeq) {
      this.sendFrame(ws, { type: "ack", seq: this.marks.lastSeq });
      return;
    }
    await this.opts.onMailbox?.({ seq: f.seq, kind: f.kind, enqueuedAtMs: f.enqueuedAtMs, payload: f.payload });
    this.marks = { ...this.marks, lastSeq: f.seq };
    await this.store.save(this.marks);
    if (this.ws === ws) this.sendFrame(ws, { type: "ack", seq: f.seq });
  }

  private sendFrame(ws: SocketLike, f: Frame): void {
    if (ws.readyState !== 1) return;
    ws.send(encodeFrame(f));
  }

  private sendSubscribe(ws: SocketLike, s: Subscription): void {
    const id = this.nextId++;
    const body = m.encodePartitionPosition({ partitionKey: s.partitionKey, counter: s.next });
    this.pending.set(id, { method: m.Method.subscribe, body, resolve: () => {}, reject: () => {}, retry: false });
    this.sendFrame(ws, { type: "request", requestId: id, method: m.Method.subscribe, body });
  }

  /**
   * Sends a request and resolves with the response body. With `retry`, a request
   * cut by a lost connection is sent again after the reconnect (use it for
   * requests the server deduplicates, such as an identical `send`).
   */
  async request(method: number, body: Uint8Array, opts: { retry?: boolean } = {}): Promise<Uint8Array> {
    await this.ready();
    const ws = this.ws;
    if (!ws) throw new ConnectionClosedError(1006, "not connected");
    const id = this.nextId++;
    if (this.nextId > 0xfffffff0) this.nextId = 1;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { method, body, resolve, reject, retry: opts.retry ?? false });
      this.sendFrame(ws, { type: "request", requestId: id, method, body });
    });
  }

  /** Sends several requests in one WebSocket message (pipelined). */
  async pipeline(reqs: { method: number; body: Uint8Array }[]): Promise<Promise<Uint8Array>[]> {
    await this.ready();
    const ws = this.ws;
    if (!ws) throw new ConnectionClosedError(1006, "not connected");
    const w = new Writer();
    const out = reqs.map(
      (q) =>
        new Promise<Uint8Array>((resolve, reject) => {
          const id = this.nextId++;
          this.pending.set(id, { method: q.method, body: q.body, resolve, reject, retry: false });
          writeFrame(w, { type: "request", requestId: id, method: q.method, body: q.body });
        }),
    );
    ws.send(w.bytes());
    return out;
  }

  /** Follows a partition from `counter`; pushes reach onPush in counter order, once each. */
  async subscribe(partitionKey: Uint8Array, counter: number, onPush: PushHandler, onEvent?: PartitionEventHandler, masked?: Uint8Array): Promise<Uint8Array> {
    // The masked key may be known already (Hash(partition key)); register before asking
    // so that pushes racing the answer are kept.
    const sub: Subscription = { partitionKey, next: counter, onPush, onEvent };
    if (masked) this.subs.set(toHex(masked), sub);
    const body = await this.request(m.Method.subscribe, m.encodePartitionPosition({ partitionKey, counter }), { retry: true });
    const got = m.decodeMaskedKey(body).maskedPartitionKey;
    if (!masked) this.subs.set(toHex(got), sub);
    return got;
  }

  /** Stops following a partition. */
  async unsubscribe(masked: Uint8Array): Promise<void> {
    this.subs.delete(toHex(masked));
    await this.request(m.Method.unsubscribe, m.encodeMaskedKey({ maskedPartitionKey: masked }));
  }

  /** The next counter of a followed partition. */
  position(masked: Uint8Array): number | undefined {
    return this.subs.get(toHex(masked))?.next;
  }

  // ---- typed methods ----

  async ping(body: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    return this.request(m.Method.ping, body);
  }
  async mailboxStatus(): Promise<m.MailboxStatus> {
    return m.decodeMailboxStatus(await this.request(m.Method.mailboxStatus, new Uint8Array(0)));
  }
  async uploadKeyPackages(keyPackages: Uint8Array[]): Promise<Uint8Array[]> {
    return m.decodeKeyPackageUploadResult(await this.request(m.Method.keyPackageUpload, m.encodeKeyPackageUpload({ keyPackages }))).refs;
  }
  async keyPackageCount(cipherSuite: number): Promise<m.KeyPackageCount> {
    return m.decodeKeyPackageCount(await this.request(m.Method.keyPackageCount, m.encodeCipherSuite({ cipherSuite })));
  }
  async createGroup(q: m.CreateGroupRequest): Promise<Uint8Array> {
    return m.decodeMaskedKey(await this.request(m.Method.createGroup, m.encodeCreateGroupRequest(q), { retry: true })).maskedPartitionKey;
  }
  /** Sends a message; an identical retry is answered with the first counter, so it is retried over reconnects. */
  async send(q: m.SendRequest): Promise<number> {
    return m.decodeCounter(await this.request(m.Method.send, m.encodeSendRequest(q), { retry: true })).counter;
  }
  async receive(partitionKey: Uint8Array, counter: number): Promise<m.ReceiveResponse> {
    return m.decodeReceiveResponse(await this.request(m.Method.receive, m.encodePartitionPosition({ partitionKey, counter }), { retry: true }));
  }
  async groupInfo(groupId: Uint8Array): Promise<m.GroupInfoResponse> {
    return m.decodeGroupInfoResponse(await this.request(m.Method.groupInfo, m.encodeGroupId({ groupId }), { retry: true }));
  }
  async externalJoin(q: m.ExternalJoinRequest): Promise<m.ExternalJoinResponse> {
    return m.decodeExternalJoinResponse(await this.request(m.Method.externalJoin, m.encodeExternalJoinRequest(q), { retry: true }));
  }
  async report(q: m.Report): Promise<bigint> {
    return m.decodeReportResponse(await this.request(m.Method.report, m.encodeReport(q))).reportId;
  }
}
