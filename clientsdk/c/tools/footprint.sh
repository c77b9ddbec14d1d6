#!/bin/sh
# footprint.sh - the numbers of README.md's footprint table.
#
#   clientsdk/c/tools/footprint.sh [OUTDIR]     (needs gcc, arm-none-eabi-gcc, python3)
#
# Code: the protocol core (src/*.c) built client-only (-DCOMM_CLIENT_ONLY:
# no server side of the handshake, no HPKE seal), without any crypto
# backend, at -Os; "text" as size(1) counts it (code and constants).
# RAM: sizeof the state and of the client for the default configuration
# (8 groups x 16 senders, comm_config.h), read from an object file.
# Stack: each entry point's worst path from GCC's -fcallgraph-info=su
# (backend calls counted 0; tests/stackpaint.c measures them with libsodium).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cflags="-std=c99 -Os -DCOMM_CLIENT_ONLY -ffunction-sections -fdata-sections -I$here/include"

cat > "$out/sizes.c" <<'C'
#include "comm/comm.h"
comm_state sizeof_comm_state;
comm_client sizeof_comm_client;
C

build() { # build NAME CC SIZE FLAGS...
	name=$1 cc=$2 size=$3
	shift 3
	mkdir -p "$out/$name"
	for f in "$here"/src/*.c "$out/sizes.c"; do
		(cd "$out/$name" && $cc $cflags "$@" -fstack-usage -fcallgraph-info=su -c "$f")
	done
	echo "== $name: $($cc --version | head -1)"
	(cd "$out/$name" && $size -t $(ls *.o | grep -v sizes.o) | tail -1 | awk '{printf "core text %d bytes (data %d, bss %d)\n", $1, $2, $3}')
	nm -S -t d "$out/$name/sizes.o" | grep sizeof_ | awk '{printf "%-22s %d bytes\n", $4, $2 + 0}'
	python3 "$here/tools/stack-graph.py" "$out/$name" comm_client_connect comm_client_poll comm_client_send
}

build x86-64 gcc size
build cortex-m4 arm-none-eabi-gcc arm-none-eabi-size -mcpu=cortex-m4 -mthumb -mfloat-abi=soft
