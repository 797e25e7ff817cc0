#!/usr/bin/env python3
"""Shares of a profile by what each sample was doing, for docs/results.md §3: reads
`perf script -F comm,tid,period,ip,sym --no-inline` output of a `perf record --call-graph
dwarf` run; the first frame from the leaf that names a category decides."""
import re, sys
from collections import Counter
RULES = [
    ("allocation", re.compile(r"exc_page_fault|do_anonymous_page|clear_page|__handle_mm_fault|"
                              r"\bmalloc\b|_int_malloc|_int_free|\bfree\b|cfree|calloc|realloc|"
                              r"malloc_consolidate|unlink_chunk|__rust_alloc|__rust_dealloc|"
                              r"__rust_realloc|raw_vec|alloc::alloc|__munmap|__mmap|sysmalloc|systrim")),
    ("products", re.compile(r"matrixmultiply::|sgmrl_host::gemm::gemm\b|narrow_gemm|few_rows|"
                            r"sgmrl_host::gemm::a_b|sgmrl_host::gemm::at_b|sgmrl_host::gemm::a_bt")),
    ("environment", re.compile(r"as sgmrl::env::Env>|sgmrl::sim::|mujoco|make_env")),
    ("CLI: files, validation", re.compile(r"sgmrl_host::atomic|sgmrl_host::eval|checkpoint|"
                                          r"sgmrl_host::export|runlog|validation")),
    ("rayon: waiting, scheduling", re.compile(r"rayon_core::sleep|rayon_core::registry::WorkerThread::wait|"
                                              r"crossbeam|futex|sched_yield|rayon_core::latch")),
]
OWN = re.compile(r"sgmrl")
DISPATCH = re.compile(r"with_avx512|with_avx2")
ZERO_FILL = re.compile(r"memset|memmove|memcpy")
def classify(frames):
    # A fill or copy called by the project's code directly (not by the allocator).
    if len(frames) > 1 and ZERO_FILL.search(frames[0]) and OWN.search(frames[1]):
        return "zero-fill and copies"
    for f in frames:
        for name, rx in RULES:
            if rx.search(f):
                return name
        # The project's own code that is none of the above (the dispatch wrappers of
        # `widest!` hold both products and element-wise loops: their caller decides).
        if OWN.search(f) and not DISPATCH.search(f):
            return "non-matrix work"
    return "other (runtime, unresolved)"
shares, total = Counter(), 0
block = []
def flush():
    global total
    if not block:
        return
    head = block[0].split()
    try:
        period = int(head[2])
    except (IndexError, ValueError):
        period = 1
    frames = [l.split(None, 1)[1] if len(l.split(None, 1)) > 1 else "" for l in block[1:]]
    shares[classify(frames)] += period
    total += period
for line in open(sys.argv[1], errors="replace"):
    line = line.rstrip("\n")
    if not line.strip():
        flush(); block = []
    else:
        block.append(line.strip() if block else line)
flush()
for name, v in shares.most_common():
    print(f"{name:>28}: {100.0 * v / total:5.1f} %  {v / 1e9:6.2f} s")
print(f"{'CPU time sampled':>28}: {total / 1e9:.2f} s")
