"""Model weights: the registry of models and their files, Hub access, and checkpoint reading."""

from qusr_cli.weights.hub import is_offline, local_model_folder, resolve_model_folder
from qusr_cli.weights.registry import (
    PACKAGED_WEIGHTS,
    ROLES,
    WEIGHTS_ENV,
    ComponentSpec,
    FolderSpec,
    ModelSpec,
    Registry,
    component_entry_for,
    file_sha256,
    load_registry,
    locate_component,
    resolve_component,
    verify_component,
    verify_file,
)

__all__ = [
    "PACKAGED_WEIGHTS",
    "ROLES",
    "WEIGHTS_ENV",
    "ComponentSpec",
    "FolderSpec",
    "ModelSpec",
    "Registry",
    "component_entry_for",
    "file_sha256",
    "is_offline",
    "load_registry",
    "local_model_folder",
    "locate_component",
    "resolve_component",
    "resolve_model_folder",
    "verify_component",
    "verify_file",
]
