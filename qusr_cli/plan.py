"""Which files to upscale and where each output goes, decided before any model loads.

Pure path logic (no torch): the command line's files, globs, folders and ``-`` become ``Job``s for
``runner.upscale_files``. Problems with the plan are found here, before any compute: an output that
cannot be written is refused, one that exists is skipped unless overwriting, and two inputs that
would share an output name each get a name of their own.
"""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from qusr_cli.errors import InputError
from qusr_cli.formats import IMAGE_SUFFIXES, OUTPUT_FORMATS, output_format
from qusr_cli.safe_write import clean_stale_temp_files, make_folder

STDIO = Path("-")  # "-" on the command line: standard input or output (a file named "-" is "./-")
DEFAULT_SUFFIX = "_qusr"
EXISTS = "output exists (--overwrite replaces it)"


@dataclass(frozen=True)
class Job:
    """One input file and the output file it becomes."""

    source: Path       # STDIO: standard input
    output: Path       # STDIO: standard output (PNG)
    skip: str | None = None  # why this job is not run (its output exists), None to run it
    stem: str = "output"  # what side files (--heatmaps) are named after; unique within one plan


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


def _walk(folder: Path, recursive: bool) -> Iterator[tuple[str, list[str], list[str]]]:
    # os.walk does not follow symlinked folders, so a symlink loop cannot trap it, and it lists an
    # entry it cannot stat instead of failing: no single entry can end the walk.
    for root, folders, files in os.walk(folder, followlinks=False):
        folders.sort()
        yield root, folders, files
        if not recursive:
            return


def find_images(folder: Path, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """Entries under ``folder`` with an image suffix, sorted; ``exclude`` (an output folder inside it) and
    what is in it left out, unless it is ``folder`` itself.

    An entry that cannot be read is listed, and refused with its reason when its job runs.
    """
    excluded = os.path.realpath(exclude) if exclude is not None else None
    if excluded == os.path.realpath(folder):
        excluded = None

    def inside_excluded(path: str) -> bool:
        return excluded is not None and Path(os.path.realpath(path)).is_relative_to(excluded)

    found = []
    for root, folders, files in _walk(folder, recursive):
        folders[:] = [name for name in folders if not inside_excluded(os.path.join(root, name))]
        for name in files:
            path = os.path.join(root, name)
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and not inside_excluded(path):
                found.append(Path(path))
    return sorted(found)


def explain_empty_folder(folder: Path, recursive: bool) -> str:
    """Why ``find_images`` found nothing, in words: what the folder does hold."""
    files, subfolders = [], 0
    for root, folders, names in _walk(folder, recursive):
        files += [Path(root, name) for name in names]
        subfolders += len(folders)
    if not files:
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


def plan_jobs(sources: list[Path], output: Path | None, *, suffix: str | None = None, ext: str | None = None,
              overwrite: bool = False, base: Path | None = None) -> tuple[list[Job], list[str]]:
    """One job per source, and notes that say which outputs were renamed.

    ``output`` is the output file for a single source (``-``: standard output), or a folder for several;
    None puts each output next to its source. ``base`` (a batch's folder) keeps the sources' subfolder
    layout under ``output``. ``suffix`` defaults to "_qusr" next to the source and to "" in another folder.
    Sources whose outputs would share a name (a.jpg and a.png, both to a.png) each get their source
    extension added instead (a_jpg.png, a_png.png), so that none overwrites another.
    """
    if ext is not None and "." + ext.lstrip(".").lower() not in OUTPUT_FORMATS:
        raise InputError(f"--ext {ext}: qusr cannot write '.{ext.lstrip('.')}' files; use one of "
                         f"{', '.join(OUTPUT_FORMATS)}")
    single_file = output is not None and len(sources) == 1 and not output.is_dir() and base is None
    outputs = {}
    for source in sources:
        named = Path("stdin") if source == STDIO else source  # what an output for stdin is called
        if single_file:
            outputs[source] = output
        elif output is None:
            outputs[source] = STDIO if source == STDIO else source.parent / output_name(
                source, DEFAULT_SUFFIX if suffix is None else suffix, ext)
        else:
            relative = source.relative_to(base).parent if base is not None else Path()
            outputs[source] = output / relative / output_name(named, suffix or "", ext)
    notes = _rename_collisions(outputs)
    stems = _unique([_stem(source, base) for source in sources])
    return [_job(source, outputs[source], stem, overwrite) for source, stem in zip(sources, stems)], notes


def prepare_output_folders(jobs: list[Job], output_dir: Path | None = None, what: str = "output folder") -> int:
    """Create ``output_dir`` (``what`` names it in the one line said if it cannot be) and the job folders
    inside it, and remove stale temporary files of earlier, killed runs from every job folder; returns how
    many were removed. A subfolder that cannot be made fails only its own jobs, when they run; a folder
    outside ``output_dir`` is never made (a mistyped ``-o dir/name`` is refused, not created)."""
    folders = {job.output.parent for job in jobs if job.output != STDIO}
    if output_dir is not None:
        make_folder(output_dir, what)
        folders.add(output_dir)
        for folder in sorted(folders):
            if folder.is_relative_to(output_dir):
                with suppress(OSError):
                    folder.mkdir(parents=True, exist_ok=True)
    return sum(len(clean_stale_temp_files(folder)) for folder in sorted(folders) if folder.is_dir())


def _stem(source: Path, base: Path | None) -> str:
    if source == STDIO:
        return "stdin"
    if base is None:
        return source.stem
    return source.relative_to(base).with_suffix("").as_posix().replace("/", "_")


def _name_key(path: Path) -> str:
    # Case-folded: on macOS and Windows file systems A.png and a.png are one file.
    return str(path).casefold()


def _unique(stems: list[str]) -> list[str]:
    """``stems`` with ``_2``, ``_3``, … added where one repeats an earlier one (side files share a folder)."""
    seen: set[str] = set()
    unique = []
    for stem in stems:
        candidate, count = stem, 2
        while candidate.casefold() in seen:
            candidate, count = f"{stem}_{count}", count + 1
        seen.add(candidate.casefold())
        unique.append(candidate)
    return unique


def _rename_collisions(outputs: dict[Path, Path]) -> list[str]:
    """Give every source whose output name another shares its own (``a_jpg.png``); returns what to say."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for source, target in outputs.items():
        if target != STDIO:
            groups[_name_key(target)].append(source)
    taken = set(groups)
    notes = []
    for members in groups.values():
        if len(members) < 2:
            continue
        shared = outputs[members[0]]
        for source in members:
            own = outputs[source]
            stem = f"{own.stem}_{source.suffix.lstrip('.').lower()}"
            candidate, count = own.with_name(stem + own.suffix), 2
            while _name_key(candidate) in taken:
                candidate, count = own.with_name(f"{stem}_{count}{own.suffix}"), count + 1
            taken.add(_name_key(candidate))
            outputs[source] = candidate
        renamed = ", ".join(f"{source.name} -> {outputs[source].name}" for source in members)
        notes.append(f"{len(members)} inputs would all be written as {shared}; writing {renamed}")
    return notes


def _job(source: Path, target: Path, stem: str, overwrite: bool) -> Job:
    if target == STDIO:
        return Job(source, target, stem=stem)
    output_format(target)
    if target.exists() and not target.is_dir():
        if source != STDIO and source.exists() and source.resolve() == target.resolve():
            raise InputError(f"{target}: output is the input file itself; choose another name")
        if not overwrite:
            return Job(source, target, skip=EXISTS, stem=stem)
    return Job(source, target, stem=stem)


def _suffix_list() -> str:
    return ", ".join(sorted(IMAGE_SUFFIXES))
