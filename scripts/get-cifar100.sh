#!/usr/bin/env bash
# Downloads, checks (MD5) and extracts the CIFAR-100 binary version into [directory] (default
# data) and prints the directory to put in `data.path` on its last line.
#
# Usage: scripts/get-cifar100.sh [directory]
CIFAR_SCRIPT_NAME=$(basename "$0") exec "$(dirname "$0")/get-cifar.sh" 100 "$@"
