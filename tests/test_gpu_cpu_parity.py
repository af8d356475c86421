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
