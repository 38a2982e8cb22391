package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mimids/mimids/cmd/provider"
)

// Config is the provider configuration (cmd/provider).
type Config = provider.Config

func defaultConfig() Config { return provider.DefaultConfig() }

// loadConfig parses the common flags (-config, -domain, -listen, -data, -log-format,
// -log-level) from args, reads the file if any, applies the flags and validates.
func loadConfig(fs *flag.FlagSet, args []string) (Config, error) {
	cfg := defaultConfig()
	path := fs.String("config", "", "JSON configuration `file`")
	domain := fs.String("domain", "", "provider domain (default localhost)")
	listen := fs.String("listen", "", "listen address (default 127.0.0.1:8080)")
	data := fs.String("data", "", "data directory (default ./data)")
	logFormat := fs.String("log-format", "", "log format: text or json")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *path != "" {
		b, err := os.ReadFile(*path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", *path, err)
		}
		if dec.More() {
			return cfg, fmt.Errorf("config %s: trailing data after the JSON object", *path)
		}
		cfg.Gateway = cfg.Gateway.WithDefaults()
	}
	for _, o := range []struct {
		v   string
		dst *string
	}{{*domain, &cfg.Domain}, {*listen, &cfg.Listen}, {*data, &cfg.DataDir}, {*logFormat, &cfg.Log.Format}, {*logLevel, &cfg.Log.Level}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	cfg.Domain = strings.ToLower(cfg.Domain)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func newLogger(c provider.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
