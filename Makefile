# Spillway. `make run` starts the local server on its defaults; `make test`
# runs every test. Go tools come from go.mod; nothing else is needed.

GO      ?= go
BIN     ?= bin
GOFLAGS ?=

.PHONY: run test build lint clean

run:
	$(GO) run ./localserver

test:
	$(GO) test -race -count=1 -timeout 20m ./...

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/localserver ./localserver

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
