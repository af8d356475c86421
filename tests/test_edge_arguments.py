"""Arguments at the edges of the public API: unsigned keys, non-finite settings, K > D,
device names, NumPy scalars, a missing hash, float ids, and notebook parameter types."""

import numpy as np
import pytest
import torch

from bbpm import BBPMMemoryFloat, BlockPermutationHash, GlobalAffineHash
from bbpm.baselines import CountSketchMemory, ExactDictMemory, FHRRMemory, HopfieldMemory
from bbpm.hashing import diagnostics
from bbpm.memory import BinaryBloomMemory
from bbpm.theory import collision_model, snr_bounds
from bbpm.utils import Experiment
from bbpm.utils.parameters import check_parameters, notebook_parameters, parameters_defaults


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.uint32])
def test_narrow_unsigned_keys_address_the_slots_of_the_same_int64_keys(dtype):
    mem = BBPMMemoryFloat(4096, 4, 2, 1, GlobalAffineHash(4096))
    keys = torch.tensor([0, 7, 200], dtype=dtype)
    assert torch.equal(mem.slots(keys), mem.slots(keys.long()))


def test_uint64_keys_are_refused_because_the_upper_half_would_wrap():
    mem = BBPMMemoryFloat(4096, 4, 2, 1, GlobalAffineHash(4096))
    top = torch.tensor([2**64 - 1], dtype=torch.uint64)  # would land on the slots of -1
    with pytest.raises(TypeError, match="uint64"):
        mem.write(top, torch.ones(1, 4))
    assert not mem.counts.any()
    with pytest.raises(TypeError, match="uint64"):
        BinaryBloomMemory(4096, 2, 1, GlobalAffineHash(4096)).write(top)


@pytest.mark.parametrize("beta", [float("inf"), float("nan"), -1.0, 0.0, True, "16", None])
def test_hopfield_beta_must_be_a_positive_finite_number(beta):
    with pytest.raises((TypeError, ValueError), match="beta"):
        HopfieldMemory(4, capacity=8, beta=beta)


def test_hopfield_accepts_numpy_beta():
    assert HopfieldMemory(4, capacity=8, beta=np.float32(8.0)).beta == 8.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: BBPMMemoryFloat(16, 4, 32, 1, GlobalAffineHash(16)),
        lambda: BBPMMemoryFloat(1024, 4, 300, 1, BlockPermutationHash(1024, 256)),
        lambda: BinaryBloomMemory(16, 32, 1, GlobalAffineHash(16)),
    ],
    ids=["float_K_gt_D", "float_K_gt_block", "bloom_K_gt_D"],
)
def test_K_larger_than_the_table_or_block_is_refused_at_construction(build):
    with pytest.raises(ValueError, match="K"):
        build()


@pytest.mark.parametrize("device", ["cdua", "cuda:x", "gpu", "cuda", "cuda:3"])
@pytest.mark.parametrize(
    "build",
    [
        lambda dev: BBPMMemoryFloat(64, 4, 2, 1, GlobalAffineHash(64), device=dev),
        lambda dev: BinaryBloomMemory(64, 2, 1, GlobalAffineHash(64), device=dev),
        lambda dev: CountSketchMemory(4, 3, 16, device=dev),
        lambda dev: ExactDictMemory(4, capacity=8, device=dev),
        lambda dev: FHRRMemory(4, device=dev),
        lambda dev: HopfieldMemory(4, capacity=8, device=dev),
    ],
    ids=["float", "bloom", "sketch", "dict", "fhrr", "hopfield"],
)
def test_a_bad_device_string_raises_value_error_naming_device(build, device):
    if device.startswith("cuda") and torch.cuda.is_available() and device != "cuda:x":
        if device == "cuda" or torch.cuda.device_count() > 3:
            pytest.skip("this machine has that CUDA device")
    with pytest.raises(ValueError, match="device"):
        build(device)


def test_numpy_scalars_are_accepted_where_python_numbers_are():
    idx = GlobalAffineHash(1000).indices(torch.arange(20), 4, 1)
    assert diagnostics.max_load(idx, np.int64(1000)) == diagnostics.max_load(idx, 1000)
    assert diagnostics.summarize(idx, np.int32(1000)) == diagnostics.summarize(idx, 1000)
    share = snr_bounds.share_above(np.float64(0.9), 1000, 100_000, 8, 1, 64)
    assert share == snr_bounds.share_above(0.9, 1000, 100_000, 8, 1, 64)
    assert (
        GlobalAffineHash(100, seed=np.int64(3)).config() == GlobalAffineHash(100, seed=3).config()
    )
    assert (
        FHRRMemory.from_budget(np.int64(4096), 4).n_banks == FHRRMemory.from_budget(4096, 4).n_banks
    )
    assert CountSketchMemory(4, 3, 16, seed=np.int64(2)).seed == 2


@pytest.mark.parametrize("hash_fn", [None, "GlobalAffineHash", 42])
def test_bloom_without_a_hash_is_refused_at_construction(hash_fn):
    with pytest.raises(TypeError, match="hash_fn"):
        BinaryBloomMemory(64, 2, 1, hash_fn)


def test_key_overlap_statistics_rejects_float_ids_and_rows_outside_the_items():
    idx = GlobalAffineHash(256).indices(torch.arange(30), 4, 1)
    good = collision_model.key_overlap_statistics(idx, torch.tensor([1, 2]), 256)
    with pytest.raises(TypeError, match="rows must be integer"):
        collision_model.key_overlap_statistics(idx, torch.tensor([1.7, 2.0]), 256)
    with pytest.raises(TypeError, match="rows must be integer"):
        collision_model.key_overlap_statistics(idx, [1.0], 256)
    with pytest.raises(TypeError, match="indices must be integer"):
        collision_model.key_overlap_statistics(idx.double(), [1], 256)
    with pytest.raises(IndexError, match="rows"):
        collision_model.key_overlap_statistics(idx, [30], 256)
    again = collision_model.key_overlap_statistics(idx, np.array([1, 2]), np.int64(256))
    assert all(np.array_equal(good[k], again[k]) for k in good)


# ---------------------------------------------------------------------------- notebook parameters

CELL = """# %% [markdown]
# # nb
# %% tags=["parameters"]
seed = 0
D = 2**20
rate = 0.5
taus = [0.9, 0.99]
name = "run"
use_gpu = False
limits = {"n": 10}
extra = None
# %%
print(1)
"""


@pytest.fixture
def notebook(tmp_path):
    path = tmp_path / "nb.py"
    path.write_text(CELL, encoding="utf-8")
    return path


def test_parameters_come_from_the_parameters_cell(notebook):
    defaults = parameters_defaults(notebook)
    assert defaults == {
        "seed": 0,
        "D": 2**20,
        "rate": 0.5,
        "taus": [0.9, 0.99],
        "name": "run",
        "use_gpu": False,
        "limits": {"n": 10},
        "extra": None,
    }
    namespace = {**defaults, "D": 1000, "rate": 1, "extra": [1], "unrelated": object()}
    assert notebook_parameters(notebook, namespace) == {k: namespace[k] for k in defaults}


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("D", "1.0e6", r"parameter D must be int.*YAML reads 1.0e6 as a string"),
        ("D", 1.0e6, r"parameter D must be int.*write 1000000"),
        ("D", True, "parameter D must be int"),
        ("rate", "0.5", "parameter rate must be float"),
        ("taus", [0.9, "0.99"], r"parameter taus\[1\] must be float"),
        ("taus", 0.9, "parameter taus must be list"),
        ("use_gpu", "false", "parameter use_gpu must be bool"),
        ("name", 3, "parameter name must be str"),
        ("limits", {"n": "10"}, r"parameter limits\['n'\] must be int"),
    ],
)
def test_a_parameter_of_the_wrong_type_fails_naming_it(notebook, tmp_path, name, value, words):
    namespace = {**parameters_defaults(notebook), name: value}
    with pytest.raises(TypeError, match=words):
        notebook_parameters(notebook, namespace)
    with pytest.raises(TypeError, match=words):
        Experiment.from_notebook("nb", notebook, namespace, root=tmp_path)
    assert not (tmp_path / "results" / "nb").exists()  # nothing written before the check


def test_from_notebook_stores_checked_params_and_extras(notebook, tmp_path):
    namespace = {**parameters_defaults(notebook), "seed": 3}
    exp = Experiment.from_notebook("nb", notebook, namespace, extra={"n": 7}, root=tmp_path)
    assert exp.params["seed"] == 3 and exp.params["n"] == 7 and exp.seed == 3
    with pytest.raises(KeyError, match="taus"):
        check_parameters({"seed": 0}, {"seed": 0, "taus": [0.9]})


def test_every_notebook_of_the_repository_has_a_readable_parameters_cell():
    from pathlib import Path

    notebooks = sorted(Path(__file__).resolve().parents[1].glob("notebooks/*.py"))
    assert notebooks
    for path in notebooks:
        defaults = parameters_defaults(path)
        assert check_parameters(defaults, defaults) == defaults


@pytest.mark.parametrize("d", [1, 4, 5])
def test_fhrr_and_hopfield_take_an_empty_batch(d):
    for mem in (FHRRMemory(d), HopfieldMemory(d, capacity=4)):
        mem.write(torch.empty(0, dtype=torch.int64), torch.empty(0, d))
        assert mem.read(torch.empty(0, dtype=torch.int64)).shape == (0, d)
