"""One crops sheet across several `qusr bench` runs: models benched separately, side by side.

    python benchmarks/compare_runs.py --set realset65 --rows 4 --out docs/images/candidates.png \\
        "bicubic=runs/bench-a/bicubic" "Real-ESRGAN=runs/bench-a/realesrgan" "g, shipped=runs/bench-a/aux" \\
        "g, candidate=runs/bench-b/aux"

Each column is LABEL=BENCH_OUT/METHOD, the outputs a bench run wrote under BENCH_OUT/outputs/SET/METHOD;
the crop of each row is the busiest LR window, as in the bench's own sheet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qusr_cli.bench.plots import side_by_side
from qusr_cli.eval_sets import load_set


def column(spec: str, set_name: str) -> tuple[str, Path]:
    label, sep, where = spec.partition("=")
    if not sep or not label or "/" not in where:
        raise SystemExit(f"compare_runs: {spec!r} is not LABEL=BENCH_OUT/METHOD")
    run, method = where.rsplit("/", 1)
    folder = Path(run) / "outputs" / set_name / method
    if not folder.is_dir():
        raise SystemExit(f"compare_runs: no outputs at {folder}")
    return label, folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("columns", nargs="+", help="LABEL=BENCH_OUT/METHOD")
    parser.add_argument("--set", default="realset65", help="Evaluation set the runs scored.")
    parser.add_argument("--rows", type=int, default=3, help="Images (rows) in the sheet.")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write.")
    args = parser.parse_args()
    eval_set = load_set(args.set)
    written = side_by_side(eval_set, [column(spec, eval_set.name) for spec in args.columns], args.out, args.rows)
    if written is None:
        sys.exit("compare_runs: no image has an output in every column")
    print(written)


if __name__ == "__main__":
    main()
