package hub_test

import (
	"encoding/binary"
	"testing"

	"github.com/mimids/mimids/mls/mlstest"
)

// syntheticGroup builds a valid one-member group of suite 1 in Go (mls/mlstest):
// its GroupInfo (with ratchet_tree) and a random partition key.
func syntheticGroup(tb testing.TB, groupID []byte) (groupInfo, partitionKey []byte) {
	tb.Helper()
	g, err := mlstest.NewGroup(mlstest.Options{GroupID: groupID, Identities: []string{"mimi://a.example/u/alice"}})
	if err != nil {
		tb.Fatal(err)
	}
	return g.GroupInfoMessage, g.PartitionKey
}

// syntheticApp is an application PrivateMessage of n bytes of ciphertext,
// made unique by i.
func syntheticApp(tb testing.TB, groupID []byte, i uint64, n int) []byte {
	ct := make([]byte, max(n, 8))
	binary.BigEndian.PutUint64(ct, i)
	b, err := mlstest.ApplicationMessage(groupID, 0, ct)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
