package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
)

// RunPolicy runs the suite of directory.PolicyStore: provider-wide bans and reports.
// newStore returns an empty store that lives for the test.
func RunPolicy(t *testing.T, newStore func(t *testing.T) directory.PolicyStore) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := newStore(t)
	ctx := context.Background()
	if err := s.AddBan(ctx, directory.Ban{UserURI: "mimi://b.example/u/mallory", Reason: "spam", At: at}); err != nil {
		t.Fatal(err)
	}
	s.AddBan(ctx, directory.Ban{UserURI: "mimi://b.example/u/mallory", Reason: "spam again", At: at.Add(time.Hour)})
	s.AddBan(ctx, directory.Ban{UserURI: "mimi://a.example/u/eve", Reason: "", At: at})
	bans, err := s.Bans(ctx)
	if err != nil || len(bans) != 2 || bans[1].Reason != "spam again" || !bans[1].At.Equal(at.Add(time.Hour)) {
		t.Fatalf("Bans = %+v, %v", bans, err)
	}
	if removed, err := s.RemoveBan(ctx, "mimi://a.example/u/eve"); !removed || err != nil {
		t.Fatalf("RemoveBan = %v, %v", removed, err)
	}
	if removed, _ := s.RemoveBan(ctx, "mimi://a.example/u/eve"); removed {
		t.Fatal("RemoveBan twice removed something")
	}
	for i, kind := range []protocol.ReportKind{protocol.ReportMember, protocol.ReportHub} {
		r := directory.StoredReport{At: at, ReporterClient: 3, ReporterUser: "mimi://a.example/u/alice",
			Report: protocol.Report{Kind: kind, GroupID: []byte("g"), Subject: []byte(fmt.Sprint("s", i)), Reason: "why"}}
		if _, err := s.AddReport(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.Reports(ctx, 10)
	if err != nil || len(rs) != 2 || rs[0].Kind != protocol.ReportHub || string(rs[0].Subject) != "s1" || rs[1].ReporterClient != 3 ||
		rs[1].ReporterUser != "mimi://a.example/u/alice" || rs[1].Reason != "why" || !rs[1].At.Equal(at) || rs[0].ID <= rs[1].ID {
		t.Fatalf("Reports = %+v, %v", rs, err)
	}
}
