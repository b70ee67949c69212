"""How every command talks: results on stdout (a rich table, or JSON with --json), notes and progress
on stderr (silenced by -q), so `qusr ... --json | jq` and `qusr -q ...` behave the same everywhere."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from qusr_cli.cli.common import stderr


@dataclass
class Output:
    quiet: bool = False
    as_json: bool = False

    def note(self, text: str) -> None:
        """A line for the person at the terminal (stderr); -q drops it. ``text`` is plain, not markup."""
        if not self.quiet:
            stderr.print(escape(text), soft_wrap=True)  # soft: paths in it must stay whole

    def show(self, render: Callable[[], RenderableType]) -> None:
        """A table or panel for the person at the terminal (stderr); -q drops it."""
        if not self.quiet:
            stderr.print(render())

    def result(self, payload: dict | list, render: Callable[[], RenderableType] | None = None) -> None:
        """The command's result: JSON on stdout with --json, else ``render()`` on stdout (when given)."""
        if self.as_json:
            print(json.dumps(payload, indent=2, default=str))
        elif render is not None:
            Console().print(render())

    def status(self, text: str):
        """A spinner with ``text`` while something slow (loading a model) happens; nothing when quiet."""
        return nullcontext() if self.quiet or self.as_json else stderr.status(escape(text), spinner="dots")

    @contextmanager
    def progress(self) -> Iterator[Progress]:
        """Bars with the count, elapsed time and an ETA; hidden with -q, --json or no terminal (still usable)."""
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=stderr, transient=True,
                      disable=self.quiet or self.as_json or not stderr.is_terminal) as bar:
            yield bar
