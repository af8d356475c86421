"""PeakResident: the peak resident memory of a block, above its start."""

import sys
import time

import pytest
import torch

from bbpm.utils.memory_stats import PeakResident, resident_bytes

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
MIB = 2**20


@linux
def test_resident_bytes_grows_with_a_live_tensor():
    before = resident_bytes()
    block = torch.ones(32 * MIB // 4)  # 32 MiB, touched
    after = resident_bytes()
    assert after - before >= 30 * MIB
    del block


@linux
def test_peak_sees_a_freed_tensor_and_not_a_small_block():
    with PeakResident() as big:
        block = torch.ones(64 * MIB // 4)  # 64 MiB
        block.add_(1.0)
        time.sleep(0.05)  # the sampler runs at least once while the tensor lives
        del block
    with PeakResident() as small:
        torch.ones(1024).sum()
    assert 60 * MIB <= big.peak_bytes <= 96 * MIB
    assert small.peak_bytes < 16 * MIB
    assert big.start_bytes is not None and big.start_bytes > 0


@linux
def test_peak_of_nested_blocks_orders():
    with PeakResident() as outer:
        held = torch.ones(48 * MIB // 4)
        with PeakResident() as inner:
            extra = torch.ones(16 * MIB // 4)
            time.sleep(0.05)
            del extra
        del held
    assert outer.peak_bytes >= 60 * MIB
    assert 14 * MIB <= inner.peak_bytes <= 40 * MIB


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval must be > 0"):
        PeakResident(interval=0)
