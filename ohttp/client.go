package ohttp

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/mimids/mimids/ohttp/bhttp"
)

// Client encapsulates requests to one gateway key configuration and opens
// the responses. It is immutable and safe for concurrent use.
type Client struct {
	config KeyConfig
	alg    SymmetricAlgorithm
}

// NewClient chooses, from a gateway's application/ohttp-keys list, the
// first configuration this package can use and its first usable (KDF,
// AEAD) pair: the gateway lists its keys newest first and its pairs in
// order of preference.
func NewClient(keyConfigs []byte) (*Client, error) {
	cs, err := UnmarshalKeyConfigs(keyConfigs)
	if err != nil {
		return nil, err
	}
	alg, _ := cs[0].Preferred() // UnmarshalKeyConfigs keeps only usable configurations
	return NewClientForConfig(cs[0], alg)
}

// NewClientForConfig returns a client for one configuration and pair.
func NewClientForConfig(cfg KeyConfig, alg SymmetricAlgorithm) (*Client, error) {
	if !cfg.Offers(alg) || !alg.Supported() || !cfg.KEM.Supported() {
		return nil, fmt.Errorf("%w: %v with %v for key %d", ErrUnsupportedSuite, cfg.KEM, alg, cfg.KeyID)
	}
	if _, err := cfg.MarshalBinary(); err != nil {
		return nil, err
	}
	cfg.PublicKey = slices.Clone(cfg.PublicKey)
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	return &Client{config: cfg, alg: alg}, nil
}

// Config returns the configuration requests are encapsulated to.
func (c *Client) Config() KeyConfig { return c.config }

// Algorithm returns the (KDF, AEAD) pair requests use.
func (c *Client) Algorithm() SymmetricAlgorithm { return c.alg }

// EncapsulateRequest encapsulates an encoded Binary HTTP request.
func (c *Client) EncapsulateRequest(request []byte) ([]byte, *ClientContext, error) {
	return EncapsulateRequest(&c.config, c.alg, request)
}

// Encapsulate encodes req and encapsulates it. It adds a Date field (which
// gateways use against replays) when req has none; req is not modified.
func (c *Client) Encapsulate(req *bhttp.Request) ([]byte, *ClientContext, error) {
	if req.Header.Get("date") == "" {
		r := *req
		r.Header = append(slices.Clip(req.Header), bhttp.Field{Name: "date", Value: time.Now().UTC().Format(http.TimeFormat)})
		req = &r
	}
	b, err := req.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	return c.EncapsulateRequest(b)
}

// Decapsulate opens an Encapsulated Response and decodes the Binary HTTP
// response with the default limits.
func (cc *ClientContext) Decapsulate(encResponse []byte) (*bhttp.Response, error) {
	b, err := cc.DecapsulateResponse(encResponse)
	if err != nil {
		return nil, err
	}
	return bhttp.UnmarshalResponse(b)
}

// StatusError is an answer of the relay or gateway that is not an
// Encapsulated Response: an error in clear, such as a problem JSON.
type StatusError struct {
	StatusCode  int
	ContentType string
	Body        []byte // at most 4 KiB of it
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("ohttp: relay answered %d %s", e.StatusCode, e.ContentType)
}

// DefaultMaxResponseBytes bounds the responses Client.Do and the relay read.
const DefaultMaxResponseBytes = 1 << 20

// Do encapsulates req, POSTs it to url (a relay, or a gateway directly)
// with hc, and returns the decapsulated response. An answer that is not
// an Encapsulated Response is returned as a *StatusError.
func (c *Client) Do(ctx context.Context, hc *http.Client, url string, req *bhttp.Request) (*bhttp.Response, error) {
	encReq, cc, err := c.Encapsulate(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(encReq))
	if err != nil {
		return nil, fmt.Errorf("ohttp: request: %w", err)
	}
	hr.Header.Set("Content-Type", MediaTypeRequest)
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("ohttp: post: %w", err)
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, resp.ContentLength, DefaultMaxResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("ohttp: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !hasMediaType(resp.Header, MediaTypeResponse) {
		return nil, &StatusError{StatusCode: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
			Body: body[:min(len(body), 4<<10)]}
	}
	return cc.Decapsulate(body)
}
