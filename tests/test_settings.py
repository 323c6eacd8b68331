"""Default locations: environment first, then the source tree, then the current folder."""

from __future__ import annotations

from pathlib import Path

from omrgemma import settings


def test_environment_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("OMRGEMMA_MODELS", str(tmp_path / "m"))
    monkeypatch.setenv("OMRGEMMA_DATA", str(tmp_path / "d"))
    assert settings.models_dir() == tmp_path / "m"
    assert settings.data_dir() == tmp_path / "d"


def test_installed_package_finds_models_in_the_current_folder(monkeypatch, tmp_path):
    """A regular `pip install .` puts the package in site-packages, away from `models/`."""
    monkeypatch.delenv("OMRGEMMA_MODELS", raising=False)
    monkeypatch.setattr(settings, "REPO_ROOT", tmp_path / "site-packages")
    (tmp_path / "repo" / "models").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    assert settings.models_dir() == Path(tmp_path / "repo" / "models")


def test_source_tree_models_are_found_first(monkeypatch, tmp_path):
    monkeypatch.delenv("OMRGEMMA_MODELS", raising=False)
    (tmp_path / "src" / "models").mkdir(parents=True)
    (tmp_path / "cwd" / "models").mkdir(parents=True)
    monkeypatch.setattr(settings, "REPO_ROOT", tmp_path / "src")
    monkeypatch.chdir(tmp_path / "cwd")
    assert settings.models_dir() == tmp_path / "src" / "models"
