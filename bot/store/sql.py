"""Statements written once for both databases: `?` or `:name` parameters, turned into PostgreSQL's `$1, $2, …`.

The bot's SQL keeps to what SQLite and PostgreSQL share (`ON CONFLICT … DO NOTHING / DO UPDATE`, `RETURNING`,
`coalesce`, `CASE`); its parameters are written SQLite's way, `?` in order or `:name` from a mapping. For
PostgreSQL `numbered` rewrites them, leaving string literals, quoted names, comments and `::` casts alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

# One token at a time: the things to leave alone, then the two kinds of parameter.
_TOKENS = re.compile(
    r"""'(?:[^']|'')*'            # a string literal
      | "(?:[^"]|"")*"            # a quoted name
      | --[^\n]*                  # a comment to the end of the line
      | \$\$.*?\$\$               # a dollar-quoted body
      | ::                        # a cast, not a parameter
      | (?P<positional>\?)
      | :(?P<named>[A-Za-z_][A-Za-z0-9_]*)""",
    re.VERBOSE | re.DOTALL,
)


class ParameterError(ValueError):
    """A statement's parameters do not match its placeholders (a bug in the statement, not bad input)."""


@lru_cache(maxsize=512)
def _parse(sql: str) -> tuple[str, tuple[str, ...] | int]:
    """(the statement with $n placeholders, the names in order or the number of `?`)."""
    names: list[str] = []
    positional = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal positional
        if match.group("positional"):
            positional += 1
            return f"${positional}"
        name = match.group("named")
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _TOKENS.sub(replace, sql)
    if positional and names:
        raise ParameterError("a statement uses either ? or :name parameters, not both")
    return text, tuple(names) if names else positional


def numbered(sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> tuple[str, list[Any]]:
    """The statement with `$n` placeholders and its arguments in that order."""
    text, shape = _parse(sql)
    if isinstance(shape, int):
        if isinstance(parameters, Mapping):
            if shape or parameters:
                raise ParameterError("this statement takes ? parameters, not a mapping")
            return text, []
        values = list(parameters)
        if len(values) != shape:
            raise ParameterError(f"the statement has {shape} ? parameters, {len(values)} values were given")
        return text, values
    if not isinstance(parameters, Mapping):
        raise ParameterError("this statement takes :name parameters: give a mapping")
    missing = [name for name in shape if name not in parameters]
    if missing:
        raise ParameterError("no value for " + ", ".join(f":{name}" for name in missing))
    return text, [parameters[name] for name in shape]
