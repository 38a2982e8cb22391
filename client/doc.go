// Package client is the Go client of the mimids client socket (GET /v1/socket,
// subprotocol mimids.v1; the frames are defined in package protocol and described in
// docs/protocol.md). It owns one device's connection: it authenticates with the
// device token in the first frame, pipelines requests (answers may come in any order),
// hands mailbox deliveries to a Handler in seq order exactly once per Client,
// acknowledges them in coalesced ack frames, and reconnects with capped, jittered
// exponential backoff and resumes after a lost connection, a slow-consumer close
// (4008) or a server restart (1001). It stops for good when the token is refused or
// revoked (4001, 4003) and reports why through Err.
//
// Delivery semantics: the server keeps each entry until it is acknowledged and
// replays unacknowledged entries after every reconnect, so an entry may arrive more
// than once; the client drops every delivery whose seq is not above the last one the
// handler accepted. Across processes, persist Client.LastSeq with Client.Incarnation
// and pass them back as Config.LastSeq and Config.Incarnation. When the provider's
// store has a new incarnation (it lost committed writes or was restored, so seqs
// the handler saw may name new entries), the client drops that mark and takes
// every entry delivered (SessionInfo.StoreReset). With Config.ManualAck the application acknowledges with Client.Ack
// once it has stored the entry durably. An ack is never sent for a seq the current
// connection has not delivered (the server refuses those); Client.Flush writes the
// due ack at once and returns when the server has committed it.
//
// The server may pack several frames into one WebSocket message; the client decodes
// them all. Push and partition_event frames (group subscriptions) go to Config.OnPush.
//
// KeyPackages and discovery of other users go through Remote (Client.Remote), which
// speaks Oblivious HTTP through the own provider's relay (docs/protocol.md §3). The
// same calls reach users of the client's own provider: pass the own domain
// (Remote.Domain, learnt from auth_ok's user_id) as the peer. The relay serves it
// through its own gateway in process, with the same claim, last-resort and
// bearer-token rules, and no peer configuration.
//
// Concurrency: each connection has one reader goroutine (the only Read caller), one
// writer goroutine (the only Write caller) and one dispatcher goroutine (the only
// Handler caller). The request queue is bounded in frames and bytes; the delivery
// queue is bounded too, and when it overflows the client reconnects so that the
// server replays what did not fit. Every blocking call takes a context.
//
// A minimal program:
//
//	c, err := client.Dial(ctx, client.Config{
//		URL:   "ws://127.0.0.1:8080/v1/socket",
//		Token: token,
//		Handler: func(ctx context.Context, d *client.Delivery) error {
//			n, err := d.Notice()
//			if err != nil {
//				return nil // not a notice: skip it (it is still acknowledged)
//			}
//			fmt.Println(d.Seq, n.Text)
//			return nil
//		},
//	})
//	if err != nil {
//		return err
//	}
//	defer c.Close(context.Background())
//	rtt, err := c.Ping(ctx)
package client
