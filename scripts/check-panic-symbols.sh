#!/usr/bin/env bash
# Panic-freedom of the core, checked on a release firmware.
#
# Builds scripts/panic-check (a no_std Cortex-M binary that parses bundles and adapts
# through injected faults with the whole core: every policy path, every advantage rule,
# the fault wrapper, the safe stop) and checks two things:
#
# 1. Symbols (llvm-nm): the binary links no panic entry point of `core` (panic_fmt,
#    panic, panic_bounds_check, the slice-index and unwrap/expect failures, ...) and no
#    `core::fmt` code at all. A panic path that survived optimisation would show up as a
#    call to one of them; formatting code would mean some path builds a message. Each
#    surviving call site is printed with its source location (addr2line over line tables).
# 2. Link (`--features link-time-no-panic`): the panic handler calls a symbol defined
#    nowhere, so the link fails if any call to the handler survives (the `no-panic`
#    crate's trick, applied to the whole binary).
#
# A negative control (`--features negative-control`, one deliberate out-of-bounds index)
# must fail both checks, so a passing result is not an artefact of the setup.
#
# Scope and limits: it checks the code this firmware reaches, under the optimisation
# settings listed in REQUIRED below (PANIC_CHECK_INFORMATIONAL=1 also reports builds
# without fat LTO, where panic paths of libcore and of dependencies remain: see there). A panic path that a different caller could reach (e.g.
# a policy type or an API not used here), or that only a lower opt-level keeps, is not
# covered; debug builds keep many checks the optimiser removes. Arithmetic overflow is not
# a panic in release builds (overflow-checks off), so it is not seen here either.
#
# Usage: scripts/check-panic-symbols.sh [TARGET ...]
#   default targets: thumbv7em-none-eabihf thumbv6m-none-eabi
# Needs rustup's llvm-tools (llvm-nm) and binutils' addr2line (only to print locations).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$here/panic-check"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(thumbv7em-none-eabihf thumbv6m-none-eabi)
host="$(rustc -vV | sed -n 's/^host: //p')"
nm="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-nm"
if [ ! -x "$nm" ]; then
    rustup component add llvm-tools >/dev/null 2>&1 || rustup component add llvm-tools-preview
fi

# Profiles. REQUIRED ones must pass: the firmware profile this check is for (fat LTO, one
# codegen unit) at opt-levels "s" and 3. INFORMATIONAL ones are reported, not enforced:
# - opt-level "z" outlines small generic helpers of libcore (`copy_from_slice`, the
#   `size` of a `zip` over `ChunksExact`), and an outlined helper keeps its own length and
#   division checks whatever its callers guarantee;
# - without fat LTO, the precompiled libcore panic helpers and the generic code of other
#   crates (rand_core's seeding, crc) cannot be proven dead, and libcore's helpers
#   reference `core::fmt` integer formatting.
REQUIRED=(
    "fat-lto-opt-s:CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1"
    "fat-lto-opt-3:CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1"
)
INFORMATIONAL=(
    "fat-lto-opt-z:CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1"
    "thin-lto-opt-z-cgu16:CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16"
    "no-lto-opt-3-cgu16:CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16"
)
if [ "${PANIC_CHECK_INFORMATIONAL:-0}" = 1 ]; then
    CONFIGS=("${REQUIRED[@]/#/required:}" "${INFORMATIONAL[@]/#/info:}")
else
    CONFIGS=("${REQUIRED[@]/#/required:}")
fi

# Demangled names that mean "a panic path is linked" or "formatting code is linked".
PANIC_RE='core::panicking::|core::slice::index::|slice_(start|end)_index|slice_index_order_fail|len_mismatch_fail|core::option::(unwrap|expect)_failed|core::result::unwrap_failed|panic_bounds_check|rust_begin_unwind|core::cell::panic_already'
FMT_RE='core::fmt::'

# build TARGET DIR ENV FEATURES -> path of the ELF
build() {
    local target="$1" dir="$2" envs="$3" features="$4"
    env $envs cargo build --quiet --release --manifest-path "$crate/Cargo.toml" \
        --target "$target" --target-dir "$dir" ${features:+--features "$features"} ||
        return 1
    echo "$dir/$target/release/panic-check"
}

# symbols_clean ELF -> 0 when no panic entry point and no core::fmt symbol is linked.
symbols_clean() {
    local elf="$1" bad
    bad="$("$nm" -C "$elf" | grep -E "$PANIC_RE|$FMT_RE" || true)"
    if [ -z "$bad" ]; then
        return 0
    fi
    echo "$bad" | sed 's/^/      linked: /'
    if command -v addr2line >/dev/null; then
        local dis
        dis="$("$(dirname "$nm")/llvm-objdump" -d --no-show-raw-insn -C "$elf")"
        echo "$dis" | awk -v re="<[^>]*($PANIC_RE)" '
            /^[0-9a-f]+ </ { next }
            $0 ~ re && /\tb/ { sub(":", "", $1); print $1 }' |
        while read -r addr; do
            echo "      call site 0x$addr:"
            addr2line -i -f -C -e "$elf" "0x$addr" | paste - - |
                sed 's/^/        /; s|/rustc/[0-9a-f]*/||'
        done
    fi
    return 1
}

status=0
for target in "${targets[@]}"; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    for config in "${CONFIGS[@]}"; do
        kind="${config%%:*}"
        rest="${config#*:}"
        name="${rest%%:*}"
        envs="${rest#*:}"
        dir="$crate/target/$name"
        echo "== $target, $name ($kind)"
        fail=0

        elf="$(build "$target" "$dir" "$envs" "")"
        if symbols_clean "$elf"; then
            echo "   symbols: ok (no panic entry point, no core::fmt)"
        else
            echo "   symbols: FAIL"
            fail=1
        fi
        if build "$target" "$dir" "$envs" link-time-no-panic >/dev/null 2>"$dir/link.log"; then
            echo "   link-time no-panic: ok (links although the panic handler calls an undefined symbol)"
        else
            echo "   link-time no-panic: FAIL (a panic path survives):"
            grep -o 'undefined symbol: [a-z_]*' "$dir/link.log" | sort -u | sed 's/^/      /'
            fail=1
        fi

        # Negative control: both checks must catch one deliberate panic.
        elf="$(build "$target" "$dir" "$envs" negative-control)"
        if symbols_clean "$elf" >/dev/null; then
            echo "   negative control: FAIL (symbol check missed a deliberate panic)"
            status=1
        elif build "$target" "$dir" "$envs" "negative-control link-time-no-panic" \
            >/dev/null 2>&1; then
            echo "   negative control: FAIL (link check missed a deliberate panic)"
            status=1
        else
            echo "   negative control: ok (both checks catch a deliberate panic)"
        fi
        if [ "$fail" = 1 ] && [ "$kind" = required ]; then
            status=1
        fi
    done
done
if [ "$status" -eq 0 ]; then
    echo "panic check: passed"
else
    echo "panic check: FAILED"
fi
exit "$status"
