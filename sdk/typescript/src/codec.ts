/**
 * TLS presentation language codec (RFC 8446 §3, RFC 9420 §2.1.2 variable-length
 * vectors), the one codec every wire struct of the SDK is written with.
 */

/** Thrown when bytes do not decode; `field` names what was being read. */
export class DecodeError extends Error {
  constructor(public readonly field: string, detail: string) {
    super(`decode ${field}: ${detail}`);
    this.name = "DecodeError";
  }
}

/** The largest length a variable-length vector header can carry (2^30-1). */
export const MAX_VARINT = (1 << 30) - 1;

/** Appends TLS-encoded values to a growing buffer. */
export class Writer {
  private buf: Uint8Array;
  private len = 0;

  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity);
  }

  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }

  u8(v: number): this {
    this.grow(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  u16(v: number): this {
    this.grow(2);
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  u32(v: number): this {
    this.grow(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setUint32(this.len, v >>> 0);
    this.len += 4;
    return this;
  }
  u64(v: bigint): this {
    this.grow(8);
    new DataView(this.buf.buffer, this.buf.byteOffset).setBigUint64(this.len, BigInt.asUintN(64, v));
    this.len += 8;
    return this;
  }
  /** A minimal RFC 9420 variable-length integer (a vector header). */
  varint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > MAX_VARINT) throw new RangeError(`varint ${v} outside [0, 2^30-1]`);
    if (v < 1 << 6) return this.u8(v);
    if (v < 1 << 14) return this.u16(0x4000 | v);
    return this.u32((0x80000000 | v) >>> 0);
  }
  raw(b: Uint8Array): this {
    this.grow(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }
  /** opaque data<V>. */
  opaque(b: Uint8Array): this {
    return this.varint(b.length).raw(b);
  }
  /** A UTF-8 string as opaque data<V>. */
  string(s: string): this {
    return this.opaque(utf8(s));
  }
  optional(present: boolean): this {
    return this.u8(present ? 1 : 0);
  }
  /** A vector whose body fn writes. */
  vector(fn: (w: Writer) => void): this {
    const inner = new Writer();
    fn(inner);
    return this.opaque(inner.bytes());
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Reads TLS-encoded values; every read throws DecodeError when short. */
export class Reader {
  private off = 0;
  constructor(private readonly b: Uint8Array) {}

  get remaining(): number {
    return this.b.length - this.off;
  }
  get offset(): number {
    return this.off;
  }
  more(): boolean {
    return this.off < this.b.length;
  }
  private take(field: string, n: number): Uint8Array {
    if (this.remaining < n) throw new DecodeError(field, `need ${n} bytes, have ${this.remaining}`);
    const out = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }
  raw(field: string, n: number): Uint8Array {
    return this.take(field, n).slice();
  }
  /** The unread bytes, without consuming them. */
  rest(): Uint8Array {
    return this.b.subarray(this.off);
  }
  skip(n: number): void {
    this.off += n;
  }
  u8(field: string): number {
    return this.take(field, 1)[0];
  }
  u16(field: string): number {
    const t = this.take(field, 2);
    return (t[0] << 8) | t[1];
  }
  u32(field: string): number {
    const t = this.take(field, 4);
    return new DataView(t.buffer, t.byteOffset, 4).getUint32(0);
  }
  u64(field: string): bigint {
    const t = this.take(field, 8);
    return new DataView(t.buffer, t.byteOffset, 8).getBigUint64(0);
  }
  varint(field: string): number {
    const first = this.u8(field);
    const prefix = first >> 6;
    if (prefix === 0) return first;
    if (prefix === 1) {
      const v = ((first & 0x3f) << 8) | this.u8(field);
      if (v < 1 << 6) throw new DecodeError(field, "varint not minimal");
      return v;
    }
    if (prefix === 2) {
      const t = this.take(field, 3);
      const v = (((first & 0x3f) << 24) | (t[0] << 16) | (t[1] << 8) | t[2]) >>> 0;
      if (v < 1 << 14) throw new DecodeError(field, "varint not minimal");
      return v;
    }
    throw new DecodeError(field, "varint prefix 11");
  }
  opaque(field: string, max = MAX_VARINT): Uint8Array {
    const n = this.varint(field);
    if (n > max) throw new DecodeError(field, `${n} bytes over the limit ${max}`);
    return this.raw(field, n);
  }
  string(field: string, max = MAX_VARINT): string {
    return fromUtf8(this.opaque(field, max), field);
  }
  optional(field: string): boolean {
    const v = this.u8(field);
    if (v > 1) throw new DecodeError(field, `optional presence ${v}`);
    return v === 1;
  }
  /** A sub-reader over a vector's body. */
  vector(field: string): Reader {
    const n = this.varint(field);
    return new Reader(this.take(field, n));
  }
  /** Throws unless every byte was read. */
  done(what: string): void {
    if (this.more()) throw new DecodeError(what, `${this.remaining} trailing bytes`);
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

export function fromUtf8(b: Uint8Array, field = "utf8"): string {
  try {
    return dec.decode(b);
  } catch {
    throw new DecodeError(field, "not UTF-8");
  }
}

export function toHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new DecodeError("hex", "not hex");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
