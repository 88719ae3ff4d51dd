"""bf16 capability: read from CPU flags and lowered by ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA;
precision=bf16 is refused where it would be emulated, unless precision_check=false. Every case
passes its flags explicitly, so nothing here depends on this machine's CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from urlb.hardware import Bf16Support, cpu_bf16_support, cpu_flags
from urlb.runs import config
from urlb.runs.config import ConfigError, validate

REPO = Path(__file__).resolve().parents[1]
X86_CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\nbogomips\t: 4000\n"
ARM_CPUINFO = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


def test_flags_are_read_from_x86_and_arm_cpuinfo():
    assert cpu_flags(X86_CPUINFO) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert "bf16" in cpu_flags(ARM_CPUINFO)
    assert cpu_flags("processor : 0\n") == set()


@pytest.mark.parametrize(
    "flags,capability,env,native",
    [
        ({"avx2", "fma"}, "AVX2", {}, False),  # an AVX2-only AMD EPYC
        ({"avx512f", "avx512_bf16", "amx_bf16"}, "AVX512", {}, True),
        ({"avx512f", "amx_bf16"}, "AVX512", {}, True),
        ({"avx512f", "avx512_bf16"}, "AVX2", {}, False),  # ATEN_CPU_CAPABILITY=avx2
        ({"avx512f", "avx512_bf16"}, "AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
        ({"avx512f", "avx512_bf16"}, "AVX512", {"ONEDNN_MAX_CPU_ISA": "avx512_core_bf16"}, True),
        ({"avx512f"}, "AVX512", {}, False),  # AVX-512 without its bf16 part
        ({"asimd", "bf16"}, "DEFAULT", {}, True),  # Arm with the BF16 extension
    ],
)
def test_native_bf16_follows_flags_and_lowering_variables(flags, capability, env, native):
    support = cpu_bf16_support(flags, capability, env)
    assert support.native is native
    assert capability in support.description


def _cfg(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name="pretrain", overrides=["device=cpu", *overrides])


def test_bf16_without_native_support_is_refused_naming_what_was_found(monkeypatch):
    found = "CPU flags: no avx512_bf16/amx_bf16/bf16, torch AVX2"
    monkeypatch.setattr(config, "bf16_support", lambda device: Bf16Support(False, found))
    with pytest.raises(ConfigError) as info:
        validate(_cfg("precision=bf16"))
    message = str(info.value)
    assert found in message and "precision=fp32" in message and "precision_check=false" in message
    assert "\n" not in message
    validate(_cfg("precision=bf16", "precision_check=false"))  # the override allows it
    validate(_cfg("precision=fp32"))  # fp32 never asks


def test_bf16_with_native_support_passes(monkeypatch):
    seen = []
    monkeypatch.setattr(config, "bf16_support", lambda device: seen.append(device) or Bf16Support(True, "x"))
    validate(_cfg("precision=bf16"))
    assert seen == [torch.device("cpu")]
