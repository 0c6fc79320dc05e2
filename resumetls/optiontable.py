"""
The machinery of the option table (L{resumetls.options}): a row
(L{Option}), the table (L{OptionTable}) and what is made from it, bounds,
and the converters that turn raw text into field values with one-line
errors.  Imports nothing heavy: plugin discovery reaches it through the
endpoint parsers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import attrs

__all__ = [
    "Bounds",
    "ConfigError",
    "Option",
    "OptionTable",
    "readable_file",
]


class ConfigError(ValueError):
    """An option that cannot be used; the message is one line for the user."""


@attrs.frozen
class Bounds:
    """
    The range a number must be in: C{low <= n <= high}, or with C{open}
    C{low < n < high}.  Not-a-number is never in range.
    """

    low: float
    high: float
    open: bool = False

    def __contains__(self, number: float) -> bool:
        if self.open:
            return self.low < number < self.high
        return self.low <= number <= self.high


# A converter: (row, label, raw value) -> value, or ConfigError naming label.
Converter = Callable[["Option", str, Any], Any]


@attrs.frozen
class Option:
    """
    One row of the table.

    @ivar field: the attribute it sets (of L{ServerConfig}, or the client's).
    @ivar endpoint: its key in endpoint strings, or L{None}.
    @ivar flag: its C{twist resumetls} flag without dashes, or L{None}.
    @ivar negates: the flag is a switch that sets the field to L{False}
        (C{--no-tickets}); otherwise the flag takes a value.
    @ivar convert: turns the raw value (text, or what C{usage.Options}
        gives) into the field's value; L{str} by default.
    @ivar message: when set, the one message for any value that is refused
        (C{{label}} and C{{value!r}} are filled in).
    @ivar repeats: the flag may be given several times; its values arrive
        as a list (C{twist resumetls} collects them with an C{opt_} method,
        so L{OptionTable.usage_parameters} leaves the row out).
    """

    field: str
    endpoint: str | None = None
    flag: str | None = None
    default: Any = None
    convert: Converter = attrs.field(default=lambda option, label, value: str(value))
    bounds: Bounds | None = None
    help: str = ""
    short: str | None = None
    negates: bool = False
    message: str | None = None
    repeats: bool = False

    def refuse(self, label: str, value: Any, message: str) -> ConfigError:
        text = self.message or message
        return ConfigError(text.format(label=label, value=value))


class OptionTable:
    """
    Rows by field, and what is made from them: name-to-field maps for
    endpoint strings and command lines, C{usage.Options} parameters, and
    the conversion of raw text into field values.

    @param unknown: the message for an option no row has (C{{label}},
        C{{name}} and C{{known}} are filled in).
    """

    def __init__(self, rows: Iterable[Option], unknown: str) -> None:
        self.rows = {row.field: row for row in rows}
        self.unknown = unknown

    def __getitem__(self, field: str) -> Option:
        return self.rows[field]

    def default(self, field: str) -> Any:
        return self.rows[field].default

    def bounds(self, field: str) -> Bounds:
        bounds = self.rows[field].bounds
        if bounds is None:
            raise KeyError(f"{field} has no bounds")
        return bounds

    def endpoint_names(self) -> dict[str, str]:
        """Endpoint-string keys to fields."""
        return {r.endpoint: r.field for r in self.rows.values() if r.endpoint}

    def flag_names(self) -> dict[str, str]:
        """Command-line flags (without dashes) to fields, in table order."""
        return {r.flag: r.field for r in self.rows.values() if r.flag}

    def usage_parameters(self) -> list[list[Any]]:
        """C{usage.Options.optParameters} rows for the flags that take values."""
        return [
            [r.flag, r.short, _as_text(r.default), r.help]
            for r in self.rows.values()
            if r.flag and not r.negates and not r.repeats
        ]

    def usage_flags(self) -> list[list[Any]]:
        """C{usage.Options.optFlags} rows for the switches."""
        return [
            [r.flag, r.short, r.help]
            for r in self.rows.values()
            if r.flag and r.negates
        ]

    def convert(
        self, options: dict[str, Any], names: dict[str, str], source: str
    ) -> dict[str, Any]:
        """
        The field values of raw options (text from an endpoint string or a
        command line); options whose value is L{None} are left out.

        @param names: how option names map to fields (L{endpoint_names} or
            L{flag_names}).
        @param source: how options are named in messages (C{"--"}, C{""}).
        @raise ConfigError: one line naming the option and what is wrong.
        """
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ConfigError(
                self.unknown.format(
                    label=source + unknown[0],
                    name=unknown[0],
                    known=", ".join(source + n for n in sorted(names)),
                )
            )
        fields = {}
        for name, value in options.items():
            if value is None:
                continue
            row = self.rows[names[name]]
            if row.negates and name == row.flag:
                fields[row.field] = not value
            else:
                fields[row.field] = row.convert(row, source + name, value)
        return fields


def _as_text(default: Any) -> str | None:
    """A default as C{usage.Options} shows it: C{43200}, not C{43200.0}."""
    if default is None:
        return None
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


# -- converters ------------------------------------------------------------------


def text(option: Option, label: str, value: Any) -> str:
    return str(value)


def yes_no(option: Option, label: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("yes", "true", "on", "1"):
        return True
    if word in ("no", "false", "off", "0"):
        return False
    raise option.refuse(label, value, "{label} must be yes or no, not {value!r}")


def _number(kind: type) -> Converter:
    def convert(option: Option, label: str, value: Any) -> Any:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise option.refuse(
                label, value, "{label} must be a number, not {value!r}"
            ) from None
        bounds = option.bounds
        if bounds is not None and number not in bounds:
            raise option.refuse(
                label,
                value,
                f"{{label}} must be between {bounds.low:g} and {bounds.high:g}, "
                "not {value!r}",
            )
        return number

    return convert


integer = _number(int)
real = _number(float)


def readable_file(path: str) -> str:
    """
    C{path} with C{~} expanded, once it is known to be a readable file.

    @raise ConfigError: C{"PATH: no such file"}, C{"not a file"} or
        C{"not readable"}.
    """
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{path}: not readable")
    return path


def _optional_path(check: Callable[[str], str]) -> Converter:
    """A converter for a path-like option: empty means not given."""

    def convert(option: Option, label: str, value: Any) -> str | None:
        if value == "":
            return None
        try:
            return check(str(value))
        except ValueError as e:
            raise ConfigError(f"{label}: {e}") from None

    return convert


def key_source(option: Option, label: str, value: Any) -> tuple[str, ...]:
    """
    Ticket key source specifications (see L{resumetls.key_source_from_spec}:
    a key file's path, C{file:PATH}, ...): one text (key files may be
    separated by commas, C{ticketKeys=new.key,old.key}) or a list of them (a
    repeated flag), checked; empty means keys generated in memory.
    """
    from resumetls.keys.sources import checked_specs, split_specs

    values = [value] if isinstance(value, str) else list(value)
    specs = [spec for v in values for spec in split_specs(str(v))]
    try:
        return checked_specs(specs)
    except ValueError as e:
        raise ConfigError(f"{label}: {e}") from None


# A PEM file.
pem_file = _optional_path(readable_file)


def cache_url(option: Option, label: str, value: Any) -> str:
    """A session cache URL, checked by building it (backends do no I/O then)."""
    from twisted.internet.task import Clock

    from resumetls.cache.urls import CacheURLError, cache_from_url

    try:
        cache_from_url(str(value), Clock())
    except CacheURLError as e:
        raise ConfigError(str(e)) from None
    return str(value)
