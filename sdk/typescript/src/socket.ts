/** The WebSocket the SDK needs: the browser's, or `ws` under Node (see node.ts). */

export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** Opens a WebSocket offering one subprotocol. */
export type SocketFactory = (url: string, protocol: string) => SocketLike;

/** The browser's WebSocket (or Node's global one where present). */
export function defaultSocketFactory(): SocketFactory {
  const WS = (globalThis as { WebSocket?: new (url: string, protocols: string) => SocketLike }).WebSocket;
  if (!WS) throw new Error("mimids: no global WebSocket; under Node pass socket: nodeSocketFactory from @mimids/sdk/node");
  return (url, protocol) => new WS(url, protocol);
}

/** Bytes of a binary message event. */
export function messageBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}
