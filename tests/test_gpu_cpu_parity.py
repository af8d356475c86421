"""The same keys give the same slots and reads on CPU and CUDA (skipped without CUDA)."""

import pytest
import torch

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize(
    "make_hash",
    [
        lambda D: GlobalAffineHash(D),
        lambda D: GlobalAffineHash(D, mode="prototype"),
        lambda D: BlockPermutationHash(D, 4096),
    ],
)
def test_indices_identical_on_cpu_and_cuda(make_hash):
    D = 1 << 20
    keys = torch.randint(-(2**62), 2**62, (10_000,))
    hash_fn = make_hash(D)
    assert torch.equal(hash_fn.indices(keys, 16, 3), hash_fn.indices(keys.cuda(), 16, 3).cpu())


def test_reads_match_between_cpu_and_cuda():
    D, d = 1 << 18, 32
    keys, values = torch.arange(20_000), torch.randn(20_000, d)
    cpu = BBPMMemoryFloat(D, d, 16, 1, GlobalAffineHash(D))
    gpu = BBPMMemoryFloat(D, d, 16, 1, GlobalAffineHash(D), device="cuda")
    cpu.write(keys, values)
    gpu.write(keys.cuda(), values.cuda())
    torch.testing.assert_close(gpu.counts.cpu(), cpu.counts)
    torch.testing.assert_close(gpu.read(keys.cuda()).cpu(), cpu.read(keys), rtol=1e-5, atol=1e-6)


def test_half_storage_reads_match_between_cpu_and_cuda():
    """fp16/bf16 tables: the GPU's Triton read against the CPU's chunked read; the tables
    themselves add in the storage dtype in a different order, hence the looser tolerance."""
    D, d = 1 << 16, 32
    keys, values = torch.arange(5_000), torch.randn(5_000, d)
    for dtype in (torch.float16, torch.bfloat16):
        cpu = BBPMMemoryFloat(D, d, 8, 1, GlobalAffineHash(D), dtype=dtype)
        gpu = BBPMMemoryFloat(D, d, 8, 1, GlobalAffineHash(D), dtype=dtype, device="cuda")
        cpu.write(keys, values)
        gpu.write(keys.cuda(), values.cuda())
        assert torch.equal(gpu.counts.cpu(), cpu.counts)
        out_gpu, out_cpu = gpu.read(keys.cuda()).cpu(), cpu.read(keys)
        assert out_gpu.dtype == out_cpu.dtype == torch.float32
        torch.testing.assert_close(out_gpu, out_cpu, rtol=2e-2, atol=2e-2)


def test_flyhash_codes_match_between_cpu_and_cuda():
    """The fly-hash baseline's key patterns and winner sets on CUDA (torch path) against
    the CPU (C kernel or torch): patterns to float rounding (log/cos differ in the last
    bits between devices), winner sets equal for all but near-tied keys."""
    from bbpm.baselines.flyhash import FlyHashHebbianMemory
    from bbpm.baselines.keycodes import key_gaussian

    keys = torch.arange(4_000) * 7919
    cpu = FlyHashHebbianMemory(d=16, m=4096, k=8, seed=3)
    gpu = FlyHashHebbianMemory(d=16, m=4096, k=8, seed=3, device="cuda")
    assert torch.equal(cpu.inputs, gpu.inputs.cpu())
    torch.testing.assert_close(
        key_gaussian(keys.cuda(), cpu._salt, 64).cpu(),
        key_gaussian(keys, cpu._salt, 64),
        rtol=1e-5,
        atol=1e-5,
    )
    same = (
        (cpu.codes(keys).sort(dim=1).values == gpu.codes(keys.cuda()).cpu().sort(dim=1).values)
        .all(dim=1)
        .double()
        .mean()
    )
    assert float(same) >= 0.99
