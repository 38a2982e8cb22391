package sqlite

import (
	"testing"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedtest"
)

func TestFederationConformance(t *testing.T) {
	fedtest.Run(t, func(t *testing.T) federation.Store { return openTest(t) })
}

func TestFederationRecordJoinsOtherStores(t *testing.T) {
	fedtest.RunJoins(t, func(t *testing.T) fedtest.JoinStore { return openTest(t) })
}

func TestLeaseConformance(t *testing.T) {
	fedtest.RunLeases(t, func(t *testing.T) federation.LeaseStore { return openTest(t) })
}
