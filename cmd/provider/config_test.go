package provider

import (
	"strings"
	"testing"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default configuration: %v", err)
	}
}

// TestClusterFederates: a node of several may federate (link leases); the lease's
// term has a floor.
func TestClusterFederates(t *testing.T) {
	c := DefaultConfig()
	c.Cluster.NATSURL = "nats://127.0.0.1:4222"
	c.Federation.CertFile, c.Federation.KeyFile = "cert.pem", "key.pem"
	if err := c.Validate(); err != nil {
		t.Fatalf("a federating cluster node: %v", err)
	}
	c.Cluster.LeaseTTL = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "cluster.lease_ttl") {
		t.Fatalf("lease_ttl 0: %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.Domain = "Not A Domain"
	c.Listen = "nowhere"
	c.Log.Format = "xml"
	c.Store.Synchronous = "sometimes"
	c.Peers = []PeerConfig{{Domain: "b.example", URL: "ftp://b.example"}, {Domain: "b.example", URL: "https://b.example"}}
	c.Discovery.TokenPolicy = "everyone"
	c.OHTTP.KeyGrace = 0
	c.OHTTP.RelayRate = 0
	c.KeyPackages.MaxPerUpload = 0
	c.Hub.MaxMessageSize = 10
	c.TLS.CertFile = "cert.pem"
	c.Hub.ReportRate = 0
	c.KeyPackages.UploadRate = 0
	c.Mailbox.MaxBytes = 1000
	c.Cluster = ClusterConfig{NATSURL: "::nowhere", Subject: "mimids.*", PollInterval: 0}
	c.Dashboard.MaxAge = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"domain", "listen", "log.format", "store.synchronous", "peers[0].url",
		"peers[1].domain", "discovery.token_policy", "ohttp.key_grace", "ohttp.relay_rate", "key_packages", "hub:", "tls",
		"report_rate", "upload_rate", "mailbox: ", "cluster.nats_url", "cluster.subject", "cluster.poll_interval", "cluster.lease_ttl", "dashboard: idle_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not report %s:\n%v", want, err)
		}
	}
}
