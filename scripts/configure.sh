#!/usr/bin/env bash
# Writes the build's configuration, probed after scripts/deps.sh has
# installed the packages: BUILD/config.mk (flags the Makefile includes) and
# BUILD/gen/build_config.h (what `tuna --version` prints). Each file is
# replaced only when its content changes, so a configuration that changes
# (Open MPI installed, say) rebuilds what depends on it and nothing else.
set -euo pipefail
build=${1:?usage: configure.sh BUILD_DIR}
mkdir -p "$build/gen"
mpi_c=$(mpicc --showme:compile 2>/dev/null || true)
mpi_l=$(mpicc --showme:link 2>/dev/null || true)
if [ -n "$mpi_l" ]; then
  mpi_desc=$(mpicc --showme:version 2>/dev/null | sed -n 's/^mpicc: \(Open MPI [0-9.]*\).*/\1/p')
  mpi_desc=${mpi_desc:-MPI}
else
  mpi_desc=off
fi
openblas=$(dpkg-query -W -f='${Version}' libopenblas0-openmp 2>/dev/null || echo unknown)

put() { # put FILE: stdin replaces FILE only when different
  local tmp="$1.tmp.$$"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

put "$build/config.mk" <<MK
# written by scripts/configure.sh (do not edit): the build's configuration
TUNA_MPI_CFLAGS := $( [ -n "$mpi_l" ] && echo "-DTUNA_MPI $mpi_c" )
TUNA_MPI_LDLIBS := $mpi_l
MK

esc() { sed 's/\\/\\\\/g; s/"/\\"/g'; }
put "$build/gen/build_config.h" <<H
/* written by scripts/configure.sh: the build's configuration */
#define TUNA_BUILD_MPI "$(echo "$mpi_desc" | esc)"
#define TUNA_BUILD_OPENBLAS "$(echo "$openblas" | esc)"
H
