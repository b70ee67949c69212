"""How near a distilled net's pictures are to its teacher's: PSNR-Y between the outputs of two `qusr bench` methods.

    python benchmarks/teacher_gap.py runs/bench-s10-teacherg/outputs/%s/realesrgan \
        runs/curve-distilled8/step-*/bench/outputs/%s/aux

Each folder is a bench method's cached outputs; %s stands for the set (--sets), and a student pattern
may hold glob characters (quote it; it is matched with the first set in place of %s). For every student folder
it prints, per set, the mean PSNR-Y against the teacher's output of the same image over the images both
have. Distillation to a deterministic teacher has a reachable target, so unlike PSNR to the photo this
measure can in principle rise without bound as training goes on; where it flattens, the student's capacity or
loss is what limits it. No network runs here: it reads PNGs.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

from qusr_cli.imageio import read_rgb8
from qusr_cli.metrics.fidelity import psnr_y


def gap(teacher: Path, student: Path) -> tuple[float, int]:
    """Mean PSNR-Y of ``student``'s PNGs against ``teacher``'s of the same names, and how many there were."""
    scores = [psnr_y(read_rgb8(output), read_rgb8(teacher / output.name))
              for output in sorted(student.glob("*.png")) if (teacher / output.name).exists()]
    return (float(np.mean(scores)) if scores else float("nan")), len(scores)


def _with_placeholder(path: str, set_name: str) -> str:
    """``path`` with its first folder named ``set_name`` back to %s."""
    parts = list(Path(path).parts)
    parts[parts.index(set_name)] = "%s"
    return str(Path(*parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="The teacher's outputs folder, with %%s for the set.")
    parser.add_argument("students", nargs="+", help="Students' outputs folders (glob patterns), with %%s for the set.")
    parser.add_argument("--sets", default="realset65,imagenet-val32")
    args = parser.parse_args()
    sets = args.sets.split(",")
    print("| outputs | " + " | ".join(f"{name} PSNR-Y to teacher (images)" for name in sets) + " |")
    print("|---|" + "---:|" * len(sets))
    found = [_with_placeholder(match, sets[0])
             for pattern in args.students for match in sorted(glob.glob(pattern.replace("%s", sets[0])))]
    for student in found:
        cells = []
        for name in sets:
            score, count = gap(Path(args.teacher.replace("%s", name)), Path(student.replace("%s", name)))
            cells.append(f"{score:.2f} ({count})")
        print(f"| {student} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
