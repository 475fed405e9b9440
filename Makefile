# qubesd-go — build, test and run. `make help` lists the targets.

GO        ?= go
BIN       := bin
RUN_DIR   := _run
# packages a fresh Debian machine lacks: libvirt headers for cgo, pkg-config
APT_PKGS  := libvirt-dev pkg-config libvirt-clients busybox-static mount
# the multi-call CLI answers to these names (symlinks to bin/qvm)
QVM_TOOLS := qvm-ls qvm-prefs qubes-prefs qvm-create qvm-remove qvm-features qvm-tags qvm-check qvm-plugin qvm-pool qvm-volume qvm-clone qvm-start qvm-shutdown qvm-kill qvm-pause qvm-unpause qvm-run
GOFLAGS_TEST ?= -race -count=1
# a race-enabled program sleeps 1 s at exit (for late race reports); the
# tests run thousands of race-built subprocesses (qvm-* in scripts, plugins)
export GORACE ?= atexit_sleep_ms=10

.PHONY: help deps build run test bench fuzz lint clean

help:
	@echo "make deps   install missing system packages ($(APT_PKGS))"
	@echo "make build  build every binary into ./$(BIN)/"
	@echo "make run    build and run qubesd on the embedded default config (data in ./$(RUN_DIR)/)"
	@echo "make test   run every test of both modules with -race"
	@echo "make bench  run the benchmarks"
	@echo "make lint   gofmt and go vet"
	@echo "make proto  regenerate sdk/proto (installs protoc and its Go plugins when missing)"
	@echo "make clean  remove build outputs and ./$(RUN_DIR)/"

# deps installs only what is missing, non-interactively; it is a no-op on a
# machine that has everything.
deps:
	@missing=""; for p in $(APT_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	@mkdir -p $(BIN)
	$(GO) build ./...
	cd sdk && $(GO) build ./...
	$(GO) build -o $(BIN)/ ./cmd/... ./plugins/...
	@if [ -x $(BIN)/qvm ]; then for t in $(QVM_TOOLS); do ln -sf qvm $(BIN)/$$t; done; fi

# run: the daemon in the foreground on the embedded default configuration
# (libvirt test:///default, data in ./_run/data, sockets in ./_run).
run: build
	@mkdir -p $(RUN_DIR)
	@echo "qubesd: socket $(CURDIR)/$(RUN_DIR)/qubesd.sock"
	@echo "in another terminal: export QUBESD_SOCKET=$(CURDIR)/$(RUN_DIR)/qubesd.sock; ./$(BIN)/qvm-ls"
	$(BIN)/qubesd

test: deps
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...
	$(GO) test $(GOFLAGS_TEST) ./...
	cd sdk && $(GO) test $(GOFLAGS_TEST) ./...

# bench: micro-benchmarks of the hot paths, then the end-to-end measurements
# of a real daemon (BENCH <name> <value> <unit> lines).
bench: build
	$(GO) test -run='^$$' -bench=. -benchmem ./core/... ./plugintests/
	$(BIN)/qubesd-bench -bin $(BIN)

fuzz: deps
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=5m ./core/store/
	$(GO) test -run='^$$' -fuzz=FuzzDispatch -fuzztime=5m ./core/api/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...

clean:
	rm -rf $(BIN) $(RUN_DIR)

# make proto / make proto-check: regenerate the plugin protocol's Go code
# (included last so that `make` alone still means `make help`)
include mk/proto.mk
