# Spillway. `make run` starts the local server on its defaults; `make test`
# runs every test. Go tools come from go.mod; nothing else is needed.

GO      ?= go
BIN     ?= bin
GOFLAGS ?=

# Local S3 (versitygw) and the function under the Lambda Runtime Interface
# Emulator, both pinned and built from the Go module proxy, on loopback.
VERSITYGW := github.com/versity/versitygw/cmd/versitygw@v1.8.0
RIE       := github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d
S3_ADDR   ?= 127.0.0.1:7070
S3_DIR    ?= .s3
S3_BUCKET ?= spillway
S3_KEY    ?= spillwaydev
S3_SECRET ?= spillwaydevsecret
RIE_ADDR  ?= 127.0.0.1:9000
RIE_API   ?= 127.0.0.1:9001
EVENT     ?= lambdahttp/testdata/function-url-text.json
S3_ENV    := AWS_ENDPOINT_URL_S3=http://$(S3_ADDR) AWS_ACCESS_KEY_ID=$(S3_KEY) \
	AWS_SECRET_ACCESS_KEY=$(S3_SECRET) AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

.PHONY: run test build lint lint-cross clean build-UploadFunction s3 run-s3 emulator emulate invoke loadtest fuzz bench coldstart

run:
	$(GO) run ./localserver

# The allocation guards run again without the race detector, which makes
# sync.Pool drop buffers and so skews allocation figures. The upload page's
# tests (./web) drive a real Chromium: without one they skip, which go test
# does not show, so say it here; under CI=true they fail instead.
test:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		command -v google-chrome >/dev/null || \
		echo "make test: no Chromium on PATH, so the upload page's browser tests $$([ "$$CI" = true ] && echo fail || echo skip); install it with: sudo apt-get install -y chromium" >&2
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run 'Allocat' ./spool ./lambdahttp

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/localserver ./localserver
	CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -o $(BIN)/bootstrap ./functions/upload
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/spillway ./cmd/spillway
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/funcurl ./cmd/funcurl

# Run by `sam build` (BuildMethod: makefile) for the UploadFunction resource.
build-UploadFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags="-s -w" \
		-o $(ARTIFACTS_DIR)/bootstrap ./functions/upload

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(MAKE) --no-print-directory lint-cross
	cfn-lint template.yaml

# The server and the client where developers work (macOS: everything, the
# tests included), and the client on Windows. Only the client's own files
# are vetted for Windows: its tests start the server's packages, and the
# spool has no Windows port (no flock or O_NOFOLLOW to build it on).
WIN_PKGS := ./cmd/spillway ./client
lint-cross:
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./localserver ./cmd/spillway ./cmd/funcurl ./functions/upload
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null $(WIN_PKGS)
	@for p in $(WIN_PKGS); do echo "GOOS=windows $(GO) vet $$p (without its tests)"; \
		GOOS=windows GOARCH=amd64 $(GO) vet $$(ls $$p/*.go | grep -v '_test\.go$$') || exit 1; done

clean:
	rm -rf $(BIN)

FUZZTIME ?= 10s

# Each fuzz target for $(FUZZTIME); a failing input lands in the package's
# testdata/fuzz, where `make test` replays it from then on.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzValidateName$$' -fuzztime=$(FUZZTIME) ./store
	$(GO) test -run='^$$' -fuzz='^FuzzMultipart$$' -fuzztime=$(FUZZTIME) ./api
	$(GO) test -run='^$$' -fuzz='^FuzzEvent$$' -fuzztime=$(FUZZTIME) ./lambdahttp
	$(GO) test -run='^$$' -fuzz='^FuzzFormData$$' -fuzztime=$(FUZZTIME) ./internal/formdata
	$(GO) test -run='^$$' -fuzz='^FuzzDispositionFileName$$' -fuzztime=$(FUZZTIME) ./internal/formdata

# Benchmarks against the real binary on loopback (1 GiB and 4 GiB raw and
# multipart uploads, small PUTs at 32 connections, each beside the hashing
# floor; nginx, tusd and aws s3 cp as peers; 64 uploads at once under a
# memory budget), the Lambda allocation check, the Go benchmarks and CPU
# profiles; rewrites docs/BENCHMARKS.md, keeping its marked sections. About
# 20-30 minutes; needs 7 GiB free in $$TMPDIR. Installs nginx with apt-get
# when missing (as root), tusd with go install; skips a peer it cannot get.
bench:
	$(GO) run ./bench

# The function's binary size and cold start (Init Duration under the Lambda
# Runtime Interface Emulator), beside the function at BASE if given (a git
# revision); rewrites only its own section of docs/BENCHMARKS.md.
coldstart:
	$(GO) run ./bench coldstart $(if $(BASE),--base $(BASE))

# The full load test: 64 clients for 30 s against the real binary, every
# 201 verified, zero 5xx, zero leaks, peak RSS within budget + overhead.
loadtest:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/localserver ./localserver
	$(GO) run ./loadtest --server $(BIN)/localserver

# A local S3 server with one bucket, storing objects under $(S3_DIR).
s3:
	mkdir -p $(S3_DIR)/$(S3_BUCKET)
	$(GO) run $(VERSITYGW) -p $(S3_ADDR) -a $(S3_KEY) -s $(S3_SECRET) posix $(S3_DIR)

# The local server storing into the `make s3` bucket.
run-s3:
	$(S3_ENV) $(GO) run ./localserver --bucket $(S3_BUCKET)

# The function binary under the Runtime Interface Emulator, against `make s3`.
emulator:
	CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -o $(BIN)/bootstrap ./functions/upload
	GOBIN=$(abspath $(BIN)) CGO_ENABLED=0 $(GO) install $(RIE)
	$(S3_ENV) SPILLWAY_BUCKET=$(S3_BUCKET) \
		$(BIN)/aws-lambda-rie --runtime-interface-emulator-address $(RIE_ADDR) \
		--runtime-api-address $(RIE_API) $(abspath $(BIN))/bootstrap

# The function behind a local Function URL on 127.0.0.1:8080, against
# `make s3`: funcurl turns each request into a Function URL event and runs
# bin/bootstrap under the emulator. No Docker.
emulate: build
	GOBIN=$(abspath $(BIN)) CGO_ENABLED=0 $(GO) install $(RIE)
	$(S3_ENV) SPILLWAY_BUCKET=$(S3_BUCKET) \
		$(BIN)/funcurl --function $(BIN)/bootstrap --rie $(BIN)/aws-lambda-rie

# Send one event to `make emulator`.
invoke:
	curl -sS -XPOST http://$(RIE_ADDR)/2015-03-31/functions/function/invocations -d @$(EVENT); echo
