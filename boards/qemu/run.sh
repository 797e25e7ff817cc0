#!/usr/bin/env bash
# Runs one firmware ELF under QEMU; used as the cargo runner and by run-all.sh.
#
#   run.sh <elf> [args…]
#
# The machine follows from the target triple in the ELF's path (target/<triple>/…):
#   thumbv6m-none-eabi        → microbit   (Cortex-M0, 16 MHz)
#   thumbv7em-none-eabihf     → mps2-an386 (Cortex-M4F, 25 MHz)
#   thumbv8m.main-none-eabihf → mps2-an505 (Cortex-M33, 20 MHz)
# Extra arguments reach the firmware as its semihosting command line (QEMU -append).
#
# The firmware's exit code is this script's exit code (semihosting SYS_EXIT_EXTENDED);
# 124 means QEMU was killed by the timeout (SGMRL_QEMU_TIMEOUT seconds, default 60).
#
# Every run uses `-icount shift=6`: each guest instruction advances virtual time by
# 2^6 = 64 ns, so SysTick counts guest instructions deterministically. The firmware's
# src/icount.rs assumes this shift (ICOUNT_SHIFT); change both together.
set -euo pipefail

ICOUNT_SHIFT=6

if [ $# -lt 1 ]; then
    echo "usage: run.sh <elf> [args…]" >&2
    exit 2
fi
elf=$1
shift

case "$elf" in
    *thumbv6m-none-eabi/*) machine=microbit cpu=cortex-m0 ;;
    *thumbv7em-none-eabihf/*) machine=mps2-an386 cpu=cortex-m4 ;;
    *thumbv8m.main-none-eabihf/*) machine=mps2-an505 cpu=cortex-m33 ;;
    *)
        echo "run.sh: cannot tell the QEMU machine from '$elf' (expected target/<triple>/…)" >&2
        exit 2
        ;;
esac

qemu_args=(
    -machine "$machine" -cpu "$cpu" -nographic
    -semihosting-config enable=on,target=native
    -icount "shift=$ICOUNT_SHIFT"
    -kernel "$elf"
)
if [ $# -gt 0 ]; then
    qemu_args+=(-append "$*")
fi

exec timeout "${SGMRL_QEMU_TIMEOUT:-60}" qemu-system-arm "${qemu_args[@]}"
