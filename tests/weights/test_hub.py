"""resolve_model_dir against a hand-built Hugging Face cache, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytgi.weights.hub import resolve_model_dir

MAIN_SHA = "a" * 40
OLD_SHA = "b" * 40


def fake_cache(root: Path) -> Path:
    repo = root / "models--org--tiny"
    for sha, marker in ((MAIN_SHA, "main"), (OLD_SHA, "old")):
        snapshot = repo / "snapshots" / sha
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text(f'{{"marker": "{marker}"}}')
        (snapshot / "model.safetensors").write_bytes(b"")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(MAIN_SHA)
    (repo / "refs" / "v1").write_text(OLD_SHA)
    return root


def test_local_folder_is_returned_as_is(tmp_path: Path) -> None:
    assert resolve_model_dir(str(tmp_path), revision="ignored", cache_dir=None) == tmp_path


def test_hub_id_found_in_offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    cache = fake_cache(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    folder = resolve_model_dir("org/tiny", revision=None, cache_dir=str(cache))
    assert folder.name == MAIN_SHA
    assert '"main"' in (folder / "config.json").read_text()
    by_branch = resolve_model_dir("org/tiny", revision="v1", cache_dir=str(cache))
    assert by_branch.name == OLD_SHA
    by_commit = resolve_model_dir("org/tiny", revision=OLD_SHA, cache_dir=str(cache))
    assert by_commit.name == OLD_SHA


def test_missing_repo_offline_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(Exception):  # noqa: B017 - huggingface_hub's error type varies by version
        resolve_model_dir("org/absent", revision=None, cache_dir=str(tmp_path))


def test_hub_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, pytgi.weights.hub; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
