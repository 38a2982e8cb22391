package sqlite

import (
	"testing"

	"github.com/mimids/mimids/directory/storetest"
)

func TestKeyPackageConformance(t *testing.T) {
	storetest.RunKeyPackages(t, func(t *testing.T) storetest.KeyPackageBackend { return openTest(t) })
}
