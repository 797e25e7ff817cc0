#!/usr/bin/env bash
# Device budgets of on-device adaptation on the three QEMU machines (`cargo xtask bench-device`).
#
#   boards/qemu/bench.sh                  # prints the markdown table; non-zero if a run fails
#   boards/qemu/bench.sh --doc FILE       # also writes FILE (docs/device.md): table + legend
#
# Runs `adapt` (release) with four bundles:
#   * default: the default embedded policy and recipe (the `embedded` preset of `sgmrl`):
#     GaussianMlp 2→16→2 (84 parameters), ζ=1, N=40, H=20, reward-to-go (random weights,
#     written by pins/); on all three machines;
#   * mid: GaussianMlp 2→32→32→2 (1,220 parameters), ζ=1, N=20, H=100, reward-to-go, the
#     paper's action map; on all three machines;
#   * paper: the paper's nav2d policy size, GaussianMlp 2→100→100→2 (10,604 parameters), same
#     recipe (written by pins/), on mps2-an386 and mps2-an505 (its adapter RAM alone is
#     44 KB; the microbit has 16 KB);
#   * test: the committed test bundle (GaussianMlp 2→16→2, ζ=2, N=10), on all three machines.
# then `costs` (per-call instructions; M4F and M0), `robot` with the meta-trained
# bundles/diffdrive.sgml on the M0 and M4F (the robot budgets: ticks whole and their core
# share, the adaptation step, adapter RAM) and the two real-board firmwares' code size.
# Instructions come from SysTick under `qemu -icount shift=6` (see src/icount.rs): guest
# instructions, deterministic from run to run, not cycles.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
doc=
if [ "${1:-}" = --doc ]; then
    [ $# -eq 2 ] || { echo "usage: bench.sh [--doc FILE]" >&2; exit 2; }
    doc=$2
fi
host=$(rustc -vV | sed -n 's/^host: //p')
tools="$(rustc --print sysroot)/lib/rustlib/$host/bin"
mkdir -p target/bench

for b in default mid paper; do
    if ! cargo run -q --manifest-path pins/Cargo.toml --target "$host" -- "bundle-$b" "target/bench/$b.sgml"; then
        echo "bench: pins/ failed to write the $b bundle" >&2
        exit 1
    fi
done

machine_of() {
    case $1 in
        thumbv6m-none-eabi) echo microbit ;;
        thumbv7em-none-eabihf) echo mps2-an386 ;;
        thumbv8m.main-none-eabihf) echo mps2-an505 ;;
    esac
}

# Budgets (the issue's goals).
CODE_BUDGET=32768      # firmware code without parameters, bytes
RAM_FACTOR_MILLI=1200  # adapter RAM ≤ 1.2 × lower bound
STACK_BUDGET=2048      # adaptation stack, bytes
MICROBIT_RAM=16384
RATIO_BUDGET_MILLI=3000

rows=()
checks=()
status=0
# bench <label> <target dir> <bundle path> <triples…>
bench() {
    local label=$1 dir=$2 bundle=$3
    shift 3
    local targs=() t
    for t in "$@"; do targs+=(--target "$t"); done
    if ! SGMRL_BUNDLE=$bundle CARGO_TARGET_DIR=$dir cargo build -q --release --bin adapt "${targs[@]}"; then
        echo "bench: build failed for $label" >&2
        status=1
        return
    fi
    for t in "$@"; do
        local elf=$dir/$t/release/adapt m log
        m=$(machine_of "$t")
        log=target/bench/$m-$label.log
        if ! ./run.sh "$elf" >"$log" 2>&1; then
            echo "bench: $m $label failed (log: boards/qemu/$log)" >&2
            tail -5 "$log" >&2
            status=1
            continue
        fi
        local vec text rodata bundle_bytes code p per_step per_env macs ratio ram lb statics peak astack
        vec=$("$tools/llvm-size" -A "$elf" | awk '$1==".vector_table"{print $2}')
        text=$("$tools/llvm-size" -A "$elf" | awk '$1==".text"{print $2}')
        rodata=$("$tools/llvm-size" -A "$elf" | awk '$1==".rodata"{print $2}')
        bundle_bytes=$(sed -n 's/.*, bundle \([0-9]*\) bytes.*/\1/p' "$log")
        code=$((vec + text + rodata - bundle_bytes))
        p=$(sed -n 's/.*(P = \([0-9]*\)).*/\1/p' "$log")
        per_step=$(sed -n 's/.*; \([0-9]*\) instructions per adaptation step.*/\1/p' "$log")
        per_env=$(sed -n 's/.*instructions per env step \([0-9]*\) = .*/\1/p' "$log")
        macs=$(sed -n 's/.*MACs per env step: \([0-9]*\) .*/\1/p' "$log")
        ratio=$(sed -n 's/.* = \([0-9.]*\) x MACs.*/\1/p' "$log")
        ram=$(sed -n 's/.*RAM: adapter \([0-9]*\) B.*/\1/p' "$log")
        lb=$(sed -n 's/.*lower bound \([0-9]*\) B.*/\1/p' "$log")
        statics=$(sed -n 's/.*statics \([0-9]*\) B.*/\1/p' "$log")
        peak=$(sed -n 's/.*peak stack \([0-9]*\) B.*/\1/p' "$log")
        astack=$(sed -n 's/.*of it adaptation \([0-9]*\) B.*/\1/p' "$log")
        local ram_ratio
        ram_ratio=$(awk -v a="$ram" -v b="$lb" 'BEGIN{printf "%.2f", a/b}')
        rows+=("| $m | $label | $p | $text | $((rodata - bundle_bytes)) | $bundle_bytes | $code | $statics | $ram | $lb | $ram_ratio | $peak | $astack | $per_step | $per_env | $macs | $ratio |")

        check() { # <ok?> <text>
            if [ "$1" = 1 ]; then checks+=("- met: $2"); else checks+=("- **not met**: $2"); fi
        }
        check "$((code <= CODE_BUDGET))" "$m $label: code without parameters $code B ≤ $CODE_BUDGET B"
        check "$((ram * 1000 <= lb * RAM_FACTOR_MILLI))" "$m $label: adapter RAM $ram B ≤ 1.2 × lower bound $lb B"
        check "$((astack <= STACK_BUDGET))" "$m $label: adaptation stack $astack B ≤ $STACK_BUDGET B"
        if [ "$m" = microbit ]; then
            check "$((statics + peak <= MICROBIT_RAM))" "$m $label: static RAM $statics B + peak stack $peak B inside the microbit's $MICROBIT_RAM B"
        fi
        if [ "$m" = mps2-an386 ] && [ "$label" != test ]; then
            local r_milli
            r_milli=$(awk -v r="$ratio" 'BEGIN{printf "%d", r*1000 + 0.5}')
            check "$((r_milli <= RATIO_BUDGET_MILLI))" "$m $label: $ratio instructions per MAC ≤ 3"
        fi
    done
}

bench default target/bench-default target/bench/default.sgml \
    thumbv6m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf
bench mid target/bench-mid target/bench/mid.sgml \
    thumbv6m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf
bench paper target/bench-paper target/bench/paper.sgml thumbv7em-none-eabihf thumbv8m.main-none-eabihf
bench test target "" thumbv6m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf

# Per-call costs (src/bin/costs.rs): where the instructions of a step go; on the M4F every
# policy, on the M0 the per-call functions and the diffdrive policy (what fits its RAM).
costs=
costs_m0=
for t in thumbv7em-none-eabihf thumbv6m-none-eabi; do
    m=$(machine_of "$t")
    costs_log=target/bench/$m-costs.log
    if CARGO_TARGET_DIR=target cargo build -q --release --bin costs --target "$t" &&
        ./run.sh "target/$t/release/costs" >"$costs_log" 2>&1; then
        lines=$(sed -n 's/^costs: /- /p' "$costs_log")
    else
        echo "bench: $m costs failed (log: boards/qemu/$costs_log)" >&2
        lines="- (costs run failed)"
        status=1
    fi
    if [ "$m" = microbit ]; then costs_m0=$lines; else costs=$lines; fi
    if [ "$m" = microbit ]; then
        m0_sample=$(sed -n 's/.*diffdrive.* sample \([0-9]*\),.*/\1/p' <<<"$lines")
        m0_grad=$(sed -n 's/.*diffdrive.*accumulate_grad_log_prob ([0-9]* MACs) \([0-9]*\) .*/\1/p' <<<"$lines")
        m0_tanh=$(sed -n 's/.*per call.*tanh \([0-9]*\),.*/\1/p' <<<"$lines")
    fi
done

# The robot firmware's budgets (issue #10 §5): the `robot` binary (src/robot_e2e.rs: the
# core's control loop over a DiffDriveRobot on simulated drivers, with the meta-trained
# bundles/diffdrive.sgml) on the M0 and the M4F, and the code size of the two real-board
# firmwares (built here; no bundle inside them).
CPI_MILLI=1500         # assumed cycles per instruction on the real cores (stated in the doc)
TICK_BUDGET_US=2000    # control tick on the RP2040
STEP_BUDGET_US=1000000 # adaptation step
BOARD_CODE_BUDGET=65536
robot_rows=()
robot_checks=()
robot_split=()
rcheck() { # <ok?> <text>
    if [ "$1" = 1 ]; then robot_checks+=("- met: $2"); else robot_checks+=("- **not met**: $2"); fi
}
for t in thumbv6m-none-eabi thumbv7em-none-eabihf; do
    m=$(machine_of "$t")
    log=target/bench/$m-robot.log
    if ! CARGO_TARGET_DIR=target cargo build -q --release --bin robot --target "$t" ||
        ! ./run.sh "target/$t/release/robot" >"$log" 2>&1; then
        echo "bench: $m robot failed (log: boards/qemu/$log)" >&2
        status=1
        continue
    fi
    case $m in
        microbit) board="RP2040 (Cortex-M0+)"; mhz=125 ;;
        *) board="nRF52833 (Cortex-M4F)"; mhz=64 ;;
    esac
    whole=$(grep -F "$m control tick max" "$log")
    core=$(grep -F "$m core share:" "$log")
    split=$(grep -F "$m control tick core share mean:" "$log")
    wmax=$(sed -n 's/.*control tick max \([0-9]*\) .*/\1/p' <<<"$whole")
    wmean=$(sed -n 's/.* mean \([0-9]*\) over.*/\1/p' <<<"$whole")
    nticks=$(sed -n 's/.* over \([0-9]*\) ticks.*/\1/p' <<<"$whole")
    tmax=$(sed -n 's/.*control tick max \([0-9]*\) .*/\1/p' <<<"$core")
    tmean=$(sed -n 's/.* mean \([0-9]*\);.*/\1/p' <<<"$core")
    eend=$(sed -n 's/.*episode-end tick max \([0-9]*\);.*/\1/p' <<<"$core")
    step=$(sed -n 's/.*adaptation step tick \([0-9]*\);.*/\1/p' <<<"$core")
    guard=$(sed -n 's/.*flash write tick \([0-9]*\) instructions.*/\1/p' <<<"$core")
    envm=$(sed -n 's/.*robot Env \([0-9]*\), controller.*/\1/p' <<<"$split")
    adm=$(sed -n 's/.*controller + adapter \([0-9]*\);.*/\1/p' <<<"$split")
    aticks=$(sed -n 's/.*adaptation step in all (\([0-9]*\) ticks).*/\1/p' <<<"$split")
    atotal=$(sed -n 's/.* ticks) core share \([0-9]*\),.*/\1/p' <<<"$split")
    aenv=$(sed -n 's/.*, of it robot Env \([0-9]*\), of it its.*/\1/p' <<<"$split")
    anends=$(sed -n 's/.*, of it its \([0-9]*\) episode-end ticks.*/\1/p' <<<"$split")
    aends=$(sed -n 's/.* episode-end ticks \([0-9]*\) instructions.*/\1/p' <<<"$split")
    ram=$(sed -n 's/.*adapter RAM \([0-9]*\) B.*/\1/p' "$log")
    lb=$(sed -n 's/.*lower bound \([0-9]*\) B.*/\1/p' "$log")
    us() { awk -v i="$1" -v c="$CPI_MILLI" -v f="$mhz" 'BEGIN{printf "%d", i*c/1000/f + 0.5}'; }
    tmax_us=$(us "$tmax") tmean_us=$(us "$tmean") step_us=$(us "$step") guard_us=$(us "$guard")
    eend_us=$(us "$eend") atotal_us=$(us "$atotal") wmax_us=$(us "$wmax") wmean_us=$(us "$wmean")
    robot_rows+=("| $m → $board @ $mhz MHz | $tmax ($tmax_us µs) | $tmean ($tmean_us µs) | $eend ($eend_us µs) | $step ($step_us µs) | $atotal ($atotal_us µs) | $guard ($guard_us µs) | $ram / $lb = $(awk -v a="$ram" -v b="$lb" 'BEGIN{printf "%.2f", a/b}') |")
    robot_split+=("| $m | $nticks | $wmax ($wmax_us µs) | $wmean ($wmean_us µs) | $tmean | $envm | $adm | $aticks | $atotal | $aenv | $anends: $aends |")
    bundle_line=$(sed -n 's/^robot: bundle //p' "$log")
    params=$(sed -n 's/^robot: P \([0-9]*\),.*/\1/p' "$log")
    if [ "$m" = microbit ]; then
        m0_tmean=$tmean m0_envm=$envm m0_adm=$adm m0_atotal=$atotal m0_atotal_us=$atotal_us
        m0_aends=$aends m0_anends=$anends m0_aticks=$aticks m0_eend_us=$eend_us
    else
        m4_atotal_us=$atotal_us m4_tmax_us=$tmax_us
    fi
    if [ "$m" = microbit ]; then
        rcheck "$((tmax_us <= TICK_BUDGET_US))" "control tick ≤ 2 ms on the RP2040 (the core's share, worst): $tmax_us µs (a 50 Hz loop keeps $(awk -v u="$tmax_us" 'BEGIN{printf "%d", 100 - u/200}') % of its 20 ms free)"
    fi
    rcheck "$((step_us <= STEP_BUDGET_US))" "$m: adaptation step tick (the step's one pause: last episode's gradient and the update) ≤ 1 s at $mhz MHz: $step_us µs"
    rcheck "$((atotal_us <= STEP_BUDGET_US))" "$m: all the compute of one adaptation step ($aticks ticks, the core's share) ≤ 1 s at $mhz MHz: $atotal_us µs ($(awk -v u="$atotal_us" 'BEGIN{printf "%.2f", u/1e6}') × the goal)"
    rcheck "$((ram * 1000 <= lb * RAM_FACTOR_MILLI))" "$m: adapter RAM $ram B ≤ 1.2 × lower bound $lb B"
done
for b in pololu-3pi-2040:thumbv6m-none-eabi microbit-v2:thumbv7em-none-eabihf; do
    dir=../${b%%:*} t=${b##*:}
    elf=$dir/target/$t/release/sgmrl-${b%%:*}
    if ! (cd "$dir" && cargo build -q --release --locked); then
        echo "bench: $dir failed to build" >&2
        status=1
        continue
    fi
    code=$("$tools/llvm-size" -A "$elf" | awk '$1==".vector_table"||$1==".text"||$1==".rodata"||$1==".boot2"{s+=$2} END{print s}')
    robot_rows+=("| firmware \`boards/${b%%:*}\` ($t) | code $code B (no parameters: the bundle is its own flash region) | | | | | | |")
    rcheck "$((code <= BOARD_CODE_BUDGET))" "boards/${b%%:*}: firmware code $code B ≤ 64 KB"
done
robot_header="| QEMU machine → board | control tick, worst (core share: instructions, time) | control tick, mean (core share) | episode-end tick, worst (core share) | adaptation step tick (core share) | adaptation step, all its ticks (core share) | guard verdict + slot write tick (core share) | adapter RAM / lower bound (B) |"
robot_sep="|---|---|---|---|---|---|---|---|"
split_header="| machine | plain control ticks | whole tick with the plant's physics, worst | same, mean | core share, mean | of it robot \`Env\` | of it controller + adapter | adaptation step: ticks | its core share (instructions) | of it robot \`Env\` | of it episode-end ticks: instructions |"
split_sep="|---|---|---|---|---|---|---|---|---|---|---|"
echo
echo "$robot_header"
echo "$robot_sep"
printf '%s\n' "${robot_rows[@]}"
echo
echo "$split_header"
echo "$split_sep"
printf '%s\n' "${robot_split[@]}"
printf '%s\n' "${robot_checks[@]}"

header="| machine | bundle | P | .text (B) | .rodata without params (B) | params (bundle, B) | code (B) | static RAM (B) | adapter RAM (B) | lower bound (B) | RAM / bound | peak stack (B) | adaptation stack (B) | instructions / adaptation step | instructions / env step | MACs / env step | instructions / MAC |"
sep="|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
echo
echo "$header"
echo "$sep"
printf '%s\n' "${rows[@]}"
echo
printf '%s\n' "${checks[@]}"
echo
echo "Per call on mps2-an386 (instructions):"
echo "$costs"
echo "Per call on microbit (instructions):"
echo "$costs_m0"

if [ -n "$doc" ]; then
    rustc_v=$(rustc -V)
    qemu_v=$(qemu-system-arm --version | head -1)
    {
        cat <<EOF
# Device budgets

Measured by \`cargo xtask bench-device\` (which runs \`boards/qemu/bench.sh --doc docs/device.md\`)
on $(date -u +%Y-%m-%d) with $rustc_v and $qemu_v. Every figure below comes from that one
run; regenerate this file rather than editing it.

## What runs
The adaptation demo \`boards/qemu/src/bin/adapt.rs\` (release: opt-level "s", fat LTO,
codegen-units 1) embeds one bundle at a 4-aligned flash address, runs the recipe's ζ
adaptation steps tick by tick on the core's nav2d simulator (\`act\` → env step → \`reward\`,
\`end_episode\`; goal (0.3, −0.2), seed 7), then evaluates the adapted policy.

| bundle | policy | P | recipe | machines |
|---|---|---|---|---|
| default | the default embedded policy and recipe (\`sgmrl demo\`'s \`embedded\` preset): GaussianMlp 2→16→2 | 84 | ζ = 1, N = 40, H = 20, reward-to-go (streaming), α = 0.03, \`clip(0.1·u, ±0.1)\` | all three |
| mid | GaussianMlp 2→32→32→2 (layers, not per-step overheads, dominate) | 1,220 | ζ = 1, N = 20, H = 100, reward-to-go (streaming), the paper's action map | all three |
| paper | the paper's nav2d size: GaussianMlp 2→100→100→2 | 10,604 | same | mps2-an386, mps2-an505 (its adapter memory alone, in the table below, exceeds the microbit's 16 KB) |
| test | the committed test bundle: GaussianMlp 2→16→2 | 84 | ζ = 2, N = 10, H = 100, reward-to-go | all three |

The default, mid and paper bundles are written by \`boards/qemu/pins\` with random weights (costs do
not depend on the values) and are not meta-trained. Machines: microbit = Cortex-M0, no FPU,
16 KB RAM; mps2-an386 = Cortex-M4F; mps2-an505 = Cortex-M33 with FPU.

## Results
$header
$sep
$(printf '%s\n' "${rows[@]}")

## Budgets
The budgets (code without parameters ≤ 32 KB, adapter RAM ≤ 1.2 × the lower bound,
adaptation stack ≤ 2 KB; ≤ 3 instructions per MAC on the M4F) are goals for the default
embedded policy. The first three are checked here for every bundle on every machine, the
last on the mps2-an386 for every bundle but the test one.

$(printf '%s\n' "${checks[@]}")

## The robot firmware (issue #10 §5)
\`boards/qemu/src/bin/robot.rs\` runs the core's control loop (\`sgmrl::control\`) over a
\`DiffDriveRobot\` whose motors, encoders, gyro and clock are the simulated embedded-hal
drivers of \`sgmrl::simhw\` (the \`DiffDrive\` simulator behind them), with the meta-trained
diffdrive bundle \`boards/qemu/bundles/diffdrive.sgml\`, the one the real boards run: written
by \`sgmrl train --preset diffdrive\` (SG-MRL, SoftmaxMlp 6→16→6, P = $params; bundle
$bundle_line; streaming reward-to-go rule). The scenario (\`boards/qemu/src/robot_e2e.rs\`):
adapt on one simulated robot (a weak left motor) towards a goal relative to each episode's
start, the guard's evaluation episodes, the slot write, a reboot that restores the kept
policy. The M0 machine stands in for the RP2040 (Cortex-M0+, no FPU) and the M4F machine
for the nRF52833 (Cortex-M4F). Times assume
**$(awk -v c="$CPI_MILLI" 'BEGIN{printf "%.1f", c/1000}') cycles per instruction** at the boards' clocks
(125 MHz, 64 MHz): an assumption, not a measurement (QEMU counts instructions; flash wait
states, XIP cache misses and soft-float call overheads on real silicon are not modelled).

What is counted (\`robot_e2e.rs\`: \`MeteredClock\`, \`MeteredEnv\`, \`Spent\`):
- **core share**: a tick's instructions less those spent inside the control clock's
  \`wait_for_tick\`, where the simulated plant's soft-float physics (sines, cosines, the
  motor model) runs in place of the hardware's wait for its timer. It is the policy's
  \`act\`, the adapter's bookkeeping (\`reward\`, the episode buffer, \`end_episode\`), the
  controller, and the robot \`Env\`: motor drivers, encoder and gyro reads, odometry,
  observation and reward. The simulated drivers' register accesses stay in it (a
  \`RefCell\` borrow each; the gyro's register pair is formed from the simulated rate with one
  \`roundf\`) where hardware has bus or register accesses. An episode's first tick includes
  its reset: the settle loop's encoder reads count, its waits do not.
- **control tick**: a tick that plays one step and ends no episode; worst and mean over
  the run.
- **episode-end tick**: the last step of an episode and \`end_episode\`: during adaptation
  the streaming rule's gradient of that episode (H steps). The motors keep the last command
  meanwhile; the next tick's reset stops them.
- **adaptation step tick**: the episode-end tick of the batch's last episode: its gradient
  and the update, the longest pause of the step.
- **adaptation step, all its ticks**: the core share summed over every tick of the step's
  episodes: the step's whole compute, spread over N·H control periods of driving.
- **guard verdict + slot write tick**: the last evaluation episode's end, the verdict and the
  flash record (simulated NOR flash in RAM).

$robot_header
$robot_sep
$(printf '%s\n' "${robot_rows[@]}")

Where a control tick goes (instructions; "whole" includes the plant's physics, which a
robot does not run):

$split_header
$split_sep
$(printf '%s\n' "${robot_split[@]}")

$(printf '%s\n' "${robot_checks[@]}")

What dominates, from the tables above and the M0 per-call costs below:
- On the M0 (soft float) a control tick's core share is $m0_tmean instructions on average:
  $m0_envm in the robot \`Env\` and $m0_adm in the controller and adapter, nearly all of
  which is the policy's \`sample\`: $m0_sample instructions on its own in the M0 costs run
  below, a forward pass of soft-float multiply-accumulates and 16 tanh at $m0_tanh
  instructions each, then the softmax and the draw.
- All the compute of one adaptation step on the M0 is $m0_atotal instructions
  ($m0_atotal_us µs at the assumed CPI), of which $m0_aends in its $m0_anends episode-end ticks
  (each episode's gradient: \`accumulate_grad_log_prob\` once per step, forward and backward
  pass, $m0_grad instructions a call in the M0 costs run) and the rest in the $m0_aticks ticks' \`act\`s and the robot \`Env\`. Spread over the
  step's N·H control periods, it delays the robot only at episode ends (worst
  $m0_eend_us µs); on the M4F's FPU the whole step is $m4_atotal_us µs.

## Where the instructions go (microbit, M0: one call each, \`boards/qemu/src/bin/costs.rs\`)
$costs_m0

## Where the instructions go (mps2-an386, one call each, \`boards/qemu/src/bin/costs.rs\`)
Parameters read from word-aligned little-endian bytes, as \`act\` and the gradient read the
meta-parameters from the bundle in flash when ζ = 1:
$costs

Per environment step, adaptation runs one \`sample\` (in \`act\`) and one
\`accumulate_grad_log_prob\` (in \`end_episode\`); the rest of a step's instructions are the
simulator, the advantages, bookkeeping and the final parameter update.

## What the numbers rest on, and why some budgets are not met
- **Dense layers** (\`src/policy/dense.rs\`): the three products (forward \`W·x\`,
  \`Wᵀ·δ\`, the weight gradient \`δ·xᵀ\`) are column-blocked: a block of 20 columns of the
  shared vector stays in registers while every row streams past, rows in pairs (fours for
  the weight gradient), tails of 4, 2 and 1 columns; the block at column 0 starts each sum,
  so nothing is zero-filled first. The bias, the activation (tanh or its derivative) and
  the finiteness checks run inside the kernels' own pass (\`ParamSource::affine_map\`,
  \`transposed_map\`) rather than in passes of their own. Bounds-check free (\`as_chunks\`,
  destructured arrays). Parameters in flash are read as words when the bundle is 4-aligned
  (\`LeF32s::is_word_aligned\`, via \`bytemuck\`'s checked cast; misaligned bytes take the
  bytewise path, same bits). Every sum is formed in the plain loop's order, so the host and
  the three cores compute the same bits (the kernel tests compare 20 shapes bit for bit with
  the plain loops). On the soft-float M0 the plain loops are compiled instead (unrolling
  saves nothing there and costs flash).
- **The M4F inner loops**, read once in a QEMU per-instruction trace (not part of this run):
  a load and a \`VMLA\` per weight in the forward and \`Wᵀ·δ\` products, and a load, a
  \`VMLA\` and a store per gradient scalar in the weight gradient. LLVM allocates
  single-precision registers as s0, s2, s4, … and so never merges consecutive \`VLDR\`s into
  \`VLDM\`. The whole adaptation step of the paper policy, tanh (two per hidden unit and
  step), sampling, the simulator and the update included, comes to the ratio in the table.
- **Small policies**: the default 2→16→2 policy does 224 MACs per environment step, so
  3 instructions per MAC would leave 672 instructions for the whole step. Its fixed
  per-step work alone exceeds that: 32 tanh (16 when acting, 16 when the gradient
  recomputes the forward pass, at the \`tanh\` cost below), two normal samples (the \`Rng::normal\`
  cost below), the action map, the simulator, the advantages. The ≤ 3 goal is met where the
  multiply-accumulates dominate (the paper's policy); for the default it is bounded by that
  fixed work, reported as measured.
- **tanh**: \`math::tanh_f32\`, a rational function in plain \`f32\` (≤ 7 ulp, \`|tanh| ≤ 1\`),
  instead of \`libm::tanhf\` (several times as many instructions a call on the M4F, in a
  one-off count not part of this run).
- **Flash**: the policy code is compiled once. The adapter reads the meta-parameters
  (bundle bytes in flash) and the adapted parameters (its RAM) through one
  \`ParamSource\` type, \`MetaSource::View\` (\`src/adapt.rs\`): on little-endian targets
  an \`f32\` in RAM is its little-endian bytes, so both are \`LeF32s\`, and RAM, being
  4-aligned, takes the word-load path. A step is formed in the gradient accumulator and
  tried there before it becomes current, so no third parameter view exists either
  (before: forward pass, sampling and gradient compiled for flash bytes, for RAM slices and
  twice more for a lazily stepped view). The vector table has one device
  interrupt entry (\`boards/qemu/src/vectors.rs\`: the firmware enables no interrupt;
  cortex-m-rt's generic table has 32 entries on ARMv6-M, 240 on ARMv7-M and 480 on
  ARMv8-M Mainline). One CRC-32 with a 64-byte table (\`src/crc32.rs\`) instead of
  two 1 KB tables; the demo and the panic/fault handlers print through
  \`boards/qemu/src/out.rs\` instead of \`core::fmt\`.
- **Stack**: the policy's hidden-layer activations and deltas, the only working memory
  that grows with the network's width, are in the adapter's memory buffer
  (\`Memory::scratch_floats\` = 2·(hidden₀ + hidden₁) floats); only the head's two
  \`act_dim\`-vectors are on the stack. So the adaptation stack does not grow with the
  policy's width: it is the \`Adapter\` value (its 32-float action buffer included), the
  demo's control loop and \`Adapter::end_episode\`, then either an episode's gradient (the
  estimator's loop and one policy evaluation) or the trial of a step (\`apply_step\`: a
  sample and a log-probability at the stepped parameters), whichever is deeper. The
  advantage weights are computed, and a step is tried, in frames of their own that are
  gone while the gradient runs. The price is adapter RAM above the lower bound by that
  scratch (the RAM / bound column).

## Columns
- **.text**: machine code of the whole firmware (\`llvm-size -A\`): the core, libm, compiler
  builtins, cortex-m-rt, semihosting output and the demo itself.
- **.rodata without params**: read-only data other than the bundle (CRC table, libm tables,
  strings).
- **params (bundle)**: the embedded bundle in flash: header, recipe and the parameters
  (4·P bytes of it) — "parameters" in the budget.
- **code**: flash without parameters = \`.vector_table + .text + .rodata − bundle\`; the
  budget is 32 KB.
- **static RAM**: everything from the start of RAM to the bottom of the stack (\`.data\`,
  \`.bss\`): here the adapter's memory buffer plus 8 bytes.
- **adapter RAM**: \`recipe.memory(&shape).total_bytes()\`: the adapter's one \`&mut [f32]\`
  (gradient accumulator, which also holds θ₁ when ζ = 1; a second parameter copy only when
  ζ > 1; the episode buffer; the policy's hidden-layer scratch). **lower bound**: P floats plus one episode buffer
  (\`Memory::lower_bound_floats\`: H·(obs + action + 1) floats); **RAM / bound**: their ratio
  (budget ≤ 1.2).
- **peak stack**: deepest stack of the whole run by stack painting (\`src/stack.rs\`), the
  firmware's own frames (\`main\`, bundle parsing, printing) included.
- **adaptation stack**: the part of the stack the adaptation takes: the stack is repainted
  just before the demo calls into the adapter, and this is the deepest point below that
  call site — it includes the \`Adapter\` value itself and the demo's control loop (budget
  ≤ 2 KB on top of the adapter RAM).
- **instructions / adaptation step**: guest instructions from SysTick under
  \`qemu -icount shift=6\` (\`src/icount.rs\`), averaged over the ζ steps: everything one step
  takes — N·H calls of \`act\` (forward pass, sampling, action map), the simulator's steps,
  \`reward\`, \`end_episode\` (advantages and the gradient of each episode) and the parameter
  update. Deterministic run to run; **instructions, not cycles**: QEMU models no pipeline,
  wait states or cycle counts (a VDIV is one instruction here and many cycles on a real
  Cortex-M4). On hardware read DWT CYCCNT instead.
- **instructions / env step**: the same total divided by the N·H environment steps.
- **MACs / env step**: the multiply-accumulates one environment step of the algorithm needs,
  counting one per weight and pass: the forward pass in \`act\` (F) plus, for the gradient of
  that step's log-probability, a forward pass (F), the weight gradient δ·xᵀ (F) and the
  propagation of the deltas through every layer but the first (F − obs·hidden₀), i.e.
  4F − obs·hidden₀ with F = \`PolicyShape::forward_macs()\` (default: F = 64, total 224;
  mid: F = 1,152, total 4,544; paper: F = 10,400, total 41,400). Biases, tanh, sampling, log-probabilities and
  the simulator are not counted but are in the instructions.
- **instructions / MAC**: the ratio of the two previous columns (the M4F budget is ≤ 3).
EOF
    } >"$doc"
    echo "bench: wrote $doc"
fi
exit $status
