/** Node entry point: the `ws` WebSocket for the SDK. */
import WebSocket from "ws";
import type { SocketFactory, SocketLike } from "./socket.js";

/** Opens sockets with the `ws` package. */
export const nodeSocketFactory: SocketFactory = (url, protocol) => {
  const ws = new WebSocket(url, protocol, { perMessageDeflate: false });
  return ws as unknown as SocketLike;
};
