/** Binary HTTP messages (RFC 9292): known-length encoding, and decoding of every framing. */
import { DecodeError, fromUtf8, utf8 } from "./codec.js";

export type Field = [name: string, value: string];

export interface BhttpRequest {
  method: string;
  scheme: string;
  authority: string;
  path: string;
  headers: Field[];
  content: Uint8Array;
  trailers: Field[];
}

export interface BhttpResponse {
  /** 1xx responses before the final one. */
  informational: { status: number; headers: Field[] }[];
  status: number;
  headers: Field[];
  content: Uint8Array;
  trailers: Field[];
}

class QWriter {
  private parts: number[] = [];
  varint(v: number): this {
    if (v < 0x40) this.parts.push(v);
    else if (v < 0x4000) this.parts.push(0x40 | (v >> 8), v & 0xff);
    else if (v < 0x40000000) this.parts.push(0x80 | (v >>> 24), (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    else throw new RangeError(`bhttp length ${v}`);
    return this;
  }
  bytes(b: Uint8Array): this {
    this.varint(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }
  str(s: string): this {
    return this.bytes(utf8(s));
  }
  fields(f: Field[]): this {
    const inner = new QWriter();
    for (const [n, v] of f) inner.str(n.toLowerCase()).str(v);
    return this.bytes(inner.out());
  }
  out(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

class QReader {
  off = 0;
  constructor(private readonly b: Uint8Array) {}
  get done(): boolean {
    return this.off >= this.b.length;
  }
  varint(field: string): number {
    if (this.done) throw new DecodeError(field, "truncated");
    const first = this.b[this.off];
    const n = 1 << (first >> 6);
    if (this.off + n > this.b.length) throw new DecodeError(field, "truncated varint");
    let v = first & 0x3f;
    for (let i = 1; i < n; i++) v = v * 256 + this.b[this.off + i];
    this.off += n;
    if (!Number.isSafeInteger(v)) throw new DecodeError(field, "varint too large");
    return v;
  }
  bytes(field: string): Uint8Array {
    const n = this.varint(field);
    if (this.off + n > this.b.length) throw new DecodeError(field, "truncated");
    const out = this.b.slice(this.off, this.off + n);
    this.off += n;
    return out;
  }
  str(field: string): string {
    return fromUtf8(this.bytes(field), field);
  }
  /** A known-length field section; absent (truncated message) is empty. */
  knownFields(field: string): Field[] {
    if (this.done) return [];
    const r = new QReader(this.bytes(field));
    const out: Field[] = [];
    while (!r.done) out.push([r.str(field), r.str(field)]);
    return out;
  }
  /** An indeterminate-length field section, ended by a zero-length name. */
  indeterminateFields(field: string): Field[] {
    const out: Field[] = [];
    for (;;) {
      if (this.done) return out;
      const start = this.off;
      if (this.varint(field) === 0) return out;
      this.off = start;
      out.push([this.str(field), this.str(field)]);
    }
  }
  content(indeterminate: boolean): Uint8Array {
    if (this.done) return new Uint8Array(0);
    if (!indeterminate) return this.bytes("content");
    const chunks: Uint8Array[] = [];
    for (;;) {
      if (this.done) break;
      const c = this.bytes("content chunk");
      if (c.length === 0) break;
      chunks.push(c);
    }
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
  /** Only zero padding may follow. */
  padding(): void {
    for (; this.off < this.b.length; this.off++) if (this.b[this.off] !== 0) throw new DecodeError("padding", "non-zero byte");
  }
}

/** Encodes a known-length request (framing indicator 0). */
export function encodeRequest(q: BhttpRequest): Uint8Array {
  return new QWriter()
    .varint(0)
    .str(q.method)
    .str(q.scheme)
    .str(q.authority)
    .str(q.path)
    .fields(q.headers)
    .bytes(q.content)
    .fields(q.trailers)
    .out();
}

/** Encodes a known-length response (framing indicator 1), without informational responses. */
export function encodeResponse(q: BhttpResponse): Uint8Array {
  const w = new QWriter().varint(1);
  for (const i of q.informational) w.varint(i.status).fields(i.headers);
  return w.varint(q.status).fields(q.headers).bytes(q.content).fields(q.trailers).out();
}

export function decodeRequest(b: Uint8Array): BhttpRequest {
  const r = new QReader(b);
  const fi = r.varint("framing_indicator");
  if (fi !== 0 && fi !== 2) throw new DecodeError("framing_indicator", `${fi} is not a request`);
  const ind = fi === 2;
  const method = r.str("method");
  const scheme = r.str("scheme");
  const authority = r.str("authority");
  const path = r.str("path");
  const headers = ind ? r.indeterminateFields("headers") : r.knownFields("headers");
  const content = r.content(ind);
  const trailers = ind ? r.indeterminateFields("trailers") : r.knownFields("trailers");
  r.padding();
  return { method, scheme, authority, path, headers, content, trailers };
}

export function decodeResponse(b: Uint8Array): BhttpResponse {
  const r = new QReader(b);
  const fi = r.varint("framing_indicator");
  if (fi !== 1 && fi !== 3) throw new DecodeError("framing_indicator", `${fi} is not a response`);
  const ind = fi === 3;
  const fields = (f: string): Field[] => (ind ? r.indeterminateFields(f) : r.knownFields(f));
  const informational: { status: number; headers: Field[] }[] = [];
  for (;;) {
    const status = r.varint("status");
    if (status < 100 || status > 599) throw new DecodeError("status", `${status}`);
    const headers = fields("headers");
    if (status < 200) {
      informational.push({ status, headers });
      continue;
    }
    const content = r.content(ind);
    const trailers = fields("trailers");
    r.padding();
    return { informational, status, headers, content, trailers };
  }
}

/** The first value of a field, by case-insensitive name. */
export function fieldValue(f: Field[], name: string): string | undefined {
  const n = name.toLowerCase();
  return f.find(([k]) => k.toLowerCase() === n)?.[1];
}
