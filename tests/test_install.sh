#!/usr/bin/env bash
# `make install` as a user of the C and C++ library meets it: installs into a
# temporary prefix (and, staged, with DESTDIR), then builds examples/demo.c
# and examples/demo.cpp outside the checkout with nothing but
# `pkg-config --cflags --libs rcache`, checks that they load the installed
# soname, runs them on memory://, links demo.c statically against librcache.a,
# and finally uninstalls.
#
#   tests/test_install.sh        (make test-install; needs make, cc, c++, pkg-config, readelf)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rcache-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*" >&2; }
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

for tool in pkg-config readelf cc c++; do
  command -v "$tool" >/dev/null || { echo "test_install.sh: $tool not found (run make prereqs)" >&2; exit 2; }
done

header_define() { sed -n "s/^#define $1 \\([0-9][0-9]*\\)\$/\\1/p" "$root/include/rcache.h"; }
abi=$(header_define RCACHE_ABI_VERSION)
version="$(header_define RCACHE_VERSION_MAJOR).$(header_define RCACHE_VERSION_MINOR).$(header_define RCACHE_VERSION_PATCH)"
soname="librcache.so.$abi"
realname="$soname.$version"

prefix="$work/prefix"
echo "== make install PREFIX=$prefix"
make --no-print-directory -C "$root" install PREFIX="$prefix" >"$work/install.log" 2>&1 \
  || { cat "$work/install.log"; echo "make install failed" >&2; exit 1; }

lib="$prefix/lib"
check "the library is installed as $realname" test -f "$lib/$realname" -a ! -L "$lib/$realname"
check "$soname links to $realname" test "$(readlink "$lib/$soname")" = "$realname"
check "librcache.so links to $soname" test "$(readlink "$lib/librcache.so")" = "$soname"
check "the library's soname is $soname" \
  test "$(readelf -d "$lib/$realname" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')" = "$soname"
check "librcache.a is installed" test -f "$lib/librcache.a"
check "rcache.h is installed" cmp -s "$root/include/rcache.h" "$prefix/include/rcache.h"
check "rcache.hpp is installed" cmp -s "$root/bindings/cpp/rcache.hpp" "$prefix/include/rcache.hpp"
check "rcache.pc is installed" test -f "$lib/pkgconfig/rcache.pc"

export PKG_CONFIG_PATH="$lib/pkgconfig"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR || true
check "pkg-config knows rcache $version" test "$(pkg-config --modversion rcache)" = "$version"
check "pkg-config points at the prefix" test "$(pkg-config --variable=prefix rcache)" = "$prefix"
trimmed() { pkg-config "$@" | sed 's/[[:space:]]*$//'; } # pkgconf ends its output with a space
check "pkg-config --cflags names the installed headers" test "$(trimmed --cflags rcache)" = "-I$prefix/include"
check "pkg-config --libs names the installed library" test "$(trimmed --libs rcache)" = "-L$lib -lrcache"

# Build out of tree: copies of the demos in a directory of their own, and no
# flag that names the checkout.
src="$work/src"
mkdir -p "$src"
cp "$root/examples/demo.c" "$root/examples/demo.cpp" "$src/"
cd "$src"
# shellcheck disable=SC2046 # pkg-config's output is a list of flags
check "demo.c builds with pkg-config" \
  cc -std=c11 -Wall -Wextra -Wpedantic -Werror demo.c $(pkg-config --cflags --libs rcache) -o demo
# shellcheck disable=SC2046
check "demo.cpp builds with pkg-config" \
  c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror demo.cpp $(pkg-config --cflags --libs rcache) -o demo_cpp

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(librcache[^]]*\)\]/\1/p'; }
for program in demo demo_cpp; do
  [ -x "$program" ] || continue
  check "$program needs $soname" test "$(needed "$program")" = "$soname"
  resolved=$(LD_LIBRARY_PATH="$lib" ldd "./$program" | sed -n "s/^[[:space:]]*$soname => \\([^ ]*\\).*/\\1/p")
  check "$program loads the installed copy ($resolved)" test "$resolved" = "$lib/$soname"
  if LD_LIBRARY_PATH="$lib" "./$program" memory:// >"$work/$program.log" 2>&1 \
    && tail -n 1 "$work/$program.log" | grep -qx 'Done.'; then
    pass "$program runs on memory://"
  else
    cat "$work/$program.log"
    fail "$program runs on memory://"
  fi
done

# Static: the archive plus what rcache.pc lists for it (Libs.private).
private=$(pkg-config --static --libs-only-l rcache | sed 's/\(^\| \)-lrcache\b//')
# shellcheck disable=SC2046,SC2086
check "demo.c links statically against librcache.a" \
  cc -std=c11 -Wall -Wextra -Wpedantic -Werror demo.c $(pkg-config --cflags rcache) "$lib/librcache.a" $private -o demo_static
if [ -x demo_static ]; then
  check "the static demo needs no librcache" test -z "$(needed demo_static)"
  check "the static demo runs on memory://" sh -c './demo_static memory:// >/dev/null 2>&1'
fi
cd "$root"

# A staged install for packagers: files under DESTDIR, paths without it.
stage="$work/stage"
make --no-print-directory -C "$root" install DESTDIR="$stage" PREFIX=/opt/rcache >"$work/stage.log" 2>&1 \
  || { cat "$work/stage.log"; echo "make install DESTDIR=... failed" >&2; exit 1; }
check "DESTDIR stages the library" test -f "$stage/opt/rcache/lib/$realname"
check "DESTDIR stages the links" test "$(readlink "$stage/opt/rcache/lib/librcache.so")" = "$soname"
check "the staged rcache.pc names the final prefix" grep -qx 'prefix=/opt/rcache' "$stage/opt/rcache/lib/pkgconfig/rcache.pc"
check "the staged rcache.pc has no DESTDIR in it" sh -c "! grep -q '$stage' '$stage/opt/rcache/lib/pkgconfig/rcache.pc'"

make --no-print-directory -C "$root" uninstall PREFIX="$prefix" >/dev/null
check "make uninstall removes every file" test -z "$(find "$prefix" -type f -o -type l)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
