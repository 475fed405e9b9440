# qubesd-go — build, test and run. `make help` lists the targets.

GO        ?= go
BIN       := bin
RUN_DIR   := _run
# packages a fresh Debian machine lacks: libvirt headers for cgo, pkg-config
APT_PKGS  := libvirt-dev pkg-config
GOFLAGS_TEST ?= -race -count=1

.PHONY: help deps build run test bench fuzz lint clean

help:
	@echo "make deps   install missing system packages ($(APT_PKGS))"
	@echo "make build  build every binary into ./$(BIN)/"
	@echo "make run    build and run qubesd on the embedded default config (data in ./$(RUN_DIR)/)"
	@echo "make test   run every test of both modules with -race"
	@echo "make bench  run the benchmarks"
	@echo "make lint   gofmt and go vet"
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
	@if [ -d cmd ] && ls cmd/*/main.go >/dev/null 2>&1; then $(GO) build -o $(BIN)/ ./cmd/...; fi

run: build
	@if [ ! -x $(BIN)/qubesd ]; then \
		echo "qubesd is not built yet: the daemon arrives with the Admin API (see README, 'Status')."; \
		echo "Until then, 'make test' exercises the model and the store."; exit 1; \
	fi
	@mkdir -p $(RUN_DIR)
	$(BIN)/qubesd

test: deps
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...
	$(GO) test $(GOFLAGS_TEST) ./...
	cd sdk && $(GO) test $(GOFLAGS_TEST) ./...

bench: deps
	$(GO) test -run='^$$' -bench=. -benchmem ./...

fuzz: deps
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=5m ./core/store/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...

clean:
	rm -rf $(BIN) $(RUN_DIR)
