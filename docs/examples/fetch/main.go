// Command fetch is the KeyPackage half of the two-provider recipe in the README: one
// device uploads a fresh KeyPackage to its own provider, and a device of another
// provider discovers that user and fetches the KeyPackage through its own provider's
// Oblivious HTTP relay (client.Remote). No mimids CLI verb fetches KeyPackages: this
// small program is how the recipe does it, with the Go client library only.
//
//	go run ./docs/examples/fetch upload -url ws://127.0.0.1:8082/v1/socket -token mdt_...
//	go run ./docs/examples/fetch get -url ws://127.0.0.1:8081/v1/socket -token mdt_... \
//	    -peer b.example -peer-url http://127.0.0.1:8082 -o bob-kp.bin mimi://b.example/u/bob
//
// upload makes a suite-1 KeyPackage (mls/mlstest, fresh keys, valid for 30 days) whose
// BasicCredential identity is the user URI the provider answered in auth_ok, uploads
// it over the socket and prints its KeyPackageRef and the stock left. get discovers
// the user at the peer, fetches one KeyPackage, checks it (RFC 9420 §10.1) and prints
// its ref and identity; -o writes it (binary) for `mimids mls keypackage -f`.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

const usage = `usage:
  fetch upload -url WS_URL -token TOKEN
  fetch get -url WS_URL -token TOKEN -peer DOMAIN -peer-url URL [-o FILE] USER_URI
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("fetch "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "your own provider's client socket, e.g. ws://127.0.0.1:8081/v1/socket")
	token := fs.String("token", "", "your device token (mdt_...), from `mimids client add`")
	peer := fs.String("peer", "", "get: the other provider's domain, e.g. b.example")
	peerURL := fs.String("peer-url", "", "get: the other provider's base URL, where its gateway keys are published")
	out := fs.String("o", "", "get: write the fetched KeyPackage (binary MLSMessage) to `FILE`")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *url == "" || *token == "" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: *url, Token: *token, MaxReconnectAttempts: 3})
	if err != nil {
		fmt.Fprintln(stderr, "fetch:", err)
		return 1
	}
	defer c.Close(context.Background())
	switch args[0] {
	case "upload":
		err = upload(ctx, c, stdout)
	case "get":
		if fs.NArg() != 1 || *peer == "" || *peerURL == "" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		err = get(ctx, c, *peer, *peerURL, fs.Arg(0), *out, stdout)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "fetch:", err)
		return 1
	}
	return 0
}

// upload stores one fresh KeyPackage of the authenticated user at its provider.
func upload(ctx context.Context, c *client.Client, stdout io.Writer) error {
	user := c.Session().UserID // mimi://<domain>/u/<user>, from auth_ok
	kp, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: user})
	if err != nil {
		return err
	}
	refs, err := c.UploadKeyPackages(ctx, [][]byte{kp})
	if err != nil {
		return err
	}
	st, err := c.KeyPackageCount(ctx, mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "uploaded a KeyPackage for %s\n  ref:       %x\n  available: %d (suite 1)\n", user, refs[0], st.Available)
	return nil
}

// get discovers user at peer and fetches one of their KeyPackages, both through the
// relay of the client's own provider.
func get(ctx context.Context, c *client.Client, peer, peerURL, user, out string, stdout io.Writer) error {
	r, err := c.Remote(client.RemoteConfig{PeerURL: func(string) string { return peerURL }})
	if err != nil {
		return err
	}
	d, err := r.Discover(ctx, peer, nil, user) // nil: fetch and cache the peer's keys
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "discovered %s at %s (bearer token of %d bytes)\n", d.UserID, d.Provider, len(d.BearerToken))
	res, err := r.FetchKeyPackages(ctx, peer, nil, []protocol.KeyPackageRequest{{
		UserID: d.UserID, BearerToken: d.BearerToken,
		Version: mls.ProtocolVersionMLS10, CipherSuite: mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519,
	}})
	if err != nil {
		return err
	}
	if err := res[0].Err(); err != nil {
		return err
	}
	kp, err := res[0].Response.Decode()
	if err != nil {
		return err
	}
	if _, err := mls.ValidateKeyPackage(kp, time.Now()); err != nil {
		return fmt.Errorf("fetched KeyPackage: %w", err)
	}
	if string(kp.LeafNode.Credential.Identity) != user {
		return errors.New("fetched KeyPackage names " + string(kp.LeafNode.Credential.Identity))
	}
	ref, err := kp.Ref()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fetched a KeyPackage of %s\n  ref:      %s\n  identity: %s\n", user, hex.EncodeToString(ref), kp.LeafNode.Credential.Identity)
	if out == "" {
		return nil
	}
	msg, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp}).Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, msg, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  written:  %s (%d bytes)\n", out, len(msg))
	return nil
}
