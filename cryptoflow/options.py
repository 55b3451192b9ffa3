"""Command-line options generated from a flow's signature and ``Args:`` docstring.

A subcommand never restates a flow parameter: its option name (``batch_size`` ->
``--batch-size``), default and help come from the flow, and the values are validated by the
flow's own typed signature (the same pydantic model that validates the UI's Custom run form),
so the CLI, the flow and the form cannot drift apart.
"""

from __future__ import annotations

import argparse
import enum
import inspect
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from storage.errors import BadInputError

#: The singular flags of a flow's market lists (``--symbol BTC_USDT --symbol ETH_USDT``).
MARKET_ALIASES = {"symbols": "--symbol", "intervals": "--interval"}


@dataclass(frozen=True)
class FlowOption:
    """One flow parameter as a command-line option."""

    name: str
    flag: str
    default: Any
    help: str
    kind: str  # "flag" (bool), "list" or "value"
    choices: tuple[str, ...] | None


def _strip(annotation: Any) -> tuple[Any, bool]:
    """``annotation`` without ``Annotated`` and ``None``; and whether it was a list."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        lists = [a for a in rest if typing.get_origin(a) is list]
        annotation = lists[0] if lists else rest[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (str,)
        return _strip(item)[0], True
    return annotation, False


def _choices(annotation: Any) -> tuple[str, ...] | None:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(str(m.value) for m in annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(v) for v in typing.get_args(annotation))
    return None


def show_default(value: Any) -> str:
    """A default as the CLI help shows it."""
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list | tuple):
        return ",".join(show_default(v) for v in value) or "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def help_text(doc: str, default: Any) -> str:
    """An option's help: the flow's ``Args:`` text, plus the default unless the text says it."""
    return doc if "default" in doc.lower() else f"{doc} (default: {show_default(default)})"


def flow_options(flow: Any, skip: Iterable[str] = ()) -> list[FlowOption]:
    """The options of ``flow`` (a Prefect flow), in signature order, less ``skip``."""
    from prefect.utilities.callables import parameter_docstrings

    fn = getattr(flow, "fn", flow)
    docs = parameter_docstrings(inspect.getdoc(fn))
    hints = typing.get_type_hints(fn, include_extras=True)
    skipped = set(skip)
    options: list[FlowOption] = []
    for name, param in inspect.signature(fn).parameters.items():
        if name in skipped:
            continue
        base, is_list = _strip(hints.get(name, str))
        kind = "list" if is_list else "flag" if base is bool else "value"
        text = " ".join(docs.get(name, "").split())
        if not text:
            raise TypeError(f"{fn.__name__}: parameter {name!r} has no Args: description")
        default = None if param.default is inspect.Parameter.empty else param.default
        options.append(FlowOption(
            name=name, flag="--" + name.replace("_", "-"), default=default,
            help=help_text(text, default), kind=kind, choices=_choices(base),
        ))
    return options


def _split_commas(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_flow_options(
    parser: argparse.ArgumentParser, flow: Any, *, skip: Iterable[str] = (),
    aliases: dict[str, str] | None = None,
) -> list[FlowOption]:
    """Add one option per parameter of ``flow``; an option left out keeps the flow's default.

    ``aliases`` maps a parameter to one more flag (``{"symbols": "--symbol"}``). A list
    parameter takes comma lists and repeats (``--models a,b --models c``).
    """
    options = flow_options(flow, skip)
    for opt in options:
        flags = [opt.flag] + ([aliases[opt.name]] if aliases and opt.name in aliases else [])
        kwargs: dict[str, Any] = {"dest": opt.name, "default": argparse.SUPPRESS,
                                  "help": opt.help}
        metavar = "|".join(opt.choices) if opt.choices and len(opt.choices) <= 4 else None
        if opt.kind == "flag":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif opt.kind == "list":
            kwargs.update(action="extend", type=_split_commas, metavar=metavar or "A,B")
        else:
            kwargs["metavar"] = metavar or opt.name.upper()
        parser.add_argument(*flags, **kwargs)
    parser.set_defaults(_flow_options=[o.name for o in options])
    return options


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The flow parameters the user gave on the command line (the rest keep their defaults)."""
    return {name: getattr(args, name) for name in args._flow_options if hasattr(args, name)}


def validated(flow: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` checked and converted by the flow's own signature; bad values raise a
    :class:`BadInputError` naming the parameter and the value, before anything is written."""
    import logging

    from prefect.exceptions import ParameterTypeError
    from pydantic import TypeAdapter, ValidationError

    hints = typing.get_type_hints(getattr(flow, "fn", flow), include_extras=True)
    for name, value in params.items():
        try:
            TypeAdapter(hints.get(name, Any)).validate_python(value)
        except ValidationError as exc:
            problems = "; ".join(
                ".".join([name, *(str(p) for p in e["loc"])]) + f": {e['msg']}"
                for e in exc.errors()
            )
            raise BadInputError(f"{problems} (got {value!r})") from None
    flow_logger = logging.getLogger("prefect.flows")  # it logs a refusal as an ERROR too
    was_disabled, flow_logger.disabled = flow_logger.disabled, True
    try:
        return flow.validate_parameters(params)
    except ParameterTypeError as exc:
        raise BadInputError(_one_line(str(exc))) from None
    finally:
        flow_logger.disabled = was_disabled


def _one_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("For further information")]
    return " ".join(lines)
