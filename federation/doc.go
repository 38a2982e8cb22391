// Package federation is the link layer between providers: one authenticated
// WebSocket per pair of providers, over TLS 1.3 with mutual authentication, carrying
// envelopes that are queued in the store, acknowledged, retried and deduplicated
// (docs/protocol.md §5 is the wire format and the rules).
//
// It owns the allow-list of peers (PeerStore: domain, URL, and the CA bundle or the
// pinned certificate that proves the domain), each peer's outbound queue (QueueStore:
// the source of truth, with a bounded window in memory), and the dedup records of
// what each peer sent (DedupStore), all behind interfaces that sqlite/ implements
// and federation/fedtest checks.
//
// A provider uses it through Links:
//
//   - Send queues an envelope for a peer and returns its id once committed; Call
//     does the same and waits for the peer's answer.
//   - Handle and HandleAtomic register what to do with each envelope type a peer
//     sends. A handler learns the peer's proven domain (Inbound.Peer) and answers
//     with a body (an ack) or a coded error (an error envelope); a retried envelope
//     gets the recorded answer and the handler is not called again.
//   - OnAnswer registers what to do, durably, with the answers to an envelope type
//     this provider sent.
//
// Exactly once: the receiver records each envelope's answer with the highest id it
// applied, in one store transaction. A HandleAtomic handler runs inside that
// transaction (store writes made with its context join it), so its effect and the
// record commit together, across restarts of either side. A Handle handler runs
// outside it: if the process dies after the handler's effect committed and before
// the record did, the retried envelope reaches the handler again, so a Handle
// handler must be idempotent for (Inbound.Peer, Inbound.ID), or for a key of its
// own carried in the body. Answers are handled the same way: an OnAnswer function
// runs in the transaction that removes the envelope from the queue.
//
// The link itself is a gateway/conn connection (bounded send queue, on-demand
// writer, ping, named closes). The queue refills the connection from the store as
// the peer answers, at most Config.Window envelopes in flight.
package federation
