"""Which checkpoint files make up each qusr model, where each comes from, and whether it is intact.

The models are listed in a weights.toml (format: the comment header of qusr_cli/weights.toml); a
folder of qusr checkpoints can stand in for one. Resolution never downloads unless the caller allows
it, and every file is checked against its size and sha256 before its path is handed out.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qusr_cli.errors import WeightsError
from qusr_cli.weights import hub
from qusr_cli.weights.format import ROLE_KEY, ROLES, read_metadata

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PACKAGED_WEIGHTS = PACKAGE_DIR / "weights.toml"
WEIGHTS_ENV = "QUSR_WEIGHTS"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[\w][\w.-]*/[\w][\w.-]*")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ComponentSpec:
    """One checkpoint file of a model: either a local `path` or a Hub file pinned to a commit."""

    model: str
    name: str
    sha256: str
    size: int
    path: Path | None = None
    repo_id: str | None = None
    filename: str | None = None
    revision: str | None = None

    @property
    def label(self) -> str:
        return f"{self.model}/{self.name}"

    @property
    def source(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self.filename} from {self.repo_id}@{self.revision}"

    @property
    def pull_command(self) -> str:
        return f"qusr weights pull {self.model}"

    @property
    def in_package(self) -> bool:
        return self.path is not None and self.path.is_relative_to(PACKAGE_DIR)


@dataclass(frozen=True)
class FolderSpec:
    """A transformers model folder on the Hub (text encoder or MLLM), optionally shipped by a package."""

    kind: str  # "text encoder" or "MLLM": the table it came from, for messages
    name: str
    repo_id: str
    revision: str
    package: str | None = None
    package_subdir: str = ""
    allow_patterns: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def source(self) -> str:
        return f"{self.repo_id}@{self.revision}"

    @property
    def pull_command(self) -> str:
        return "qusr weights pull --mllm" if self.kind == "MLLM" else "qusr weights pull"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    components: Mapping[str, ComponentSpec]
    text_encoder: FolderSpec | None = None
    mllm: FolderSpec | None = None

    def component(self, role: str) -> ComponentSpec:
        try:
            return self.components[role]
        except KeyError:
            raise WeightsError(f"model {self.name} has no {role} component") from None


@dataclass(frozen=True)
class Registry:
    source: Path
    default: str
    models: Mapping[str, ModelSpec]
    text_encoders: Mapping[str, FolderSpec]
    mllms: Mapping[str, FolderSpec]

    def model(self, name: str | None = None) -> ModelSpec:
        """The named model, or the default one for None."""
        name = name or self.default
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(self.models)
            raise WeightsError(f"unknown model {name!r} in {self.source} (known: {known})") from None


def load_registry(source: str | Path | None = None) -> Registry:
    """Read the model list from `source`, else $QUSR_WEIGHTS, else the weights.toml shipped with qusr.

    `source` is a weights.toml or a folder of qusr *.safetensors checkpoints. A folder becomes one model
    named after it, each file's role read from its metadata header ("qusr.role"); its text encoder and
    MLLM are those of the packaged default model. A folder is trusted as is: the sha256 and size of its
    files are computed from the files themselves, so later checks only catch changes made after loading.
    """
    from_env = source is None and bool(os.environ.get(WEIGHTS_ENV))
    if source is None:
        source = os.environ.get(WEIGHTS_ENV) or PACKAGED_WEIGHTS
    path = Path(source).expanduser()
    if not path.exists():
        named = f"{WEIGHTS_ENV}={source}" if from_env else str(path)
        raise WeightsError(f"weights source {named} does not exist; give a weights.toml or a checkpoint folder")
    if path.is_dir():
        return _registry_from_folder(path.resolve())
    return _registry_from_toml(path.resolve())


def resolve_component(spec: ComponentSpec, *, allow_download: bool) -> Path:
    """The verified local file for `spec`: its path, else the Hugging Face cache, else (if allowed) the Hub.

    A cached Hub file that fails verification is downloaded again when downloads are allowed.
    """
    if spec.path is not None:
        if not spec.path.is_file():
            raise WeightsError(f"{spec.label}: {spec.path} is missing; {_remedy(spec)}")
        return _verified(spec.path, spec)
    cached = hub.cached_file(spec)
    if cached is not None:
        try:
            return _verified(cached, spec)
        except WeightsError:
            if not allow_download or hub.is_offline():
                raise
    return _verified(hub.download_file(spec, allow_download=allow_download, force=cached is not None), spec)


def locate_component(spec: ComponentSpec) -> Path | None:
    """Where `spec`'s file is on this machine, unverified, or None; never touches the network."""
    if spec.path is not None:
        return spec.path if spec.path.is_file() else None
    return hub.cached_file(spec)


def verify_component(spec: ComponentSpec, path: Path) -> None:
    """verify_file with `spec`'s name in the message and the fix that fits where the file came from."""
    verify_file(path, spec.sha256, spec.size, label=spec.label, remedy=_remedy(spec))


def verify_file(
    path: str | Path,
    sha256: str,
    size: int,
    *,
    label: str | None = None,
    remedy: str = "the file is damaged or not the expected one: delete it and fetch it again",
) -> None:
    """Raise WeightsError unless `path` has exactly `size` bytes and the given sha256.

    The size is compared first, so a truncated download is reported without reading it.
    """
    path = Path(path)
    who = f"{label}: " if label else ""
    try:
        actual = path.stat().st_size
    except OSError as exc:
        raise WeightsError(f"{who}cannot read {path} ({exc.strerror}); {remedy}") from None
    if actual != size:
        raise WeightsError(f"{who}{path} has {actual} bytes, expected {size}; {remedy}")
    digest = file_sha256(path)
    if digest != sha256:
        raise WeightsError(f"{who}{path} has sha256 {digest}, expected {sha256}; {remedy}")


# resolved path -> (size, mtime_ns, inode, sha256): a file that is rewritten or replaced gets hashed again.
_digests: dict[str, tuple[int, int, int, str]] = {}
# Timestamps are coarse (a few ms on Linux, up to 2 s elsewhere), so a file rewritten right after it was
# hashed can keep its size and mtime; like git's "racily clean" rule, recently modified files are not
# remembered.
_SETTLED_NS = 2_000_000_000


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks; remembered for this process while the file is unchanged."""
    path = Path(path).resolve()
    stat = path.stat()
    key = str(path)
    remembered = _digests.get(key)
    if remembered is not None and remembered[:3] == (stat.st_size, stat.st_mtime_ns, stat.st_ino):
        return remembered[3]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    if time.time_ns() - stat.st_mtime_ns > _SETTLED_NS:
        _digests[key] = (stat.st_size, stat.st_mtime_ns, stat.st_ino, digest.hexdigest())
    return digest.hexdigest()


def component_entry_for(path: str | Path, base: str | Path = PACKAGE_DIR) -> dict[str, str | int]:
    """The weights.toml fields {path, sha256, size} for a local file, with path relative to `base`.

    `base` is the folder of the weights.toml that will list the file (the qusr_cli package for the
    shipped one); a file outside it keeps its absolute path.
    """
    path = Path(path).resolve()
    base = Path(base).resolve()
    shown = path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)
    return {"path": shown, "sha256": file_sha256(path), "size": path.stat().st_size}


def _verified(path: Path, spec: ComponentSpec) -> Path:
    verify_component(spec, path)
    return path


def _remedy(spec: ComponentSpec) -> str:
    if spec.in_package:
        return "reinstall qusr (pip install --force-reinstall qusr)"
    if spec.path is not None:
        return "replace the file, or correct its sha256 and size where it is listed"
    return f"run `{spec.pull_command}` to download it again"


# ---- weights.toml parsing ---------------------------------------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", dict: "a table", list: "a list"}


def _fields(table: object, where: str, file: Path, required: dict[str, type], optional: dict[str, type]) -> dict:
    """`table` checked for unknown, missing and mistyped keys; every message names the file and entry."""
    if not isinstance(table, dict):
        raise WeightsError(f"{file}: {where} must be a table")
    for key in table:
        if key not in required and key not in optional:
            allowed = ", ".join([*required, *optional])
            raise WeightsError(f"{file}: {where}: unknown key {key!r} (allowed: {allowed})")
    for key in required:
        if key not in table:
            raise WeightsError(f"{file}: {where}: missing key {key!r}")
    for key, value in table.items():
        expected = required.get(key) or optional[key]
        # TOML booleans are Python bools, which isinstance() would also accept as int.
        if not isinstance(value, expected) or isinstance(value, bool):
            raise WeightsError(f"{file}: {where}.{key} must be {_TYPE_NAMES[expected]}")
    return table


def _registry_from_toml(file: Path) -> Registry:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WeightsError(f"{file}: cannot be read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{file}: not valid TOML: {exc}") from None
    top = _fields(
        data,
        "top level",
        file,
        required={"default": str, "models": dict},
        optional={"text_encoders": dict, "mllms": dict},
    )
    text_encoders = {
        name: _folder_spec(entry, "text encoder", name, f"text_encoders.{name}", file)
        for name, entry in top.get("text_encoders", {}).items()
    }
    mllms = {
        name: _folder_spec(entry, "MLLM", name, f"mllms.{name}", file) for name, entry in top.get("mllms", {}).items()
    }
    models = {name: _model_spec(entry, name, file, text_encoders, mllms) for name, entry in top["models"].items()}
    if not models:
        raise WeightsError(f"{file}: no [models.NAME] entries")
    if top["default"] not in models:
        raise WeightsError(f"{file}: default model {top['default']!r} is not one of [models]: {', '.join(models)}")
    return Registry(source=file, default=top["default"], models=models, text_encoders=text_encoders, mllms=mllms)


def _model_spec(
    entry: object, name: str, file: Path, text_encoders: dict[str, FolderSpec], mllms: dict[str, FolderSpec]
) -> ModelSpec:
    where = f"models.{name}"
    table = _fields(
        entry,
        where,
        file,
        required={"description": str, "components": dict},
        optional={"text_encoder": str, "mllm": str},
    )
    if not table["components"]:
        raise WeightsError(f"{file}: {where}.components is empty")
    components = {}
    for role, component in table["components"].items():
        if role not in ROLES:
            raise WeightsError(f"{file}: {where}.components: unknown component {role!r} (known: {', '.join(ROLES)})")
        components[role] = _component_spec(component, name, role, f"{where}.components.{role}", file)
    return ModelSpec(
        name=name,
        description=table["description"],
        components=components,
        text_encoder=_reference(table, "text_encoder", "text_encoders", text_encoders, where, file),
        mllm=_reference(table, "mllm", "mllms", mllms, where, file),
    )


def _reference(
    table: dict, key: str, table_name: str, entries: dict[str, FolderSpec], where: str, file: Path
) -> FolderSpec | None:
    """The [text_encoders]/[mllms] entry a model names under `key`, or None when it names none."""
    ref = table.get(key)
    if ref is None:
        return None
    if ref not in entries:
        raise WeightsError(f"{file}: {where}.{key} = {ref!r}, but there is no [{table_name}.{ref}]")
    return entries[ref]


def _component_spec(entry: object, model: str, role: str, where: str, file: Path) -> ComponentSpec:
    hub_keys = ("repo_id", "filename", "revision")
    table = _fields(
        entry,
        where,
        file,
        required={"sha256": str, "size": int},
        optional={"path": str, **{key: str for key in hub_keys}},
    )
    if not _SHA256.fullmatch(table["sha256"]):
        raise WeightsError(f"{file}: {where}.sha256 must be 64 lowercase hex digits")
    if table["size"] < 0:
        raise WeightsError(f"{file}: {where}.size must not be negative")
    given_hub = [key for key in hub_keys if key in table]
    if "path" in table:
        if given_hub:
            raise WeightsError(f"{file}: {where}: give either path or repo_id/filename/revision, not both")
        path = Path(table["path"]).expanduser()
        # Relative to the file's own folder, so the shipped list points into the installed package.
        path = path if path.is_absolute() else file.parent / path
        return ComponentSpec(model=model, name=role, sha256=table["sha256"], size=table["size"], path=path)
    if len(given_hub) < len(hub_keys):
        missing = ", ".join(key for key in hub_keys if key not in table)
        raise WeightsError(f"{file}: {where}: needs either path or repo_id, filename and revision (missing: {missing})")
    _check_repo_id(table["repo_id"], where, file)
    if not _COMMIT.fullmatch(table["revision"]):
        raise WeightsError(f"{file}: {where}.revision must be a 40-hex commit id, so the file cannot change under it")
    filename = PurePosixPath(table["filename"])
    if filename.is_absolute() or ".." in filename.parts:
        raise WeightsError(f"{file}: {where}.filename must be a path inside the repository")
    return ComponentSpec(
        model=model,
        name=role,
        sha256=table["sha256"],
        size=table["size"],
        repo_id=table["repo_id"],
        filename=table["filename"],
        revision=table["revision"],
    )


def _folder_spec(entry: object, kind: str, name: str, where: str, file: Path) -> FolderSpec:
    table = _fields(
        entry,
        where,
        file,
        required={"repo_id": str, "revision": str},
        optional={"package": str, "package_subdir": str, "allow_patterns": list},
    )
    _check_repo_id(table["repo_id"], where, file)
    if "package_subdir" in table and "package" not in table:
        raise WeightsError(f"{file}: {where}: package_subdir needs package")
    patterns = table.get("allow_patterns")
    if patterns is not None and not all(isinstance(pattern, str) for pattern in patterns):
        raise WeightsError(f"{file}: {where}.allow_patterns must be a list of strings")
    return FolderSpec(
        kind=kind,
        name=name,
        repo_id=table["repo_id"],
        revision=table["revision"],
        package=table.get("package"),
        package_subdir=table.get("package_subdir", ""),
        allow_patterns=tuple(patterns) if patterns is not None else None,
    )


def _check_repo_id(repo_id: str, where: str, file: Path) -> None:
    if not _REPO_ID.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id:
        raise WeightsError(f"{file}: {where}.repo_id {repo_id!r} is not a Hub repository id like 'org/name'")


# ---- checkpoint folder --------------------------------------------------------------------------------


def _registry_from_folder(folder: Path) -> Registry:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise WeightsError(f"{folder}: no .safetensors files in this folder")
    components: dict[str, ComponentSpec] = {}
    for file in files:
        role = _role_of(file)
        if role in components:
            raise WeightsError(
                f"{folder}: both {components[role].path.name} and {file.name} are {role} checkpoints; keep one"
            )
        components[role] = ComponentSpec(
            model=folder.name, name=role, sha256=file_sha256(file), size=file.stat().st_size, path=file
        )
    packaged = _registry_from_toml(PACKAGED_WEIGHTS)
    fallback = packaged.model()
    model = ModelSpec(
        name=folder.name,
        description=f"checkpoints in {folder}",
        components=components,
        text_encoder=fallback.text_encoder,
        mllm=fallback.mllm,
    )
    return Registry(
        source=folder,
        default=model.name,
        models={model.name: model},
        text_encoders=packaged.text_encoders,
        mllms=packaged.mllms,
    )


def _role_of(file: Path) -> str:
    role = read_metadata(file)[ROLE_KEY]
    if role not in ROLES:
        raise WeightsError(f"{file}: {ROLE_KEY} is {role!r}; expected one of {', '.join(ROLES)}")
    return role
