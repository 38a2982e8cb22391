package directory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
)

// TestReportRateLimit: each reporting client has its own bucket; a refused report is
// rate_limited and not stored; the bucket refills with time.
func TestReportRateLimit(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	p := newPolicy(t, directory.PolicyConfig{ReportRate: 1, ReportBurst: 3, Now: func() time.Time { return now }})
	r := protocol.Report{Kind: protocol.ReportHub, GroupID: []byte("g"), Reason: "spam"}
	mallory := directory.Reporter{ClientID: 7, UserURI: "mimi://a.example/u/mallory"}
	alice := directory.Reporter{ClientID: 8, UserURI: "mimi://a.example/u/alice"}
	file := func(who directory.Reporter) error { _, err := p.FileReport(ctx, who, r); return err }
	for i := range 3 {
		if err := file(mallory); err != nil {
			t.Fatalf("report %d in the burst: %v", i, err)
		}
	}
	err := file(mallory)
	if code, _ := protocol.CodeOf(err); !errors.Is(err, directory.ErrReportRateLimited) || code != protocol.CodeRateLimited {
		t.Fatalf("report past the burst: %v (code %s), want rate_limited", err, code)
	}
	if err := file(alice); err != nil {
		t.Fatalf("another client's report: %v", err)
	}
	now = now.Add(time.Second)
	if err := file(mallory); err != nil {
		t.Fatalf("after a second: %v", err)
	}
	if err := file(mallory); !errors.Is(err, directory.ErrReportRateLimited) {
		t.Fatalf("second report after a second: %v", err)
	}
	if rs, _ := p.ListReports(ctx, 100); len(rs) != 5 {
		t.Fatalf("%d reports stored, want 5 (refused ones are not)", len(rs))
	}

	off := newPolicy(t, directory.PolicyConfig{ReportRate: -1})
	for i := range 50 {
		if _, err := off.FileReport(ctx, mallory, r); err != nil {
			t.Fatalf("report %d with the limit off: %v", i, err)
		}
	}
}
