/** Client socket frames (docs/protocol.md §1.2). */
import { DecodeError, Reader, Writer } from "./codec.js";

export type Frame =
  | { type: "auth"; requestId: number; token: Uint8Array }
  | {
      type: "auth_ok";
      requestId: number;
      clientId: string;
      userId: string;
      pending: bigint;
      maxFrameSize: number;
      incarnation: Uint8Array;
    }
  | { type: "request"; requestId: number; method: number; body: Uint8Array }
  | { type: "response"; requestId: number; body: Uint8Array }
  | { type: "error"; requestId: number; code: number; message: string }
  | { type: "deliver"; seq: bigint; kind: number; enqueuedAtMs: bigint; payload: Uint8Array }
  | { type: "ack"; seq: bigint }
  | { type: "push"; masked: Uint8Array; counter: number; message: Uint8Array }
  | { type: "partition_event"; masked: Uint8Array; event: number };

export type FrameType = Frame["type"];

export const FRAME_TYPES: Record<FrameType, number> = {
  auth: 1,
  auth_ok: 2,
  request: 3,
  response: 4,
  error: 5,
  deliver: 6,
  ack: 7,
  push: 8,
  partition_event: 9,
};

/** Longest auth_ok incarnation accepted. */
export const MAX_INCARNATION = 64;

export function writeFrame(w: Writer, f: Frame): void {
  w.u8(FRAME_TYPES[f.type]);
  switch (f.type) {
    case "auth":
      w.u32(f.requestId).opaque(f.token);
      break;
    case "auth_ok":
      w.u32(f.requestId).string(f.clientId).string(f.userId).u64(f.pending).u32(f.maxFrameSize).opaque(f.incarnation);
      break;
    case "request":
      w.u32(f.requestId).u16(f.method).opaque(f.body);
      break;
    case "response":
      w.u32(f.requestId).opaque(f.body);
      break;
    case "error":
      w.u32(f.requestId).u16(f.code).string(f.message);
      break;
    case "deliver":
      w.u64(f.seq).u16(f.kind).u64(f.enqueuedAtMs).opaque(f.payload);
      break;
    case "ack":
      w.u64(f.seq);
      break;
    case "push":
      w.opaque(f.masked).u32(f.counter).opaque(f.message);
      break;
    case "partition_event":
      w.opaque(f.masked).u8(f.event);
      break;
  }
}

export function encodeFrame(f: Frame): Uint8Array {
  const w = new Writer();
  writeFrame(w, f);
  return w.bytes();
}

/** Reads one frame from r. */
export function readFrame(r: Reader): Frame {
  const t = r.u8("frame_type");
  switch (t) {
    case 1:
      return { type: "auth", requestId: r.u32("request_id"), token: r.opaque("token", 1024) };
    case 2:
      return {
        type: "auth_ok",
        requestId: r.u32("request_id"),
        clientId: r.string("client_id"),
        userId: r.string("user_id"),
        pending: r.u64("pending"),
        maxFrameSize: r.u32("max_frame_size"),
        incarnation: r.opaque("incarnation", MAX_INCARNATION),
      };
    case 3:
      return { type: "request", requestId: r.u32("request_id"), method: r.u16("method"), body: r.opaque("body") };
    case 4:
      return { type: "response", requestId: r.u32("request_id"), body: r.opaque("body") };
    case 5:
      return { type: "error", requestId: r.u32("request_id"), code: r.u16("code"), message: r.string("message") };
    case 6:
      return {
        type: "deliver",
        seq: r.u64("seq"),
        kind: r.u16("kind"),
        enqueuedAtMs: r.u64("enqueued_at_ms"),
        payload: r.opaque("payload"),
      };
    case 7:
      return { type: "ack", seq: r.u64("seq") };
    case 8:
      return { type: "push", masked: r.opaque("masked_partition_key"), counter: r.u32("counter"), message: r.opaque("message") };
    case 9:
      return { type: "partition_event", masked: r.opaque("masked_partition_key"), event: r.u8("event") };
  }
  throw new DecodeError("frame_type", `unknown frame type ${t}`);
}

/** Decodes every frame of one WebSocket message (frames back to back). */
export function decodeFrames(b: Uint8Array): Frame[] {
  if (b.length === 0) throw new DecodeError("frames", "empty WebSocket message");
  const r = new Reader(b);
  const out: Frame[] = [];
  while (r.more()) out.push(readFrame(r));
  return out;
}

/** Decodes exactly one frame. */
export function decodeFrame(b: Uint8Array): Frame {
  const r = new Reader(b);
  const f = readFrame(r);
  r.done("frame");
  return f;
}
