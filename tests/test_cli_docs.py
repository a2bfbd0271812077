"""The help and the docs that are generated from, or must keep up with, the code:
`pytgi serve --help` groups, docs/configuration.md, docs/api.md's route list, the
README's two commands; and the weight-loading progress bar's on/off rule."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from pytgi import __version__, cli, docs_config
from pytgi.config import SECTIONS, EngineConfig, ServerConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_configuration_page_is_generated_from_the_config():
    expected = docs_config.render()
    actual = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert actual == expected, (
        "docs/configuration.md is out of date: run `python -m pytgi.docs_config > docs/configuration.md`"
    )


def test_every_flag_is_in_the_configuration_page():
    page = docs_config.render()
    for _, section in SECTIONS:
        for field in dataclasses.fields(section):
            assert f"`--{field.name.replace('_', '-')}`" in page and f"`{field.name.upper()}`" in page


def test_serve_help_is_grouped_by_config_section():
    parser = cli.build_parser("pytgi serve")
    cli.add_config_flags(parser)
    groups = {group.title: group for group in parser._action_groups}
    for section_name, section in SECTIONS:
        title = cli.SECTION_TITLES[section_name][0]
        flags = {action.dest for action in groups[title]._group_actions}
        assert flags == {field.name for field in dataclasses.fields(section)}
    help_text = parser.format_help()
    assert help_text.index("Model:") < help_text.index("--model-id") < help_text.index("HTTP server:")
    assert "pytgi generate" in help_text and "pytgi download" in help_text


def test_version_flag():
    for argv in (["--version"], ["serve", "--version"], ["generate", "--version"]):
        result = subprocess.run([sys.executable, "-m", "pytgi", *argv], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.strip() == f"pytgi {__version__}"


def documented_routes() -> set[tuple[str, str]]:
    from server_harness import make_app

    app, _ = make_app()
    static_asset = (".css", ".js")
    return {
        (method, path)
        for path, methods in app.state.methods_by_path.items()
        if not path.endswith(static_asset)
        for method in methods
    }


def test_api_page_covers_every_route():
    page = (DOCS / "api.md").read_text(encoding="utf-8")
    missing = [f"{method} {path}" for method, path in sorted(documented_routes())
               if f"`{method} {path}`" not in page]
    assert not missing, f"docs/api.md does not describe: {missing}"


def test_readme_keeps_two_setup_commands_and_links_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Two commands", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make run", "make test"]
    for page in ("quickstart.md", "api.md", "configuration.md"):
        assert f"docs/{page}" in readme


# --- weight-loading progress bar ----------------------------------------------------------------


def test_progress_bar_only_for_a_terminal_without_json_logs(monkeypatch):
    from pytgi.engine.builder import wants_progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert wants_progress_bar(EngineConfig())
    assert not wants_progress_bar(EngineConfig(server=ServerConfig(json_output=True)))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert not wants_progress_bar(EngineConfig())


@pytest.mark.parametrize("show", [True, False])
def test_safetensors_progress_bar(tmp_path, capsys, show):
    import torch
    from safetensors.torch import save_file

    from pytgi.weights.safetensors import SafetensorsWeights

    save_file({"a": torch.ones(2), "b": torch.zeros(3)}, tmp_path / "model.safetensors")
    names = [name for name, _ in SafetensorsWeights(tmp_path, show_progress=show)]
    assert sorted(names) == ["a", "b"]
    err = capsys.readouterr().err
    assert ("loading weights: " in err and "/2 " in err) is show  # refreshes are rate-limited
