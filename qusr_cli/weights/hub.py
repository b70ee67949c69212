"""The Hugging Face Hub side of weight resolution: local cache first, and downloads that fail in seconds.

Offline mode and import order
    huggingface_hub reads HF_HUB_OFFLINE, HF_ENDPOINT and HF_HUB_CACHE once, when it is first imported,
    and transformers imports it as well, so when that happens inside qusr is not something to rely on.
    Hence:
    - huggingface_hub is imported inside the functions below only (it also costs ~150 ms, which
      `qusr --help` should not pay);
    - `is_offline()` is true when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is true in the environment
      *now* or was true when huggingface_hub was imported. In the first case qusr passes
      local_files_only=True itself; in the second huggingface_hub would refuse the network anyway. Either
      way no request is attempted, so both readings agree;
    - HF_ENDPOINT is read now and passed explicitly, so the reachability probe and the download talk
      to the same host;
    - HF_HUB_CACHE / HF_HOME stay huggingface_hub's business: set them before starting qusr.

Failing fast
    With no network huggingface_hub retries for ~23 s before giving up, and after a failed metadata call
    it retries again with a 60 s timeout, so a silently dropping firewall costs minutes. Before any
    download qusr therefore (1) opens a plain TCP connection to the endpoint (or to the proxy that
    would carry the request) with a PROBE_TIMEOUT_S bound that covers name resolution too, and (2) asks
    the Hub once, without retries and with a METADATA_TIMEOUT_S timeout, for the file's metadata (or
    the repository's, for a folder), which also catches a firewall that accepts connections and then
    stays silent. Only then does huggingface_hub download, with the same metadata timeout
    (HF_HUB_ETAG_TIMEOUT, when set, wins; the per-read download timeout stays HF_HUB_DOWNLOAD_TIMEOUT,
    10 s by default).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from qusr_cli.errors import WeightsError

if TYPE_CHECKING:
    from qusr_cli.weights.registry import ComponentSpec, FolderSpec

PROBE_TIMEOUT_S = 3.0
METADATA_TIMEOUT_S = 5.0


def is_offline() -> bool:
    """True when the Hub must not be contacted (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, now or at import)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    return any(
        os.environ.get(name, "").upper() in constants.ENV_VARS_TRUE_VALUES
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    """The Hub URL to download from: HF_ENDPOINT as set now, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def probe_endpoint(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why `endpoint` cannot be reached over TCP within `timeout` seconds, or None if it can.

    Connects to the proxy instead when the environment routes the endpoint through one, since that is
    the connection the download would open.
    """
    import urllib.request  # here: ~50 ms that only a download needs

    url = urlsplit(endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host or ""):
        proxy_url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_url.hostname, proxy_url.port or (443 if proxy_url.scheme == "https" else 80)
    if not host:
        return f"{endpoint!r} is not a URL with a host name"

    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}:{port}: {exc.strerror or exc}")

    # create_connection's timeout does not cover name resolution, which can hang far longer; a daemon
    # thread bounds the whole attempt and cannot keep the process alive afterwards.
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return outcome[0] if outcome else f"{host}:{port}: no answer within {timeout:g} s"


def cached_file(spec: ComponentSpec) -> Path | None:
    """The component's file in the local Hugging Face cache, or None; never touches the network."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(spec.repo_id, spec.filename, revision=spec.revision, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def download_file(spec: ComponentSpec, *, allow_download: bool, force: bool = False) -> Path:
    """Fetch the component's file into the Hugging Face cache; `force` replaces a cached copy."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    endpoint = _endpoint_for_download(
        spec.label,
        spec.source,
        allow_download=allow_download,
        pull_command=spec.pull_command,
        alternative="or set QUSR_WEIGHTS to a folder with the files",
    )
    try:
        url = hf_hub_url(spec.repo_id, spec.filename, revision=spec.revision, endpoint=endpoint)
        get_hf_file_metadata(url, timeout=METADATA_TIMEOUT_S, endpoint=endpoint)
        path = hf_hub_download(
            spec.repo_id,
            spec.filename,
            revision=spec.revision,
            endpoint=endpoint,
            etag_timeout=METADATA_TIMEOUT_S,
            force_download=force,
        )
    # huggingface_hub's network errors come from whichever HTTP client its version uses (requests,
    # httpx, httpx2) and share no base class with its own errors; all of them end the same way here.
    except Exception as exc:
        raise WeightsError(f"{spec.label}: downloading {spec.source} from {endpoint} failed: {_explain(exc)}") from exc
    return Path(path)


def local_model_folder(entry: FolderSpec) -> Path | None:
    """The folder from the entry's Python package or from the Hugging Face cache, or None; no network."""
    if entry.package:
        try:
            found = importlib.util.find_spec(entry.package)
        except ModuleNotFoundError:  # a dotted name whose parent package is absent
            found = None
        if found is not None and found.submodule_search_locations:
            folder = Path(next(iter(found.submodule_search_locations))) / entry.package_subdir
            if folder.is_dir():
                return folder
    # Imported only now: a folder found in its package spares every run huggingface_hub's ~0.3 s import.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                entry.repo_id,
                revision=entry.revision,
                allow_patterns=entry.allow_patterns,
                local_files_only=True,
            )
        )
    except LocalEntryNotFoundError:  # also raised for a snapshot that an interrupted download left partial
        return None


def resolve_model_folder(entry: FolderSpec, *, allow_download: bool) -> Path:
    """A transformers model folder (text encoder, MLLM): package, then cache, then (if allowed) the Hub."""
    local = local_model_folder(entry)
    if local is not None:
        return local
    from huggingface_hub import HfApi, snapshot_download

    alternative = (
        f"or install the Python package {entry.package}"
        if entry.package
        else "or copy the Hugging Face cache from a machine that has the files"
    )
    endpoint = _endpoint_for_download(
        entry.label,
        entry.source,
        allow_download=allow_download,
        pull_command=entry.pull_command,
        alternative=alternative,
    )
    try:
        HfApi(endpoint=endpoint).repo_info(entry.repo_id, revision=entry.revision, timeout=METADATA_TIMEOUT_S)
        folder = snapshot_download(
            entry.repo_id,
            revision=entry.revision,
            allow_patterns=entry.allow_patterns,
            endpoint=endpoint,
            etag_timeout=METADATA_TIMEOUT_S,
        )
    # Same reasoning as in download_file: any failure of the Hub client becomes one user-facing line.
    except Exception as exc:
        raise WeightsError(
            f"{entry.label}: downloading {entry.source} from {endpoint} failed: {_explain(exc)}"
        ) from exc
    return Path(folder)


def _endpoint_for_download(what: str, source: str, *, allow_download: bool, pull_command: str, alternative: str) -> str:
    """The endpoint to download from, once it is certain a download is allowed and can reach it."""
    if is_offline():
        raise WeightsError(
            f"{what}: {source} is not in the local cache and HF_HUB_OFFLINE is set; "
            f"run `{pull_command}` on a machine with internet, {alternative}"
        )
    if not allow_download:
        raise WeightsError(f"{what}: {source} is not in the local cache; run `{pull_command}` to download it")
    endpoint = hub_endpoint()
    reason = probe_endpoint(endpoint)
    if reason is not None:
        raise WeightsError(
            f"{what}: cannot download {source}: {endpoint} is unreachable ({reason}); "
            f"check the network, proxy or HF_ENDPOINT, {alternative}"
        )
    return endpoint


def _explain(exc: Exception) -> str:
    """A short reason for a failed Hub call, without huggingface_hub's multi-line advice."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # Subclasses first: GatedRepoError is a RepositoryNotFoundError, and all three are HfHubHTTPErrors.
    if isinstance(exc, GatedRepoError):
        return "the repository is gated: accept its terms on the Hub and log in with `hf auth login`"
    if isinstance(exc, RepositoryNotFoundError):
        return "repository not found (if it is private, log in with `hf auth login`)"
    if isinstance(exc, RevisionNotFoundError):
        return "revision not found in the repository"
    if isinstance(exc, EntryNotFoundError):
        return "the file is not in the repository at that revision"
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    first_line = next(iter(str(exc).splitlines()), "")
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
