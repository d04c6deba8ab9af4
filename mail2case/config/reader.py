"""A TOML table reader that validates values and gathers every problem with its key."""

from __future__ import annotations

import builtins
import dataclasses
import os
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

T = TypeVar("T")
_MISSING: Any = object()


def field_default(cls: type[Any], name: builtins.str) -> Any:
    """The default that dataclass ``cls`` declares for its field ``name``.

    A setting's default lives once, in the component's own settings class; the reader
    and the config's section classes take it from there.

    Raises:
        LookupError: ``cls`` has no such field, or the field has no default.
    """
    for item in dataclasses.fields(cls):
        if item.name != name:
            continue
        if item.default is not dataclasses.MISSING:
            return item.default
        if item.default_factory is not dataclasses.MISSING:
            return item.default_factory()
        break
    raise LookupError(f"{cls.__name__}.{name} has no default")


class ConfigError(Exception):
    """The configuration has problems; ``problems`` lists each as ``key: problem``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Section:
    """Reads one table; each getter returns the default when the value is bad."""

    def __init__(
        self, data: dict[builtins.str, Any], path: builtins.str, problems: list[builtins.str]
    ) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.seen: set[builtins.str] = set()
        self.children: list[Section] = []

    def key(self, name: builtins.str) -> builtins.str:
        """The dotted path of ``name`` in this section, for messages."""
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: builtins.str, text: builtins.str, got: Any = _MISSING) -> None:
        """Record a problem with key ``name``."""
        suffix = "" if got is _MISSING else f" (got {got!r})"
        self.problems.append(f"{self.key(name)}: {text}{suffix}")

    def raw(self, name: builtins.str, default: Any) -> Any:
        """The value as found, or ``default``."""
        self.seen.add(name)
        return self.data.get(name, default)

    def typed(
        self, name: builtins.str, kind: type[T] | tuple[type, ...], default: T, what: builtins.str
    ) -> T:
        """The value if it is of ``kind``, else a problem and ``default``."""
        value = self.raw(name, default)
        if isinstance(value, builtins.bool) and kind is not builtins.bool:
            self.problem(name, f"must be {what}", value)
            return default
        if not isinstance(value, kind):
            self.problem(name, f"must be {what}", value)
            return default
        return value  # type: ignore[return-value]

    def str(self, name: builtins.str, default: builtins.str = "") -> builtins.str:
        """A string value."""
        return self.typed(name, builtins.str, default, "a string")

    def bool(self, name: builtins.str, *, default: builtins.bool) -> builtins.bool:
        """A boolean value."""
        return self.typed(name, builtins.bool, default, "true or false")

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        lo: builtins.int | None = None,
        hi: builtins.int | None = None,
    ) -> builtins.int:
        """An integer within [lo, hi]."""
        value = self.typed(name, builtins.int, default, "an integer")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.problem(name, f"must be an integer between {lo} and {hi}", value)
            return default
        return value

    def number(
        self, name: builtins.str, default: float, lo: float = 0.0, hi: float | None = None
    ) -> float:
        """A float or integer within [lo, hi]."""
        value = float(self.typed(name, (builtins.int, float), default, "a number"))
        if value < lo or (hi is not None and value > hi):
            self.problem(name, f"must be a number between {lo} and {hi}", value)
            return default
        return value

    def seconds(
        self, name: builtins.str, default: timedelta, lo: float = 0.0, hi: float | None = None
    ) -> timedelta:
        """A duration given as a number of seconds (a ``*_seconds`` key) within [lo, hi]."""
        return timedelta(seconds=self.number(name, default.total_seconds(), lo, hi))

    def choice(
        self, name: builtins.str, default: builtins.str, choices: tuple[builtins.str, ...]
    ) -> builtins.str:
        """One of ``choices``."""
        value = self.str(name, default)
        if value not in choices:
            self.problem(name, f"must be one of {', '.join(choices)}", value)
            return default
        return value

    def str_list(
        self, name: builtins.str, default: tuple[builtins.str, ...] = ()
    ) -> tuple[builtins.str, ...]:
        """A list of strings."""
        value = self.raw(name, list(default))
        if not isinstance(value, list) or not all(isinstance(v, builtins.str) for v in value):
            self.problem(name, "must be a list of strings", value)
            return default
        return tuple(value)

    def zone(self, name: builtins.str, default: builtins.str = "UTC") -> ZoneInfo:
        """An IANA time zone name."""
        value = self.str(name, default)
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(name, "must be an IANA time zone such as Europe/Berlin", value)
            return ZoneInfo(default)

    def clock_time(self, name: builtins.str, default: builtins.str) -> time:
        """A local time of day as HH:MM."""
        value = self.str(name, default)
        try:
            return time.fromisoformat(value)
        except ValueError:
            self.problem(name, "must be a time of day as HH:MM", value)
            return time.fromisoformat(default)

    def optional_date(self, name: builtins.str) -> date | None:
        """A date (TOML date or YYYY-MM-DD string), or None when absent."""
        value = self.raw(name, None)
        return None if value is None else self.as_date(name, value)

    def as_date(self, name: builtins.str, value: Any) -> date | None:
        """Coerce a TOML date or an ISO string into a date, recording a problem if neither.

        A TOML date-time is a problem too: it is no whole local day (a holiday, the end of
        a paid term), and a datetime compares with no date.
        """
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, builtins.str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.problem(name, "must be a date as YYYY-MM-DD", value)
        return None

    def table(self, name: builtins.str) -> Section:
        """A sub-table (missing means empty); asking twice gives the same reader."""
        for child in self.children:
            if child.path == self.key(name):
                return child
        value = self.raw(name, {})
        if not isinstance(value, dict):
            self.problem(name, "must be a table", value)
            value = {}
        child = Section(value, self.key(name), self.problems)
        self.children.append(child)
        return child

    def tables(self, name: builtins.str) -> list[Section]:
        """An array of tables (``[[name]]``)."""
        value = self.raw(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(name, "must be an array of tables ([[...]])", type(value).__name__)
            return []
        found = [Section(v, f"{self.key(name)}[{i}]", self.problems) for i, v in enumerate(value)]
        self.children.extend(found)
        return found

    def secret(self, name: builtins.str) -> builtins.str:
        """A secret from ``name``, ``name_file`` or ``name_env``; at most one may be set."""
        sources = {k: self.str(k) for k in (name, f"{name}_file", f"{name}_env")}
        given = [k for k, v in sources.items() if v]
        if len(given) > 1:
            self.problem(name, f"set only one of {', '.join(given)}")
            return ""
        if sources[f"{name}_file"]:
            return self._read_secret_file(f"{name}_file", sources[f"{name}_file"])
        if sources[f"{name}_env"]:
            env_value = os.environ.get(sources[f"{name}_env"])
            if env_value is None:
                self.problem(
                    f"{name}_env", "environment variable is not set", sources[f"{name}_env"]
                )
                return ""
            return env_value
        return sources[name]

    def _read_secret_file(self, name: builtins.str, path: builtins.str) -> builtins.str:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            self.problem(name, f"cannot read secret file: {exc.strerror}", path)
            return ""

    def finish(self) -> None:
        """Report keys that no getter asked for: a typo should not pass silently."""
        for name in sorted(set(self.data) - self.seen):
            self.problem(name, "unknown key")
        for child in self.children:
            child.finish()
