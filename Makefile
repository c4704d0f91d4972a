# Spillway. `make run` starts the local server on its defaults; `make test`
# runs every test. Go tools come from go.mod; nothing else is needed.

GO      ?= go
BIN     ?= bin
GOFLAGS ?=

.PHONY: run test build lint clean build-UploadFunction

run:
	$(GO) run ./localserver

test:
	$(GO) test -race -count=1 -timeout 20m ./...

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/localserver ./localserver
	CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -o $(BIN)/bootstrap ./functions/upload

# Run by `sam build` (BuildMethod: makefile) for the UploadFunction resource.
build-UploadFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags="-s -w" \
		-o $(ARTIFACTS_DIR)/bootstrap ./functions/upload

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cfn-lint template.yaml

clean:
	rm -rf $(BIN)
