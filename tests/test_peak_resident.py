"""PeakResident: the peak resident memory of a block, above its start.

The tensors are larger than glibc's largest mmap threshold (32 MiB), so each is a fresh
mapping whatever the process allocated and freed before (a long test session keeps freed
heap pages resident, and a smaller block could reuse them)."""

import sys
import time

import pytest
import torch

from bbpm.utils.memory_stats import PeakResident, release_freed_memory, resident_bytes

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
MIB = 2**20


@linux
def test_resident_bytes_grows_with_a_live_tensor():
    release_freed_memory()
    before = resident_bytes()
    block = torch.ones(96 * MIB // 4)  # 96 MiB, touched
    after = resident_bytes()
    assert after - before >= 90 * MIB
    del block


@linux
def test_peak_sees_a_freed_tensor_and_not_a_small_block():
    with PeakResident() as big:
        block = torch.ones(128 * MIB // 4)  # 128 MiB
        block.add_(1.0)
        time.sleep(0.05)  # the sampler runs at least once while the tensor lives
        del block
    with PeakResident() as small:
        torch.ones(1024).sum()
    assert 120 * MIB <= big.peak_bytes <= 170 * MIB
    assert small.peak_bytes < 16 * MIB
    assert big.start_bytes is not None and big.start_bytes > 0


@linux
def test_peak_of_nested_blocks_orders():
    with PeakResident() as outer:
        held = torch.ones(96 * MIB // 4)
        with PeakResident() as inner:
            extra = torch.ones(64 * MIB // 4)
            time.sleep(0.05)
            del extra
        del held
    assert outer.peak_bytes >= 150 * MIB
    assert 60 * MIB <= inner.peak_bytes <= 100 * MIB


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval must be > 0"):
        PeakResident(interval=0)
