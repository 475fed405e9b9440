# mk/proto.mk — the plugin protocol's generated Go code (sdk/proto/...).
#
#   make proto        install what is missing, then regenerate sdk/proto/*/v1/*.pb.go
#   make proto-check  regenerate into a temporary directory and fail if the
#                     committed code differs (CI does not regenerate: the
#                     generated files are committed)
#
# protoc comes from Debian (protobuf-compiler); the two Go plugins are pinned
# below and installed with `go install` into bin/tools/. Every step is a no-op
# when what it installs is already there, so `make proto` is safe to rerun.
# Changing a pinned version changes the generated headers: regenerate and
# commit in the same change.

GO                         ?= go
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTO_TOOLS                := $(CURDIR)/bin/tools
PROTO_ROOT                 := sdk/proto
PROTO_FILES                := storage/v1/storage.proto extension/v1/extension.proto host/v1/host.proto

# protoc runs from PROTO_ROOT, so imports read "host/v1/host.proto" and the
# generated files land next to their .proto (paths=source_relative).
define proto_gen
(cd $(PROTO_ROOT) && PATH="$(PROTO_TOOLS):$$PATH" protoc -I . \
	--go_out=$(1) --go_opt=paths=source_relative \
	--go-grpc_out=$(1) --go-grpc_opt=paths=source_relative \
	$(PROTO_FILES))
endef

.PHONY: proto proto-tools proto-check

proto: proto-tools
	@$(call proto_gen,.)
	@echo "regenerated: $$(cd $(PROTO_ROOT) && ls */v1/*.pb.go | tr '\n' ' ')"

proto-tools:
	@if ! command -v protoc >/dev/null 2>&1; then \
		echo "installing: protobuf-compiler"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler; \
	fi
	@mkdir -p $(PROTO_TOOLS)
	@if [ "$$($(PROTO_TOOLS)/protoc-gen-go --version 2>/dev/null)" != "protoc-gen-go $(PROTOC_GEN_GO_VERSION)" ]; then \
		echo "installing: protoc-gen-go $(PROTOC_GEN_GO_VERSION)"; \
		GOBIN=$(PROTO_TOOLS) GOFLAGS= $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION); \
	fi
	@if [ "$$($(PROTO_TOOLS)/protoc-gen-go-grpc --version 2>/dev/null)" != "protoc-gen-go-grpc $(patsubst v%,%,$(PROTOC_GEN_GO_GRPC_VERSION))" ]; then \
		echo "installing: protoc-gen-go-grpc $(PROTOC_GEN_GO_GRPC_VERSION)"; \
		GOBIN=$(PROTO_TOOLS) GOFLAGS= $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION); \
	fi

proto-check: proto-tools
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(call proto_gen,$$tmp) && \
	for f in $$(cd $$tmp && find . -name '*.pb.go'); do \
		cmp -s "$$tmp/$$f" "$(PROTO_ROOT)/$$f" || { echo "stale: $(PROTO_ROOT)/$${f#./} (run make proto)"; exit 1; }; \
	done; \
	echo "generated code is up to date"
