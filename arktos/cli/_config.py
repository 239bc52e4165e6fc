"""`--config FILE` for every component: a YAML file of flag values, the command line winning.

A component's configuration file is its command line written as YAML: each key
is a long flag name without the dashes (`secure-port: 6443`,
`leader-elect: false`, a list for a repeatable flag).  This keeps one
vocabulary for both: `--help` documents the file, the Ansible roles and
`arktos up` render the same file from `templates/`, and an operator can still
override one value on the command line for a single run.

The mechanism is click's `default_map`: the eager `--config` option reads the
file before any other option is parsed and makes its values the command's
defaults, so a flag given on the command line overrides them and `required`
options are satisfied by the file.  Values are checked here, against each
option's type, so a bad file gives one line naming the file and the key,
never a traceback or a message about a flag the user did not type.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

F = TypeVar("F", bound=Callable[..., Any])


def _keys(command: click.Command) -> dict[str, click.Option]:
    """Config keys (long flag names without dashes, both halves of an on/off flag) -> their option."""
    out: dict[str, click.Option] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name == "config":
            continue
        for opt in (*param.opts, *param.secondary_opts):
            if opt.startswith("--"):
                out[opt[2:]] = param
    return out


def load_config(ctx: click.Context, path: str) -> dict[str, Any]:
    """The file's values as a default_map (parameter name -> value), or a one-line ClickException."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise click.ClickException(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise click.ClickException(f"{path}{at}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise click.ClickException(f"{path}: want a mapping of flag names to values, not a {type(doc).__name__}")
    assert ctx.command is not None
    known = _keys(ctx.command)
    values: dict[str, Any] = {}
    for key, value in doc.items():
        option = known.get(str(key))
        if option is None:
            raise click.ClickException(
                f"{path}: unknown key {key!r} (keys are the long flag names of "
                f"'{ctx.command_path} --help', without the dashes)")
        if value is None:
            continue  # an unset template value: the option keeps its own default
        assert option.name is not None
        if option.is_flag and option.secondary_opts and f"--{key}" in option.secondary_opts:
            if not isinstance(value, bool):
                raise click.ClickException(f"{path}: {key}: want true or false, not {value!r}")
            value = not value  # `no-leader-elect: true` means leader-elect false
        if option.multiple and not isinstance(value, list):
            value = [value]
        try:
            option.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise click.ClickException(f"{path}: {key}: {exc.message}") from None
        values[option.name] = value
    return values


def _apply(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.default_map = {**(ctx.default_map or {}), **load_config(ctx, value)}
    return value


def config_option(fn: F) -> F:
    """Add `--config FILE` to a component command (put it first, so `--help` shows it first)."""
    return click.option(
        "--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False, callback=_apply,
        metavar="FILE",
        help="YAML file of flag values: each key is a long flag name without the dashes "
             "(e.g. 'kube-api-qps: 50'); flags on the command line override the file.")(fn)
