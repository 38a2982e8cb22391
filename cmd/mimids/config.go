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

// configFlags are the flags that override the configuration file. A verb
// registers only those it uses; the others stay nil.
type configFlags struct {
	path, domain, listen, data, logFormat, logLevel *string
	integrityCheck                                  *string
	forceNewStore                                   *bool
}

// serveConfigFlags registers every configuration flag (mimids serve).
func serveConfigFlags(fs *flag.FlagSet) *configFlags {
	f := storeConfigFlags(fs, true)
	f.listen = fs.String("listen", "", "listen `address` (default 127.0.0.1:8080)")
	f.logFormat = fs.String("log-format", "", "log `format`: text or json")
	f.logLevel = fs.String("log-level", "", "log `level`: debug, info, warn, error")
	f.integrityCheck = fs.String("integrity-check", "", "store check at start: quick (default), full or off")
	f.forceNewStore = fs.Bool("force-new-store", false,
		"create a new, empty store even where the store file is missing or empty beside the remains of one (they are set aside)")
	return f
}

// storeConfigFlags registers the flags that find the store (-config, -data) and,
// for verbs that print or parse user URIs, -domain.
func storeConfigFlags(fs *flag.FlagSet, domain bool) *configFlags {
	f := &configFlags{
		path: fs.String("config", "", "JSON configuration `file`"),
		data: fs.String("data", "", "data `directory` holding the store (default ./data)"),
	}
	if domain {
		f.domain = fs.String("domain", "", "provider `domain`: users are mimi://DOMAIN/u/NAME (default localhost)")
	}
	return f
}

// load reads the file if any, applies the flags given and validates. The
// flag set must have been parsed.
func (f *configFlags) load() (Config, error) {
	cfg := defaultConfig()
	if *f.path != "" {
		b, err := os.ReadFile(*f.path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", *f.path, err)
		}
		if dec.More() {
			return cfg, fmt.Errorf("config %s: trailing data after the JSON object", *f.path)
		}
		cfg.Gateway = cfg.Gateway.WithDefaults()
	}
	for _, o := range []struct {
		v   *string
		dst *string
	}{{f.domain, &cfg.Domain}, {f.listen, &cfg.Listen}, {f.data, &cfg.DataDir}, {f.logFormat, &cfg.Log.Format},
		{f.logLevel, &cfg.Log.Level}, {f.integrityCheck, &cfg.Store.IntegrityCheck}} {
		if o.v != nil && *o.v != "" {
			*o.dst = *o.v
		}
	}
	if f.forceNewStore != nil {
		cfg.Store.ForceNew = *f.forceNewStore
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
