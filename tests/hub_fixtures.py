"""Fake Hugging Face Hubs for the weights tests: cache folders laid out as huggingface_hub lays them
out, and a small HTTP server on 127.0.0.1. Fixtures are imported by the test modules that use them."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import save_file


REPO = "qusr-test/tiny"
REV = "0123456789abcdef0123456789abcdef01234567"



def make_checkpoint(path: Path, role: str, value: float = 1.0) -> Path:
    save_file(
        {"weight": torch.full((16,), value)},
        str(path),
        metadata={
            "qusr.arch": "compact",
            "qusr.role": role,
            "qusr.config": json.dumps({"num_feat": 16}),
            "qusr.info": json.dumps({"placeholder": True}),
        },
    )
    return path


def checkpoint_bytes(tmp_path: Path, role: str, value: float = 1.0) -> bytes:
    return make_checkpoint(tmp_path / f"scratch-{role}-{value}.safetensors", role, value).read_bytes()


def put_in_hub_cache(cache: Path, repo_id: str, revision: str, filename: str, data: bytes) -> Path:
    """Lay a file out the way huggingface_hub caches it: content-addressed blob, snapshot symlink, ref."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo_dir / "snapshots" / revision / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return link


def hub_entry(filename: str, data: bytes, **overrides: object) -> dict[str, object]:
    entry = {
        "repo_id": REPO,
        "filename": filename,
        "revision": REV,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    entry.update(overrides)
    return entry


def write_weights(path: Path, components: dict[str, dict[str, object]], model: str = "tiny") -> Path:
    """A weights.toml with one model (the default) made of `components`; JSON scalars are valid TOML."""
    lines = [f'default = "{model}"', f"[models.{model}]", 'description = "test model"']
    for role, entry in components.items():
        lines.append(f"[models.{model}.components.{role}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache in tmp_path, offline, as huggingface_hub sees it after its import."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    # huggingface_hub copied these variables into its constants when it was imported, so both change.
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("QUSR_WEIGHTS", raising=False)
    return cache


@pytest.fixture
def online(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same cache with HF_HUB_OFFLINE unset and no proxy between qusr and a loopback endpoint."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return hub_cache


@pytest.fixture
def fake_hub(online: Path, monkeypatch: pytest.MonkeyPatch):
    """A loopback server answering the Hub's /REPO/resolve/REV/FILE requests from a dict it yields."""
    files: dict[str, bytes] = {}
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.answer(with_body=False)

        def do_GET(self) -> None:
            self.answer(with_body=True)

        def answer(self, with_body: bool) -> None:
            requests.append(f"{self.command} {self.path}")
            data = files.get(self.path)
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", self.path.split("/")[4])
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    server.files, server.requests = files, requests
    yield server
    server.shutdown()
    server.server_close()


def serve(fake_hub, filename: str, data: bytes) -> None:
    fake_hub.files[f"/{REPO}/resolve/{REV}/{filename}"] = data


# ---- the shipped registry -------------------------------------------------------------------------------
