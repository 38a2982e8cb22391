package sqlite

import (
	"testing"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/hub/hubtest"
)

func TestHubConformance(t *testing.T) {
	hubtest.Run(t, func(t *testing.T) hub.Store { return openTest(t) })
}
