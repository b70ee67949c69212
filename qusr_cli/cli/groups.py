"""Option groups: a set of CLI options that fills one library dataclass, declared once for every command.

A command names a parameter after a group and gets the built object; ``grouped`` replaces that one
parameter by the group's options in the signature Typer reads. So ``upscale``, ``batch``, ``explain``
and ``bench`` share the engine options, ``upscale`` and ``batch`` the sampling options, and the
training commands the loop options, each with one declaration and one place that builds the object.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Annotated, Any, get_args, get_origin


@dataclass(frozen=True)
class OptionGroup:
    """``options``: parameter name → (Annotated type, default); ``build(**values)`` makes the object.

    Enum values reach ``build`` as their ``.value``, so the library dataclasses stay plain strings.
    """

    build: Callable[..., Any]
    options: dict[str, tuple[Any, Any]]
    panel: str | None = None  # the heading its options are listed under in --help
    fixed: dict[str, Any] = field(default_factory=dict)

    def with_defaults(self, **defaults: Any) -> OptionGroup:
        unknown = set(defaults) - set(self.options)
        if unknown:
            raise TypeError(f"not options of this group: {', '.join(sorted(unknown))}")
        return replace(self, options={name: (kind, defaults.get(name, default))
                                      for name, (kind, default) in self.options.items()})

    def without(self, **fixed: Any) -> OptionGroup:
        """The group minus these options, which take the given values instead."""
        return replace(self, options={k: v for k, v in self.options.items() if k not in fixed},
                       fixed={**self.fixed, **fixed})

    def make(self, values: dict[str, Any]) -> Any:
        plain = {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}
        return self.build(**plain, **self.fixed)


def _in_panel(kind: Any, panel: str | None) -> Any:
    """``Annotated[T, typer.Option(...)]`` with the option listed under ``panel`` in --help."""
    if panel is None or get_origin(kind) is not Annotated:
        return kind
    base, *metadata = get_args(kind)
    metadata = [copy.copy(m) for m in metadata]  # the shared declaration stays as it is
    for item in metadata:
        if hasattr(item, "rich_help_panel"):
            item.rich_help_panel = panel
    return Annotated[(base, *metadata)]


def _evaluated(annotation: Any, command: Callable) -> Any:
    """A string annotation (``from __future__ import annotations``) evaluated as inspect's eval_str would.

    Only the options Typer reads are evaluated: a group parameter's own annotation (``LoopConfig``)
    may name a class its module imports only for type checkers, to keep torch out of ``--help``.
    """
    return eval(annotation, command.__globals__) if isinstance(annotation, str) else annotation  # noqa: S307


def grouped(**groups: OptionGroup) -> Callable[[Callable], Callable]:
    """Decorator: each command parameter named like a keyword here receives that group's built object."""
    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command)
        parameters = []
        for parameter in signature.parameters.values():
            if parameter.name in groups:
                group = groups[parameter.name]
                parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                                 annotation=_in_panel(kind, group.panel), default=default)
                               for name, (kind, default) in group.options.items()]
            else:
                parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                                                    annotation=_evaluated(parameter.annotation, command)))

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            for name, group in groups.items():
                values[name] = group.make({option: values.pop(option) for option in group.options})
            return command(**values)

        run.__signature__ = signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run
    return decorate
