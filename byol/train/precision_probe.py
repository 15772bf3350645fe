"""``run.precision: auto`` on a CPU with bf16 units: the faster precision, measured, not assumed.

PyTorch reports what a CPU has (``byol.device.cpu_bf16_units``: AMX, AVX-512 BF16), not what it gains:
on an AMD EPYC (Zen 4, AVX-512 BF16) a bf16 step of the ``cpu`` preset took half the fp32 one, while on
an Intel Xeon whose hypervisor hides AMX but shows AVX-512 BF16 the same step gained 5% and ResNet-18's
lost 8% (``benchmarks/precision.py``, docs/results/precision-cpu/). So before the first step the run's
own model takes a few forward and backward passes in each precision (the passes alone: views made
once, nothing else timed), interleaved, and keeps bf16 only where its fastest pass is clearly faster than
fp32's (``BF16_AT_LEAST``). The log line and ``summary.json``'s ``precision_reason``
say what was measured. CUDA runs bf16 without a probe; a CPU without bf16 units fp32.

A measurement can come out either way near the threshold, so it is taken once per run: a resumed run
keeps the precision its checkpoint was trained in (``saved``), or it would not end where an unbroken
run does; and a short run (fewer than ``PROBE_FROM_STEPS`` steps, or a time budget under
``PROBE_FROM_MINUTES``) is not worth the probe's seconds and runs fp32, the exact one, the same every
time it is launched.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from byol.device import DevicePolicy, cpu_bf16_units
from byol.dist import DistInfo, from_rank0

BF16_AT_LEAST = 1.1  # bf16 must be this many times faster than fp32: otherwise fp32, the exact one
ROUNDS = 5  # timed passes of each precision, interleaved, after one warm-up pass each; the fastest of each counts
PROBE_FROM_STEPS = 200  # shorter runs (by their epochs) take fp32 unprobed
PROBE_FROM_MINUTES = 2.0  # and so do shorter time budgets


def measured_precision(
    policy: DevicePolicy,
    setting: str,
    probe: Callable[[DevicePolicy], Callable[[], None]],
    info: DistInfo,
    planned: tuple[float, float | None] | None = None,
    saved: str | None = None,
) -> tuple[DevicePolicy, float | None]:
    """``policy`` with the precision ``run.precision`` (``setting``) resolves to here, and the speed-up
    bf16 measured (fp32 seconds / bf16 seconds; None where nothing was measured).

    ``probe(policy)`` gives a callable that runs one forward and backward pass of the run's model in
    that policy's precision and leaves no trace (``byol.train.memory.MemoryProbe``). Every rank takes
    rank 0's choice (the clocks differ). ``planned``: the run's steps and time budget in minutes (None:
    probe whatever the length); ``saved``: the precision of the checkpoint a resumed run starts from."""
    units = cpu_bf16_units()
    if setting != "auto" or policy.device.type != "cpu" or units is None:
        return policy, None
    kinds = ("", "fp32", "bf16")  # rank 0's reading of the checkpoint, for every rank: one choice, one probe
    saved = kinds[from_rank0(kinds.index(saved) if saved in kinds else 0, info, policy.device)]
    if saved:
        reason = f"{saved}: auto, as its checkpoint was trained (measured when the run started, on {units})"
        return dataclasses.replace(policy, precision=saved, precision_reason=reason), None
    if planned is not None and _too_short(*planned):
        steps, minutes = planned
        length = f"a {minutes:g}-minute budget" if minutes is not None else f"{steps:.0f} steps"
        reason = (
            f"fp32: auto, {length} is too short to time bf16 on this CPU's {units} (probed from "
            f"{PROBE_FROM_STEPS} steps or {PROBE_FROM_MINUTES:g} minutes; --precision bf16 asks for it)"
        )
        return dataclasses.replace(policy, precision="fp32", precision_reason=reason), None
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
    # The fastest pass of each: what the hardware does when nothing else holds the cores. Another process
    # that takes a core for part of the probe slows some passes (a median of 3 read 0.63× for a step that
    # is 2.00× faster in bf16, AMD EPYC, 2026-12-07); it cannot make a pass faster than the hardware.
    speedup = min(seconds["fp32"]) / min(seconds["bf16"])
    speedup = from_rank0(round(speedup * 1000), info, policy.device) / 1000
    chosen = "bf16" if speedup >= BF16_AT_LEAST else "fp32"
    reason = (
        f"{chosen}: auto, bf16 measured {speedup:.2f}× the speed of fp32 on this CPU's {units} "
        f"({'at least' if chosen == 'bf16' else 'less than'} the {BF16_AT_LEAST}× bf16 must gain)"
    )
    return dataclasses.replace(candidates[chosen], precision_reason=reason), speedup


def _too_short(steps: float, minutes: float | None) -> bool:
    """Whether a run of ``steps`` steps, or of a ``minutes`` time budget (it decides where it is set),
    is too short to be worth the probe."""
    return minutes < PROBE_FROM_MINUTES if minutes is not None else steps < PROBE_FROM_STEPS
