package hub

import (
	"context"
	"encoding"
	"fmt"

	"github.com/mimids/mimids/protocol"
)

// Methods is the hub's table of group methods: each decodes the request body,
// calls the hub and encodes the answer. The gateway serves its clients' requests
// from it, and a federation link its followers'.
func (h *Hub) Methods() protocol.GroupMethods {
	return protocol.GroupMethods{
		protocol.MethodCreateGroup: method(func(ctx context.Context, s protocol.Sender, req *protocol.CreateGroupRequest) (encoding.BinaryMarshaler, error) {
			resp, err := h.CreateGroup(ctx, s, req)
			return &resp, err
		}),
		protocol.MethodSend: method(func(ctx context.Context, s protocol.Sender, req *protocol.SendRequest) (encoding.BinaryMarshaler, error) {
			return h.Send(ctx, s, req)
		}),
		protocol.MethodReceive: method(func(ctx context.Context, _ protocol.Sender, req *protocol.ReceiveRequest) (encoding.BinaryMarshaler, error) {
			return h.Receive(ctx, req)
		}),
		protocol.MethodGroupInfo: method(func(ctx context.Context, _ protocol.Sender, req *protocol.GroupInfoRequest) (encoding.BinaryMarshaler, error) {
			return h.GroupInfo(ctx, req)
		}),
		protocol.MethodExternalJoin: method(func(ctx context.Context, s protocol.Sender, req *protocol.ExternalJoinRequest) (encoding.BinaryMarshaler, error) {
			resp, err := h.ExternalJoin(ctx, s, req)
			return &resp, err
		}),
	}
}

// method adapts a typed hub call to a GroupHandler.
func method[T any, PT interface {
	*T
	encoding.BinaryUnmarshaler
}](fn func(context.Context, protocol.Sender, PT) (encoding.BinaryMarshaler, error)) protocol.GroupHandler {
	return func(ctx context.Context, s protocol.Sender, body []byte) ([]byte, error) {
		req := PT(new(T))
		if err := req.UnmarshalBinary(body); err != nil {
			if _, coded := protocol.CodeOf(err); !coded {
				err = fmt.Errorf("%w: %w", protocol.ErrMalformed, err)
			}
			return nil, err
		}
		resp, err := fn(ctx, s, req)
		if err != nil {
			return nil, err
		}
		return resp.MarshalBinary()
	}
}
