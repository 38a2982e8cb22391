/**
 * Discovery and KeyPackage fetch through the own provider's Oblivious HTTP
 * relay (docs/protocol.md §3.2, §3.3). Gateway keys are fetched directly from
 * the target provider, never through the relay.
 */
import { decodeResponse, encodeRequest, fieldValue } from "./bhttp.js";
import { fromUtf8 } from "./codec.js";
import { FetchError, RelayError } from "./errors.js";
import * as m from "./messages.js";
import { decodeKeyConfigs, encapsulate, MEDIA_TYPE_REQUEST, MEDIA_TYPE_RESPONSE, type KeyConfig } from "./ohttp.js";


export interface RemoteOptions {
  /** The own provider's base URL (http://host:port). */
  baseUrl: string;
  /** The device token (the relay's Authorization). */
  token: string;
  /** Base URL of each provider's gateway keys; the own domain defaults to baseUrl. */
  providerUrls?: Record<string, string>;
  ownDomain: string;
  fetch?: typeof fetch;
}

/** Mimi user URI → domain. */
export function domainOf(userUri: string): string {
  const d = /^mimi:\/\/([^/]+)\/[ud]\//.exec(userUri)?.[1];
  if (!d) throw new Error(`not a MIMI user URI: ${userUri}`);
  return d;
}

export class Remote {
  private keys = new Map<string, KeyConfig>();
  private readonly f: typeof fetch;
  constructor(private readonly o: RemoteOptions) {
    this.f = o.fetch ?? globalThis.fetch.bind(globalThis);
  }

  private providerUrl(domain: string): string {
    const u = this.o.providerUrls?.[domain] ?? (domain === this.o.ownDomain ? this.o.baseUrl : undefined);
    if (!u) throw new Error(`no URL known for provider ${domain}`);
    return u.replace(/\/$/, "");
  }

  /** The gateway key of domain, fetched directly from it (cached). */
  async gatewayKey(domain: string, refresh = false): Promise<KeyConfig> {
    const have = this.keys.get(domain);
    if (have && !refresh) return have;
    const r = await this.f(`${this.providerUrl(domain)}/.well-known/ohttp-gateway`);
    if (!r.ok) throw new RelayError(r.status, "gateway", "key configuration");
    const k = decodeKeyConfigs(new Uint8Array(await r.arrayBuffer()))[0];
    this.keys.set(domain, k);
    return k;
  }

  /** One inner POST to domain's gateway through the own relay; returns the inner 200 body. */
  async exchange(domain: string, path: string, content: Uint8Array): Promise<Uint8Array> {
    for (let attempt = 0; ; attempt++) {
      const key = await this.gatewayKey(domain, attempt > 0);
      const inner = encodeRequest({
        method: "POST",
        scheme: "https",
        authority: domain,
        path,
        headers: [
          ["content-type", "application/octet-stream"],
          ["date", new Date().toUTCString()],
        ],
        content,
        trailers: [],
      });
      const enc = await encapsulate(key, inner);
      const r = await this.f(`${this.o.baseUrl.replace(/\/$/, "")}/v1/ohttp-relay/${encodeURIComponent(domain)}`, {
        method: "POST",
        headers: { "content-type": MEDIA_TYPE_REQUEST, authorization: `Bearer ${this.o.token}` },
        body: new Uint8Array(enc.request),
      });
      const body = new Uint8Array(await r.arrayBuffer());
      if (r.status === 400 && attempt === 0 && /ohttp-key/.test(fromUtf8(body))) continue; // stale key: refetch once
      if (r.status !== 200 || !(r.headers.get("content-type") ?? "").startsWith(MEDIA_TYPE_RESPONSE)) {
        throw new RelayError(r.status, "relay", fromUtf8(body).slice(0, 200));
      }
      const resp = decodeResponse(await enc.decapsulate(body));
      if (resp.status !== 200) {
        throw new RelayError(resp.status, "gateway", `${path}: ${fromUtf8(resp.content).slice(0, 200)} ${fieldValue(resp.headers, "content-type") ?? ""}`);
      }
      return resp.content;
    }
  }

  /** Discovers a user: their provider and a bearer token for KeyPackage fetches. */
  async discover(userUri: string): Promise<m.DiscoveryResponse> {
    const d = domainOf(userUri);
    return m.decodeDiscoveryResponse(await this.exchange(d, "/v1/discover", m.encodeDiscoveryRequest({ userId: userUri })));
  }

  /**
   * Fetches one KeyPackage per request from one provider. Each result is the bare
   * KeyPackage or a FetchError.
   */
  async fetchKeyPackages(domain: string, requests: m.KeyPackageRequest[]): Promise<(Uint8Array | FetchError)[]> {
    const b = m.decodeKeyPackageResponseBundle(await this.exchange(domain, "/v1/keypackages", m.encodeKeyPackageRequestBundle({ requests })));
    return b.results.map((x, i) => (x.status === 0 && x.keyPackage ? x.keyPackage : new FetchError(x.status, requests[i].userId, x.message ?? "")));
  }

  /** Discovers and fetches one KeyPackage of a user for a suite. */
  async keyPackageOf(userUri: string, cipherSuite = 1): Promise<{ keyPackage: Uint8Array; provider: string }> {
    const disc = await this.discover(userUri);
    const [r] = await this.fetchKeyPackages(disc.provider, [{ userId: disc.userId, bearerToken: disc.bearerToken, version: 1, cipherSuite }]);
    if (r instanceof FetchError) throw r;
    return { keyPackage: r, provider: disc.provider };
  }
}
