"""``run.precision: auto`` on a CPU with bf16 units: the faster precision, measured, not assumed.

PyTorch reports what a CPU has (``byol.dist.cpu_bf16_units``: AMX, AVX-512 BF16), not what it gains:
on an AMD EPYC (Zen 4, AVX-512 BF16) a bf16 step of the ``cpu`` preset took half the fp32 one, while on
an Intel Xeon whose hypervisor hides AMX but shows AVX-512 BF16 the same step gained 10% and ResNet-18's
lost 15% (``benchmarks/precision.py``, docs/results/precision-cpu/). So before the first step the run's
own model takes a few forward and backward passes in each precision, interleaved, and keeps bf16 only
where it is clearly faster (``BF16_AT_LEAST``). The log line and ``summary.json``'s ``precision_reason``
say what was measured. CUDA runs bf16 without a probe; a CPU without bf16 units fp32.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable

from byol.dist import DevicePolicy, DistInfo, cpu_bf16_units, from_rank0

BF16_AT_LEAST = 1.1  # bf16 must be this many times faster than fp32: otherwise fp32, the exact one
ROUNDS = 3  # timed passes of each precision, interleaved, after one warm-up pass each


def measured_precision(
    policy: DevicePolicy, setting: str, probe: Callable[[DevicePolicy], Callable[[], None]], info: DistInfo
) -> tuple[DevicePolicy, float | None]:
    """``policy`` with the precision ``run.precision`` (``setting``) resolves to here, and the speed-up
    bf16 measured (fp32 seconds / bf16 seconds; None where nothing was measured).

    ``probe(policy)`` gives a callable that runs one forward and backward pass of the run's model in
    that policy's precision and leaves no trace (``byol.train.memory.MemoryProbe``). Every rank takes
    rank 0's choice (the clocks differ)."""
    units = cpu_bf16_units()
    if setting != "auto" or policy.device.type != "cpu" or units is None:
        return policy, None
    candidates = {p: dataclasses.replace(policy, precision=p) for p in ("fp32", "bf16")}
    passes = {p: probe(c) for p, c in candidates.items()}
    for run_pass in passes.values():  # warm-up: first-call costs (oneDNN primitives, allocations)
        run_pass()
    seconds: dict[str, list[float]] = {p: [] for p in passes}
    for _ in range(ROUNDS):
        for p, run_pass in passes.items():
            start = time.perf_counter()
            run_pass()
            seconds[p].append(time.perf_counter() - start)
    speedup = statistics.median(seconds["fp32"]) / statistics.median(seconds["bf16"])
    speedup = from_rank0(round(speedup * 1000), info, policy.device) / 1000
    chosen = "bf16" if speedup >= BF16_AT_LEAST else "fp32"
    reason = (
        f"{chosen}: auto, bf16 measured {speedup:.2f}× the speed of fp32 on this CPU's {units} "
        f"({'at least' if chosen == 'bf16' else 'less than'} the {BF16_AT_LEAST}× bf16 must gain)"
    )
    return dataclasses.replace(candidates[chosen], precision_reason=reason), speedup
