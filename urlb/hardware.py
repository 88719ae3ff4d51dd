"""What this machine's CPU can do for bfloat16, so ``precision=bf16`` is refused where it would be
slow instead of silently running many times slower than fp32.

A CPU without native bf16 instructions (no AVX512-BF16, no AMX-BF16 on x86; no BF16 extension on
Arm) emulates bf16 matrix products: measured on an AVX2-only setting, about 1.3 GFLOP/s against
57 GFLOP/s in fp32 (~45x slower). The flags come from /proc/cpuinfo; torch's dispatch level
(``ATEN_CPU_CAPABILITY``) and oneDNN's ISA cap (``ONEDNN_MAX_CPU_ISA``) lower the capability when
they are set below what bf16 needs, as they do for the kernels torch actually runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

# cpuinfo flags that mean native bf16 matrix arithmetic (x86: AVX512-BF16, AMX-BF16; Arm: BF16).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# ONEDNN_MAX_CPU_ISA values that still allow bf16 instructions (oneDNN's names, upper case).
ONEDNN_BF16_ISAS = (
    "ALL",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX10_2_512",
    "AVX10_2_512_AMX_2",
)


@dataclass(frozen=True)
class Bf16Support:
    native: bool
    description: str  # what was found, for messages: e.g. "CPU flags avx512_bf16 amx_bf16, torch AVX512"


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The feature flags of the first CPU in /proc/cpuinfo (``flags`` on x86, ``Features`` on Arm)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def torch_cpu_capability() -> str:
    """torch's CPU kernel level (e.g. AVX512, AVX2, DEFAULT); honours ATEN_CPU_CAPABILITY."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def cpu_bf16_support(
    flags: set[str] | None = None, capability: str | None = None, env: dict[str, str] | None = None
) -> Bf16Support:
    """Whether bf16 runs natively on this CPU. The arguments exist for tests; by default they are
    read from this machine."""
    flags = cpu_flags() if flags is None else flags
    capability = torch_cpu_capability() if capability is None else capability
    env = dict(os.environ) if env is None else env
    found = sorted(f for f in BF16_FLAGS if f in flags)
    parts = [f"CPU flags: {' '.join(found) if found else 'no avx512_bf16/amx_bf16/bf16'}", f"torch {capability}"]
    native = bool(found)
    if "avx512_bf16" in found or "amx_bf16" in found:
        # x86: torch must also run its AVX512 kernels (ATEN_CPU_CAPABILITY=avx2 lowers them).
        native = capability.upper().startswith("AVX512")
    isa_cap = env.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa_cap:
        parts.append(f"ONEDNN_MAX_CPU_ISA={isa_cap}")
        native = native and isa_cap in ONEDNN_BF16_ISAS
    return Bf16Support(native, ", ".join(parts))


def bf16_support(device: torch.device) -> Bf16Support:
    """bf16 on ``device``: the CPU from its flags (see module docstring). CUDA is never refused
    (autocast works there as before); what torch reports is only described."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return Bf16Support(True, f"CUDA {torch.cuda.get_device_name(device)}: native bf16 {'yes' if ok else 'no'}")
    return cpu_bf16_support()
