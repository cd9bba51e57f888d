# vit: train Vision Transformers on the CPU.  `make help` lists the targets.
#
# Variables (override on the command line, e.g. `make run CONFIG=configs/cifar10-tiny.json`):
#   CONFIG        config for `make run`                   (configs/fashion-mnist.json)
#   RUN_DIR       output directory of `make run`           (runs/<config file name>)
#   TRAIN_ARGS    extra `vit train` arguments, e.g. "--threads 2 --set train.epochs=5"
#   EVAL_ARGS     extra `vit eval` arguments, e.g. "--json"
#   SCRATCH_PATH  SwiftPM build directory                  (.build)
#   SWIFT         the swift driver                         (swift, else /opt/swift/usr/bin/swift)
#   PREFIX        where `make install` puts bin/vit         (/usr/local)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Swift from /opt/swift when it is not on PATH already.
ifeq ($(shell command -v swift 2>/dev/null),)
export PATH := /opt/swift/usr/bin:$(PATH)
endif

SWIFT        ?= swift
SCRATCH_PATH ?= .build
SWIFT_FLAGS  := --scratch-path $(SCRATCH_PATH)
VIT          := $(SCRATCH_PATH)/release/vit
CONFIG       ?= configs/fashion-mnist.json
RUN_DIR      ?= runs/$(basename $(notdir $(CONFIG)))
TRAIN_ARGS   ?=
EVAL_ARGS    ?=
FASHION_CIFAR ?= data/fashion-cifar
PREFIX       ?= /usr/local

# Debian packages the build, the tests and the smoke test need. python3 runs the data
# conversion and the smoke test's checks; git lets SwiftPM fetch swift-argument-parser.
APT_PACKAGES := libopenblas-dev liblapacke-dev zlib1g-dev libpng-dev libturbojpeg0-dev libopenmpi-dev openmpi-bin pkg-config dataset-fashion-mnist python3 git ca-certificates
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export DEBIAN_FRONTEND := noninteractive

.PHONY: help deps build install test run smoke bad-inputs kill-test mpi-test mpi-netns fashion-cifar clean

help: ## List the targets
	@echo "usage: make TARGET [CONFIG=configs/X.json] [RUN_DIR=DIR] [TRAIN_ARGS=...] [SCRATCH_PATH=.build]"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | \
		awk 'BEGIN { FS = ":.*## " } { printf "  %-14s %s\n", $$1, $$2 }'

deps: ## Install the Debian packages that are missing (apt-get; root or sudo)
	@if ! command -v dpkg >/dev/null 2>&1; then \
		echo "deps: no dpkg here; install by hand: $(APT_PACKAGES)"; exit 0; \
	fi; \
	missing=""; \
	for package in $(APT_PACKAGES); do \
		dpkg -s "$$package" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$package"; \
	done; \
	if [ -z "$$missing" ]; then \
		echo "deps: all present ($(APT_PACKAGES))"; \
	else \
		echo "deps: installing$$missing"; \
		$(SUDO) apt-get update -q; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@command -v $(SWIFT) >/dev/null 2>&1 || { echo "deps: '$(SWIFT)' is not on PATH nor in /opt/swift/usr/bin; install Swift 6 from swift.org" >&2; exit 1; }

build: deps ## Build the release binary (.build/release/vit)
	$(SWIFT) build -c release $(SWIFT_FLAGS)

install: build ## Copy the release binary to $(PREFIX)/bin/vit
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(VIT) $(DESTDIR)$(PREFIX)/bin/vit
	@echo "installed $(DESTDIR)$(PREFIX)/bin/vit"

test: deps ## Build and run the whole test suite (debug)
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) test $(SWIFT_FLAGS)

run: deps build ## Train CONFIG into RUN_DIR, then evaluate the final model
	$(VIT) train --config $(CONFIG) --out $(RUN_DIR) --force $(TRAIN_ARGS)
	$(VIT) eval $(RUN_DIR)/model.safetensors $(EVAL_ARGS)

smoke: build ## Quick end-to-end check: train, resume, eval, error exits (scripts/smoke.sh)
	VIT=$(VIT) scripts/smoke.sh

bad-inputs: build ## Every kind of bad input and fault must end in one clear error (scripts/bad-inputs.sh)
	VIT=$(VIT) scripts/bad-inputs.sh

kill-test: build ## SIGKILL training 10 times, some mid-save; nothing may be lost (scripts/kill-test.sh)
	VIT=$(VIT) scripts/kill-test.sh

mpi-test: build ## Data-parallel training under mpirun: 2 ranks = 1 process, resume, SIGKILL, bad input (scripts/mpi-test.sh)
	VIT=$(VIT) scripts/mpi-test.sh

mpi-netns: build ## 2 ranks across two network namespaces over TCP (root; skips without namespaces) (scripts/mpi-netns.sh)
	VIT=$(VIT) scripts/mpi-netns.sh

fashion-cifar: deps ## Write Fashion-MNIST as CIFAR-10 batches into data/fashion-cifar
	python3 scripts/fashion-to-cifar.py --out $(FASHION_CIFAR)

clean: ## Remove the build directory and runs/
	rm -rf $(SCRATCH_PATH) runs
