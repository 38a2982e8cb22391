# mimids developer workflow. Every target works on a fresh machine with Go and gcc.
GO        ?= go
DATA      ?= ./data
ADDR      ?= 127.0.0.1:8080
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
PKGS      ?= ./...

.PHONY: all build run test bench fuzz lint clean vectors-check demo

all: build

build:
	$(GO) build -buildvcs=auto -o bin/mimids ./cmd/mimids

# Build and start a provider on 127.0.0.1 with an embedded SQLite file under $(DATA).
# CONFIG=file.json starts it from that configuration instead; DATA or ADDR given
# as well still override the file's data_dir and listen.
ifdef CONFIG
RUNFLAGS = -config $(CONFIG) $(if $(filter-out file,$(origin DATA)),-data $(DATA)) $(if $(filter-out file,$(origin ADDR)),-listen $(ADDR))
else
RUNFLAGS = -data $(DATA) -listen $(ADDR)
endif
run: build
	./bin/mimids serve $(RUNFLAGS)

# Every test: the Go tests (unit, integration and multi-process, with the race
# detector), then the TypeScript SDK's (sdk-test) where npm is installed. Without
# npm they are skipped with a message, unless CI is set: then that is a failure.
test: test-go
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory sdk-test; \
	elif [ -n "$$CI" ]; then echo "make test: npm is missing: the TypeScript SDK's tests need Node 20+ and npm" >&2; exit 1; \
	else echo "make test: npm not found: skipped the TypeScript SDK's tests (sdk/typescript, make sdk-test)"; fi

# The Go tests alone.
test-go:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# The conformance vectors in testdata/ are unchanged (names any file missing or changed).
vectors-check:
	cd testdata && sha256sum --quiet -c SHA256SUMS

# Three providers as separate processes, one group across them (docs/examples/demo).
demo: build
	$(GO) run ./docs/examples/demo -mimids ./bin/mimids

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

# Every fuzz target, each for $(FUZZTIME) (see .ci/fuzz).
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./.ci/fuzz

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin

# --- TypeScript SDK (issue 14): sdk/typescript, needs Node 20+ and npm ---
# sdk-test: its codec, OHTTP, integration and browser tests (against a mimids built
# from this tree; the browser test needs Debian's chromium). make test runs it.
# chat: builds the SDK's web chat, starts two federated providers and serves the chat
# (CHAT_PORT, default 8090; open ?user=alice and ?user=bob in two tabs).
.PHONY: sdk-test chat test-go
sdk-test:
	cd sdk/typescript && npm ci --no-audit --no-fund && npm test
CHAT_PORT ?= 8090
chat:
	cd sdk/typescript && npm ci --no-audit --no-fund && CHAT_PORT=$(CHAT_PORT) npx tsx examples/chat/serve.ts

