package gateway

import (
	"context"
	"errors"
	"testing"

	"github.com/mimids/mimids/protocol"
)

// fakeParts serves the partitions in keys (partition key -> masked key) and
// records which it was asked.
type fakeParts struct {
	name    string
	keys    map[string]string
	follows bool
	asked   *[]string
}

func (f fakeParts) Subscribe(masked []byte, _ PartitionSink) func() {
	*f.asked = append(*f.asked, f.name+" subscribe")
	return func() {}
}

func (f fakeParts) Fetch(_ context.Context, masked []byte, _ int64, _ int) ([]PartitionEntry, error) {
	*f.asked = append(*f.asked, f.name+" fetch")
	return nil, nil
}

func (f fakeParts) Masked(_ context.Context, pk []byte) ([]byte, error) {
	*f.asked = append(*f.asked, f.name+" masked")
	if m, ok := f.keys[string(pk)]; ok {
		return []byte(m), nil
	}
	if string(pk) == "broken" {
		return nil, errors.New("store down")
	}
	return nil, protocol.NewError(protocol.CodeNotFound, "unknown partition")
}

func (f fakeParts) Follows(masked []byte) bool {
	for _, m := range f.keys {
		if m == string(masked) {
			return true
		}
	}
	return false
}

func TestRoutedPartitions(t *testing.T) {
	var asked []string
	p := RoutedPartitions{
		Hosted: fakeParts{name: "hub", keys: map[string]string{"h": "mh"}, asked: &asked},
		Remote: fakeParts{name: "copy", keys: map[string]string{"r": "mr"}, asked: &asked},
	}
	ctx := context.Background()
	for _, c := range []struct {
		pk, masked string
		code       protocol.Code
		asked      []string
	}{
		{"h", "mh", 0, []string{"hub masked", "hub subscribe", "hub fetch"}},
		{"r", "mr", 0, []string{"hub masked", "copy masked", "copy subscribe", "copy fetch"}},
		{"x", "", protocol.CodeNotFound, []string{"hub masked", "copy masked"}},
		{"broken", "", protocol.CodeInternal, []string{"hub masked"}}, // a hub failure is not "elsewhere"
	} {
		asked = nil
		m, err := p.Masked(ctx, []byte(c.pk))
		if c.code != 0 {
			if code, ok := protocol.CodeOf(err); (ok && code != c.code) || err == nil || (!ok && c.code != protocol.CodeInternal) {
				t.Errorf("%s: %v, want %s", c.pk, err, c.code)
			}
		} else {
			if err != nil || string(m) != c.masked {
				t.Fatalf("%s: %q %v", c.pk, m, err)
			}
			p.Subscribe(m, nil)()
			if _, err := p.Fetch(ctx, m, -1, 10); err != nil {
				t.Fatal(err)
			}
		}
		if len(asked) != len(c.asked) {
			t.Fatalf("%s: asked %v, want %v", c.pk, asked, c.asked)
		}
		for i := range asked {
			if asked[i] != c.asked[i] {
				t.Fatalf("%s: asked %v, want %v", c.pk, asked, c.asked)
			}
		}
	}
}
