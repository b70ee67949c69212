"""Evaluation sets by name or folder: LR photos with or without ground truth, for the bench and validation.

A set folder holds either the LR images directly (no ground truth: NIQE only) or ``lq/`` and
``gt/`` subfolders whose files pair up by name (``lr/``/``hr/`` are accepted too). A name that is no
folder is looked up under ``../shared/data/eval/`` next to the repository or the working folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qusr_cli.errors import InputError
from qusr_cli.formats import IMAGE_SUFFIXES

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_EVAL = Path("..") / "shared" / "data" / "eval"
PAIR_FOLDERS = (("lq", "gt"), ("lr", "hr"))
DEFAULT_VAL_SET = "imagenet-val32"  # what training validates on unless told otherwise


@dataclass(frozen=True)
class EvalImage:
    name: str          # file stem: the key of every cached output and metric
    lr: Path
    gt: Path | None


@dataclass(frozen=True)
class EvalSet:
    name: str
    root: Path
    images: tuple[EvalImage, ...]

    @property
    def has_gt(self) -> bool:
        return all(image.gt is not None for image in self.images)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_set(spec: str, bases: tuple[Path, ...] = (REPO_ROOT, Path.cwd())) -> Path:
    """A path as given, else ``../shared/data/eval/<spec>`` next to the repository or the working folder."""
    direct = Path(spec).expanduser()
    if direct.is_dir():
        return direct
    tried = [direct]
    for base in bases:
        candidate = (base / SHARED_EVAL / spec).resolve()
        if candidate.is_dir():
            return candidate
        tried.append(candidate)
    raise InputError(f"evaluation set {spec!r} not found (looked for {', '.join(map(str, tried))})")


def load_set(spec: str, limit: int | None = None, bases: tuple[Path, ...] | None = None) -> EvalSet:
    root = find_set(spec, bases) if bases is not None else find_set(spec)
    images = _paired(root) or [EvalImage(p.stem, p, None) for p in list_images(root)]
    if not images:
        raise InputError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    names = [image.name for image in images]
    if len(set(names)) != len(names):
        raise InputError(f"{root}: two images share a file name stem; outputs are cached by stem")
    return EvalSet(root.resolve().name, root, tuple(images[:limit] if limit else images))


def _paired(root: Path) -> list[EvalImage] | None:
    for lr_name, gt_name in PAIR_FOLDERS:
        lr_dir, gt_dir = root / lr_name, root / gt_name
        if lr_dir.is_dir() and gt_dir.is_dir():
            truths = {p.stem: p for p in list_images(gt_dir)}
            lrs = list_images(lr_dir)
            unpaired = [p.name for p in lrs if p.stem not in truths]
            if unpaired:
                raise InputError(f"{root}: no {gt_name}/ image for {', '.join(unpaired[:5])}")
            return [EvalImage(p.stem, p, truths[p.stem]) for p in lrs]
    return None
