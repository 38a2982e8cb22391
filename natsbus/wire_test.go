package natsbus

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/mimids/mimids/hub"
)

func TestWireRoundTrip(t *testing.T) {
	e := hub.Entry{Masked: []byte{1, 2}, Counter: 7, ContentType: 3, Public: true, Message: []byte("m"), NextMasked: []byte{9}, GroupInfo: []byte("gi")}
	for _, tc := range []struct {
		name string
		data []byte
		want message
	}{
		{"entry", appendEntry(nil, e), message{kind: kindEntry, entry: e}},
		{"entry without next", appendEntry(nil, hub.Entry{Masked: []byte{1}, Counter: 1, Message: []byte("x")}),
			message{kind: kindEntry, entry: hub.Entry{Masked: []byte{1}, Counter: 1, Message: []byte("x")}}},
		{"notice", appendNotice(nil, []byte{4}, 12, true), message{kind: kindNotice, masked: []byte{4}, length: 12, terminated: true}},
		{"mailbox", appendClient(nil, kindEntries, 99), message{kind: kindEntries, clientID: 99}},
		{"revoked", appendClient(nil, kindRevoked, 5), message{kind: kindRevoked, clientID: 5}},
		{"all", []byte{kindAll}, message{kind: kindAll}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.data)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decode: %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	for _, bad := range [][]byte{nil, {0}, {kindEntries, 1}, append(appendClient(nil, kindRevoked, 1), 0)} {
		if _, err := decode(bad); err == nil {
			t.Errorf("decode(%x) accepted", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(appendEntry(nil, hub.Entry{Masked: []byte{1}, Message: []byte("m")}))
	f.Add(appendNotice(nil, []byte{1}, 3, false))
	f.Add(appendClient(nil, kindRevoked, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decode(data)
		if err != nil || m.kind != kindEntry {
			return
		}
		if again := appendEntry(nil, m.entry); !bytes.Equal(again, data) {
			t.Fatalf("re-encoding %x gives %x", data, again)
		}
	})
}
