#!/usr/bin/env bash
# Builds the firmware for all three QEMU machines (release: opt-level s, LTO) and runs it.
#
#   boards/qemu/run-all.sh            # from anywhere; exit 0 only if everything passed
#
# For each of microbit (thumbv6m), mps2-an386 (thumbv7em) and mps2-an505 (thumbv8m.main):
#   1. build every binary; print llvm-size's sections; fail if core's float formatting got
#      linked (~20 KB of flash) or if the code of the deployable firmware (`adapt`; the
#      test binaries are exempt) exceeds the 32 KB budget (SGMRL_CODE_LIMIT bytes, default
#      32768). Code = flash without parameters: `.vector_table + .text + .rodata` less the
#      embedded bundle (`bundles/test.sgml` here; docs/device.md has the other bundles);
#   2. run each binary in $RUN_BINS under run.sh (QEMU with a timeout) and require exit 0;
#   3. check the failure paths: `selftest --deliberate-fail` must exit 1, `--deliberate-panic`
#      101, `--deliberate-fault` 102 and `--deliberate-irq` 103 (device interrupt 0 reaches
#      the fallback handler through the one-entry table of src/vectors.rs), and
#      `--deliberate-hang` must be ended by run.sh's
#      timeout with 124 (microbit only; a harness that cannot fail proves nothing); and
#      `adapt` built with a corrupted bundle (SGMRL_CORRUPT) must reject it with its typed
#      error and exit 2 (microbit and an386).
#   4. run `robot` (the board logic on a simulated robot, src/robot_e2e.rs, with the
#      meta-trained bundles/diffdrive.sgml) and require its outcome line to equal the one
#      `pins/ robot` computes on the host;
#   0. (first) recompute the parity cases and the test bundle on the host (`pins/`) and fail
#      if `src/pins.rs` or `bundles/test.sgml` is stale, i.e. the core's numerics or bundle
#      format changed on the host since they were made.
# Logs go to target/run-all/<machine>-<binary>.log.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

TARGETS=(thumbv6m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf)
RUN_BINS=(${SGMRL_RUN_BINS:-selftest adapt})
LIMIT=${SGMRL_CODE_LIMIT:-32768}

host=$(rustc -vV | sed -n 's/^host: //p')
tools="$(rustc --print sysroot)/lib/rustlib/$host/bin"
if [ ! -x "$tools/llvm-size" ]; then
    echo "run-all: llvm-size missing; run: rustup component add llvm-tools" >&2
    exit 2
fi
command -v qemu-system-arm >/dev/null || {
    echo "run-all: qemu-system-arm missing; run: apt-get install qemu-system-arm" >&2
    exit 2
}

machine_of() {
    case $1 in
        thumbv6m-none-eabi) echo microbit ;;
        thumbv7em-none-eabihf) echo mps2-an386 ;;
        thumbv8m.main-none-eabihf) echo mps2-an505 ;;
    esac
}

logs=target/run-all
mkdir -p "$logs"
failures=()
passed=0
fail() {
    echo "FAIL: $*"
    failures+=("$*")
}

echo "== host parity pins (pins/ → src/pins.rs)"
if cargo run -q --manifest-path pins/Cargo.toml --target "$host" >"$logs/pins.rs" 2>"$logs/pins.err"; then
    if diff -u src/pins.rs "$logs/pins.rs" >"$logs/pins.diff"; then
        echo "ok   src/pins.rs matches the host"
        passed=$((passed + 1))
    else
        fail "src/pins.rs is stale: the host computes other values (diff: boards/qemu/$logs/pins.diff); if intended, regenerate as pins/src/main.rs says"
    fi
else
    fail "pins/ failed on the host (boards/qemu/$logs/pins.err)"
    tail -20 "$logs/pins.err"
fi
if cargo run -q --manifest-path pins/Cargo.toml --target "$host" -- bundle "$logs/test.sgml" 2>"$logs/pins.err" &&
    cmp -s bundles/test.sgml "$logs/test.sgml"; then
    echo "ok   bundles/test.sgml matches the host's encoding"
    passed=$((passed + 1))
else
    fail "bundles/test.sgml is stale or pins/ failed; regenerate as pins/src/main.rs says"
fi

# The board-logic scenario (src/robot_e2e.rs) on the host: the device must print this line.
if cargo run -q --manifest-path pins/Cargo.toml --target "$host" -- robot bundles/diffdrive.sgml \
    >"$logs/robot-host.txt" 2>"$logs/pins.err"; then
    echo "ok   robot scenario on the host: $(cat "$logs/robot-host.txt")"
    passed=$((passed + 1))
else
    fail "robot scenario failed on the host (boards/qemu/$logs/pins.err)"
fi

targs=()
for t in "${TARGETS[@]}"; do targs+=(--target "$t"); done
echo "== build (release) for ${TARGETS[*]}"
if ! cargo build --release --bins "${targs[@]}"; then
    echo "run-all: build failed" >&2
    exit 1
fi

bins=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(" ".join(t["name"] for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "bin" in t["kind"]))')

echo
echo "== sizes (bytes; flash = .vector_table + .text + .rodata + .data, RAM = .data + .bss + .uninit)"
printf '%-11s %-9s %8s %8s %8s %6s %6s %6s %8s %8s\n' \
    machine binary vectors text rodata data bss uninit flash ram
for t in "${TARGETS[@]}"; do
    m=$(machine_of "$t")
    for b in $bins; do
        elf=target/$t/release/$b
        declare -A sz=()
        while read -r name size _; do
            sz[$name]=$size
        done < <("$tools/llvm-size" -A "$elf" | grep -E '^\.(vector_table|text|rodata|data|bss|uninit) ')
        v=${sz[.vector_table]:-0} x=${sz[.text]:-0} r=${sz[.rodata]:-0}
        d=${sz[.data]:-0} z=${sz[.bss]:-0} u=${sz[.uninit]:-0}
        printf '%-11s %-9s %8d %8d %8d %6d %6d %6d %8d %8d\n' \
            "$m" "$b" "$v" "$x" "$r" "$d" "$z" "$u" $((v + x + r + d)) $((d + z + u))
        if "$tools/llvm-nm" -C "$elf" | grep -qE 'flt2dec|float_to_decimal|float_to_exponential'; then
            fail "$m $b links core's float formatting (print f32 with sgmrl_qemu::num instead)"
        fi
        if [ "$b" = adapt ]; then
            code=$((v + x + r - $(stat -c %s bundles/test.sgml)))
            if [ "$code" -gt "$LIMIT" ]; then
                fail "$m $b: code without parameters $code bytes exceeds the budget of $LIMIT"
            else
                echo "ok   $m $b: code without parameters $code bytes (budget $LIMIT)"
                passed=$((passed + 1))
            fi
        fi
        unset sz
    done
done

# run <machine> <binary> <expected exit code> [firmware args…]
run() {
    local t=$1 b=$2 want=$3
    shift 3
    local m log rc
    m=$(machine_of "$t")
    log=$logs/$m-$b${1:+$1}.log
    ./run.sh "target/$t/release/$b" "$@" >"$log" 2>&1
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        echo "ok   $m $b $* (exit $rc)"
        passed=$((passed + 1))
    else
        [ "$rc" -eq 124 ] && rc="124, timeout"
        fail "$m $b $* exited $rc, expected $want (log: boards/qemu/$log)"
        sed 's/^/    | /' "$log" | tail -20
    fi
}

echo
echo "== run under QEMU"
for t in "${TARGETS[@]}"; do
    for b in "${RUN_BINS[@]}"; do
        run "$t" "$b" 0
        # Surface the lines worth reading in CI logs: summaries and measurements.
        grep -E 'passed, [0-9]+ failed|\[icount\]|^adapt' "$logs/$(machine_of "$t")-$b.log"
    done
    run "$t" selftest 1 --deliberate-fail
    run "$t" selftest 101 --deliberate-panic
    run "$t" selftest 102 --deliberate-fault
    run "$t" selftest 103 --deliberate-irq
done
SGMRL_QEMU_TIMEOUT=1 run thumbv6m-none-eabi selftest 124 --deliberate-hang

# The board logic end to end (src/bin/robot.rs): duty cycles → simulated robot → encoder
# counts → adaptation → guard → flash slot → reboot, on every machine; the outcome line
# (adapted parameters' CRC, verdict, restored CRC, …) must equal the host's bit for bit.
for t in "${TARGETS[@]}"; do
    m=$(machine_of "$t")
    run "$t" robot 0
    grep -E '^robot: \[icount\]|^robot: P ' "$logs/$m-robot.log"
    if grep -qxF "$(cat "$logs/robot-host.txt")" "$logs/$m-robot.log"; then
        echo "ok   $m robot outcome equals the host's (adapted parameters' CRC included)"
        passed=$((passed + 1))
    else
        fail "$m robot outcome differs from the host's: $(grep '^robot: outcome' "$logs/$m-robot.log") vs $(cat "$logs/robot-host.txt")"
    fi
done

# A corrupted bundle in flash: `adapt` built with one byte of its bundle inverted after the
# host read it (build.rs, SGMRL_CORRUPT) must print the parser's typed error and exit 2.
for t in thumbv6m-none-eabi thumbv7em-none-eabihf; do
    m=$(machine_of "$t")
    log="$logs/$m-adapt-corrupted.log"
    if ! SGMRL_CORRUPT=30 CARGO_TARGET_DIR=target/corrupt cargo build -q --release \
        --bin adapt --target "$t" >"$log" 2>&1; then
        fail "$m adapt (corrupted bundle): build failed (log: boards/qemu/$log)"
        continue
    fi
    ./run.sh "target/corrupt/$t/release/adapt" >>"$log" 2>&1
    status=$?
    if [ "$status" -eq 2 ] && grep -q "bundle rejected: Checksum" "$log"; then
        echo "ok   $m adapt with a corrupted bundle: $(grep -o 'bundle rejected: .*' "$log") (exit 2)"
        passed=$((passed + 1))
    else
        fail "$m adapt with a corrupted bundle exited $status, expected 2 and a Checksum error (log: boards/qemu/$log)"
    fi
done

echo
if [ ${#failures[@]} -ne 0 ]; then
    echo "run-all: ${#failures[@]} problem(s):"
    printf '  %s\n' "${failures[@]}"
fi
# One closing line in the plain form CI counts: runs and size checks that passed/failed.
echo "firmware: $passed passed, ${#failures[@]} failed"
[ ${#failures[@]} -eq 0 ]
