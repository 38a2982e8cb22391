/**
 * Oblivious HTTP client side (RFC 9458): key configurations, request
 * encapsulation and response decapsulation, for DHKEM(X25519, HKDF-SHA256)
 * with HKDF-SHA256 and AES-128-GCM or AES-256-GCM.
 */
import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256, type SenderContext } from "@hpke/core";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, DecodeError, Reader, utf8 } from "./codec.js";

export const MEDIA_TYPE_REQUEST = "message/ohttp-req";
export const MEDIA_TYPE_RESPONSE = "message/ohttp-res";
export const MEDIA_TYPE_KEYS = "application/ohttp-keys";

const KEM_X25519 = 0x0020;
const KDF_HKDF_SHA256 = 0x0001;
const AEAD_AES128GCM = 0x0001;
const AEAD_AES256GCM = 0x0002;

export interface KeyConfig {
  keyId: number;
  kemId: number;
  publicKey: Uint8Array;
  algorithms: { kdfId: number; aeadId: number }[];
}

/** Parses one KeyConfig (RFC 9458 §3.1) from r. */
function readKeyConfig(r: Reader): KeyConfig {
  const keyId = r.u8("key_id");
  const kemId = r.u16("kem_id");
  const nPk = kemId === KEM_X25519 ? 32 : -1;
  if (nPk < 0) throw new DecodeError("kem_id", `unsupported KEM ${kemId}`);
  const publicKey = r.raw("public_key", nPk);
  const n = r.u16("symmetric_algorithms length");
  if (n % 4 !== 0 || n === 0) throw new DecodeError("symmetric_algorithms", `length ${n}`);
  const algorithms: { kdfId: number; aeadId: number }[] = [];
  for (let i = 0; i < n; i += 4) algorithms.push({ kdfId: r.u16("kdf_id"), aeadId: r.u16("aead_id") });
  return { keyId, kemId, publicKey, algorithms };
}

export function decodeKeyConfig(b: Uint8Array): KeyConfig {
  const r = new Reader(b);
  const c = readKeyConfig(r);
  r.done("KeyConfig");
  return c;
}

/** Parses application/ohttp-keys: KeyConfigs each preceded by a 2-byte length (RFC 9458 §3.2). */
export function decodeKeyConfigs(b: Uint8Array): KeyConfig[] {
  const r = new Reader(b);
  const out: KeyConfig[] = [];
  while (r.more()) {
    const n = r.u16("KeyConfig length");
    const body = r.raw("KeyConfig", n);
    try {
      out.push(decodeKeyConfig(body));
    } catch (e) {
      if (e instanceof DecodeError && e.field === "kem_id") continue; // a KEM this client lacks
      throw e;
    }
  }
  if (out.length === 0) throw new DecodeError("ohttp-keys", "no usable KeyConfig");
  return out;
}

function aeadSizes(aeadId: number): { nk: number; nn: number } {
  if (aeadId === AEAD_AES128GCM) return { nk: 16, nn: 12 };
  if (aeadId === AEAD_AES256GCM) return { nk: 32, nn: 12 };
  throw new Error(`ohttp: unsupported AEAD ${aeadId}`);
}

/** The (KDF, AEAD) pair this client uses from c, preferring AES-128-GCM. */
export function chooseAlgorithms(c: KeyConfig): { kdfId: number; aeadId: number } {
  for (const want of [AEAD_AES128GCM, AEAD_AES256GCM]) {
    const a = c.algorithms.find((x) => x.kdfId === KDF_HKDF_SHA256 && x.aeadId === want);
    if (a) return a;
  }
  throw new Error("ohttp: no supported (KDF, AEAD) pair in the key configuration");
}

function suiteFor(aeadId: number): CipherSuite {
  return new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: aeadId === AEAD_AES256GCM ? new Aes256Gcm() : new Aes128Gcm(),
  });
}

/** Test hooks: a fixed ephemeral key pair and response nonce are accepted only here. */
export interface EncapsulateOptions {
  ephemeralSecretKey?: Uint8Array;
  ephemeralPublicKey?: Uint8Array;
}

/** One encapsulated request: its bytes, and the context that opens its response. */
export interface Encapsulated {
  request: Uint8Array;
  decapsulate(response: Uint8Array): Promise<Uint8Array>;
}

/** Encapsulates a binary HTTP request for the gateway whose key is c (RFC 9458 §4.3). */
export async function encapsulate(c: KeyConfig, request: Uint8Array, opts: EncapsulateOptions = {}): Promise<Encapsulated> {
  const { kdfId, aeadId } = chooseAlgorithms(c);
  const suite = suiteFor(aeadId);
  const hdr = new Uint8Array([c.keyId, c.kemId >> 8, c.kemId & 0xff, kdfId >> 8, kdfId & 0xff, aeadId >> 8, aeadId & 0xff]);
  const info = concatBytes(utf8("message/bhttp request"), new Uint8Array([0]), hdr);
  const recipientPublicKey = await suite.kem.deserializePublicKey(c.publicKey);
  let ekm: CryptoKeyPair | undefined;
  if (opts.ephemeralSecretKey && opts.ephemeralPublicKey) {
    ekm = {
      privateKey: await suite.kem.deserializePrivateKey(opts.ephemeralSecretKey),
      publicKey: await suite.kem.deserializePublicKey(opts.ephemeralPublicKey),
    };
  }
  const sender: SenderContext = await suite.createSenderContext({ recipientPublicKey, info, ekm });
  const ct = new Uint8Array(await sender.seal(request));
  const enc = new Uint8Array(sender.enc);
  return {
    request: concatBytes(hdr, enc, ct),
    decapsulate: (response) => decapsulate(sender, enc, aeadId, response),
  };
}

function hkdfExpand(prk: Uint8Array, info: Uint8Array, n: number): Uint8Array {
  // One block suffices: n <= 32.
  return hmac(sha256, prk, concatBytes(info, new Uint8Array([1]))).slice(0, n);
}

/** Opens an encapsulated response (RFC 9458 §4.4). */
async function decapsulate(sender: SenderContext, enc: Uint8Array, aeadId: number, response: Uint8Array): Promise<Uint8Array> {
  const { nk, nn } = aeadSizes(aeadId);
  const nonceLen = Math.max(nk, nn);
  if (response.length < nonceLen + 16) throw new DecodeError("ohttp response", "too short");
  const secret = new Uint8Array(await sender.export(utf8("message/bhttp response"), nonceLen));
  const responseNonce = response.subarray(0, nonceLen);
  const prk = hmac(sha256, concatBytes(enc, responseNonce), secret);
  const key = hkdfExpand(prk, utf8("key"), nk);
  const nonce = hkdfExpand(prk, utf8("nonce"), nn);
  const subtle = globalThis.crypto.subtle;
  const k = await subtle.importKey("raw", new Uint8Array(key), "AES-GCM", false, ["decrypt"]);
  try {
    return new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: new Uint8Array(nonce) }, k, new Uint8Array(response.subarray(nonceLen))));
  } catch {
    throw new DecodeError("ohttp response", "does not open");
  }
}
