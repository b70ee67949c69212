"""Which files to upscale and where each output goes, decided before any model loads.

Pure path logic (no torch): the command line's files, globs, folders and ``-`` become ``Job``s; an
output that cannot be written is refused here, and one that exists is skipped unless overwriting.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from qusr_cli.errors import InputError
from qusr_cli.formats import IMAGE_SUFFIXES, OUTPUT_FORMATS, output_format

STDIO = Path("-")  # "-" on the command line: standard input or output (a file named "-" is "./-")
DEFAULT_SUFFIX = "_qusr"


@dataclass(frozen=True)
class Job:
    source: Path       # STDIO: standard input
    target: Path       # STDIO: standard output (PNG)
    skip: str | None = None  # why this job is not run (the output exists), None to run it


def expand_inputs(items: list[str]) -> list[Path]:
    """Files as given, globs expanded (sorted), ``-`` kept; a folder is refused with a pointer to batch."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if item == "-":
            found.append(STDIO)
        elif path.is_dir():
            raise InputError(f"{item}: is a folder; to upscale every image in it use `qusr batch {item}`")
        elif path.exists():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            images = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            if not images:
                raise InputError(f"{item}: matches no image file ({_suffix_list()})")
            found.extend(images)
        else:
            raise InputError(f"{item}: no such file")
    if found.count(STDIO) > 1:
        raise InputError("standard input ('-') can be read only once")
    return found


def find_images(folder: Path, recursive: bool, exclude: Path | None = None) -> list[Path]:
    """Image files in ``folder`` (and its subfolders when ``recursive``), outside ``exclude``."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    found = []
    for path in pattern:
        if exclude is not None and exclude != folder.resolve() and path.resolve().is_relative_to(exclude):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
    return sorted(found)


def explain_empty_folder(folder: Path, recursive: bool) -> str:
    """Why ``find_images`` found nothing, in words: what the folder does hold."""
    entries = list(folder.rglob("*") if recursive else folder.iterdir())
    files = [p for p in entries if p.is_file()]
    if not files:
        subfolders = sum(p.is_dir() for p in entries)
        hint = f" ({subfolders} subfolders: add --recursive)" if subfolders and not recursive else ""
        return f"{folder}: the folder holds no files{hint}"
    shown = ", ".join(sorted({p.suffix.lower() or "(none)" for p in files}))
    return f"{folder}: no image qusr reads among its {len(files)} files (extensions {shown}); qusr reads {_suffix_list()}"


def output_name(source: Path, suffix: str, ext: str | None) -> str:
    """``photo.jpg`` -> ``photo{suffix}.jpg`` (or ``.ext``).

    An input extension qusr cannot write (e.g. .gif, or none) becomes .png, which is lossless and keeps
    alpha and 16 bits.
    """
    if ext is None:
        ext = source.suffix if source.suffix.lower() in OUTPUT_FORMATS else ".png"
    return source.stem + suffix + ("." + ext.lstrip("."))


def plan_jobs(sources: list[Path], output: Path | None, *, suffix: str | None, ext: str | None,
              overwrite: bool, base: Path | None = None) -> list[Job]:
    """One job per source.

    ``output`` is the output file for a single source (``-``: standard output), or a folder for several
    (created if missing); None puts each output next to its source. ``base`` keeps a batch's subfolder
    layout under ``output``. ``suffix`` defaults to "_qusr" next to the source and to "" in another folder.
    """
    single_file = output is not None and len(sources) == 1 and not output.is_dir() and base is None
    if ext is not None:
        output_format(Path("x." + ext.lstrip(".")))
    jobs = []
    for source in sources:
        named = Path("stdin") if source == STDIO else source  # what an output for stdin is called
        if single_file:
            target = output
        elif output is None:
            target = STDIO if source == STDIO else source.parent / output_name(
                source, DEFAULT_SUFFIX if suffix is None else suffix, ext)
        else:
            relative = source.relative_to(base).parent if base is not None else Path()
            target = output / relative / output_name(named, suffix or "", ext)
        jobs.append(_job(source, target, overwrite))
    targets = [job.target for job in jobs if job.target != STDIO]
    if len(set(targets)) < len(targets):
        raise InputError("two inputs would be written to the same output; give a --suffix or separate folders")
    return jobs


def make_folders(folders) -> None:
    """Create output folders, or say in one line why one cannot be."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from exc


def _job(source: Path, target: Path, overwrite: bool) -> Job:
    if target == STDIO:
        return Job(source, target)
    output_format(target)
    if target.exists() and not target.is_dir():
        if source != STDIO and source.exists() and source.resolve() == target.resolve():
            raise InputError(f"{target}: output is the input file itself; choose another name")
        if not overwrite:
            return Job(source, target, skip="output exists (--overwrite replaces it)")
    return Job(source, target)


def _suffix_list() -> str:
    return ", ".join(sorted(IMAGE_SUFFIXES))
