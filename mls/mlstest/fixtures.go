package mlstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// KeyPackageFixture is one KeyPackage of the ts-mls fixture file
// mls/testdata/tsmls/keypackages.json (see its README).
type KeyPackageFixture struct {
	Reason         string `json:"reason"` // invalid ones: why
	Identity       string `json:"identity"`
	User           string `json:"user"`
	Provider       string `json:"provider"`
	CipherSuite    uint16 `json:"cipher_suite"`
	KeyPackage     Hex    `json:"key_package"` // MLSMessage-wrapped
	KeyPackageBare Hex    `json:"key_package_bare"`
	KeyPackageRef  Hex    `json:"key_package_ref"`
	LastResort     bool   `json:"last_resort"`
}

// KeyPackageFixtures is the content of keypackages.json.
type KeyPackageFixtures struct {
	ValidationTime int64               `json:"validation_time"` // the clock to validate them at
	KeyPackages    []KeyPackageFixture `json:"key_packages"`
	Invalid        []KeyPackageFixture `json:"invalid_key_packages"`
}

// LoadKeyPackageFixtures reads keypackages.json at path. A missing file, or one
// without valid and invalid KeyPackages and a validation time, is an error.
func LoadKeyPackageFixtures(path string) (KeyPackageFixtures, error) {
	var f KeyPackageFixtures
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("mlstest: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("mlstest: %s: %w", path, err)
	}
	if len(f.KeyPackages) == 0 || len(f.Invalid) == 0 || f.ValidationTime == 0 {
		return f, errors.New("mlstest: " + path + ": no KeyPackages, no invalid ones or no validation_time")
	}
	return f, nil
}

// Now is the fixtures' validation time.
func (f KeyPackageFixtures) Now() time.Time { return time.Unix(f.ValidationTime, 0) }

// Of returns the valid KeyPackages of one user URI.
func (f KeyPackageFixtures) Of(identity string) []KeyPackageFixture {
	var out []KeyPackageFixture
	for _, k := range f.KeyPackages {
		if k.Identity == identity {
			out = append(out, k)
		}
	}
	return out
}
