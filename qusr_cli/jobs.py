"""From a folder of photos to file jobs: which files, which output names, output folders ready.

Nothing here decodes an image or touches the engine; it decides what `runner.upscale_files` will do,
so that problems with the plan (two inputs wanting one output name, an output folder that cannot be
made) are found before any compute.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from qusr_cli.errors import InputError
from qusr_cli.imageio import IMAGE_SUFFIXES, OUTPUT_FORMATS
from qusr_cli.safe_write import clean_stale_temp_files, make_folder


@dataclass(frozen=True)
class FileJob:
    """One input file and the output file it becomes."""

    source: Path
    output: Path


def find_images(folder: Path, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """Entries under ``folder`` with an image suffix, sorted; ``exclude`` (a folder) and what is in it left out.

    Symlinked folders are not followed, so a symlink loop cannot trap the walk, and no single entry
    can make it fail: an entry that cannot be read is listed, and refused with its reason when its
    job runs. Files with other suffixes are not listed.
    """
    excluded = os.path.realpath(exclude) if exclude is not None else None

    def inside_excluded(path: str) -> bool:
        return excluded is not None and Path(os.path.realpath(path)).is_relative_to(excluded)

    found = []
    for root, folders, files in os.walk(folder, followlinks=False):
        folders[:] = sorted(name for name in folders if not inside_excluded(os.path.join(root, name)))
        for name in files:
            path = os.path.join(root, name)
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and not inside_excluded(path):
                found.append(Path(path))
        if not recursive:
            break
    return sorted(found)


def _name_key(path: Path) -> str:
    # Case-folded: on macOS and Windows file systems A.png and a.png are one file.
    return str(path).casefold()


def plan_jobs(sources: list[Path], folder: Path, output_dir: Path, ext: str) -> tuple[list[FileJob], list[str]]:
    """A job per source (its place under ``folder`` kept under ``output_dir``, suffix ``ext``).

    Sources whose outputs would share a name (a.jpg and a.png, both to a.png) each get their source
    extension added instead (a_jpg.png, a_png.png), so none overwrites another; the returned notes
    say which were renamed.
    """
    suffix = "." + ext.lstrip(".")
    if suffix.lower() not in OUTPUT_FORMATS:
        raise InputError(f"--ext {ext}: qusr cannot write that format; use one of {', '.join(OUTPUT_FORMATS)}")
    outputs = {source: (output_dir / source.relative_to(folder)).with_suffix(suffix) for source in sources}
    groups: dict[str, list[Path]] = defaultdict(list)
    for source, output in outputs.items():
        groups[_name_key(output)].append(source)
    taken = set(groups)
    notes = []
    for members in groups.values():
        if len(members) < 2:
            continue
        shared = outputs[members[0]]
        for source in members:
            own = outputs[source]
            stem = f"{own.stem}_{source.suffix.lstrip('.').lower()}"
            candidate, count = own.with_name(stem + suffix), 2
            while _name_key(candidate) in taken:
                candidate, count = own.with_name(f"{stem}_{count}{suffix}"), count + 1
            taken.add(_name_key(candidate))
            outputs[source] = candidate
        renamed = ", ".join(f"{source.name} -> {outputs[source].name}" for source in members)
        notes.append(f"{len(members)} inputs would all be written as {shared}; writing {renamed}")
    return [FileJob(source, outputs[source]) for source in sources], notes


def prepare_output_folder(output_dir: Path, jobs: list[FileJob]) -> int:
    """Create ``output_dir`` and remove stale temporary files of earlier, killed runs from it and from the
    job folders already there; returns how many were removed. A subfolder that cannot be made fails
    only its own jobs, later."""
    make_folder(output_dir, "--output-dir")
    folders = {output_dir} | {job.output.parent for job in jobs}
    return sum(len(clean_stale_temp_files(folder)) for folder in sorted(folders) if folder.is_dir())
