"""One validation layer for every value that enters the tool: command-line options, workload spec fields,
trace cells, `SchedulerConfig` fields, model configs, profiles and result files.

Every check here raises a `UserError` (exit 2) whose one line names the source (an option, `file:line`, a
field path) and says how to fix it, before any long work starts. Values must be of the right type, finite and
in range; numbers that will become int64 (token counts, seeds) must fit one. Text quoted from a file is a
short, sanitised excerpt (`excerpt`), so a mistyped path to a system file never prints its contents.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inferneo_bench.errors import UserError

INT64_MAX = 2**63 - 1
# Longer than any model context (the longest are ~10 M tokens); a cell above it is a typo or garbage, and
# sums of such counts stay far inside int64.
MAX_TOKENS = 1_000_000_000
MAX_SEED = 2**63 - 1
EXCERPT_CHARS = 24
MAX_JSON_BYTES_FACTOR = 5  # measured: json.loads of a result file peaks at ~4.4x its size (1 GB -> 4.4 GB)


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable excerpt of `value` for error messages (never a file's contents): numbers as they are,
    anything else quoted, cut after `limit` characters, with non-printable characters replaced by '?'."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} digits)"
    text = value if isinstance(value, str) else repr(value)
    clean = "".join(c if c.isprintable() and c not in "\r\n\t" else "?" for c in text[: limit + 1])
    if len(text) > limit:
        return repr(clean[:limit]) + f" (+{len(text) - limit} characters)"
    return repr(clean)


def _fail(where: str, value: object, problem: str, fix: str | None) -> UserError:
    return UserError(f"{where} {problem}, got {excerpt(value)}" + (f"; {fix}" if fix else ""))


def number(
    value: Any,
    where: str,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    fix: str | None = None,
    error: type[UserError] = UserError,
) -> Any:
    """`value` as a finite number (an int when `integer`) with minimum <= value <= maximum and value > above.

    Booleans and text are refused; an integral float (`12.0`) passes as an integer; integers must fit int64.
    Returns the value (int or float). Raises `error` (a UserError): "<where> must be ..., got <value>"."""
    bad: str | None = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        bad = "must be a number" if not integer else "must be an integer"
    elif isinstance(value, float) and not math.isfinite(value):
        bad = "must be a finite number"
    elif integer and isinstance(value, float):
        if not value.is_integer():
            bad = "must be a whole number"
        else:
            value = int(value)
    if bad is None and integer and not -INT64_MAX - 1 <= value <= INT64_MAX:
        bad = "must fit a 64-bit integer"
    if bad is None and minimum is not None and value < minimum:
        bad = f"must be >= {minimum:g}"
    if bad is None and above is not None and not value > above:
        bad = f"must be > {above:g}"
    if bad is None and maximum is not None and value > maximum:
        bad = f"must be <= {maximum:,.10g}"
    if bad is not None:
        raise error(str(_fail(where, value, bad, fix)))
    return value


def positive(value: Any, where: str, fix: str | None = None) -> float:
    """A finite number > 0."""
    return number(value, where, above=0, fix=fix)


def non_negative(value: Any, where: str, fix: str | None = None) -> float:
    return number(value, where, minimum=0, fix=fix)


def count(value: Any, where: str, minimum: int = 1, maximum: int = INT64_MAX, fix: str | None = None) -> int:
    """An integer in [minimum, maximum]."""
    return number(value, where, integer=True, minimum=minimum, maximum=maximum, fix=fix)


def tokens(value: Any, where: str, minimum: int = 1, fix: str | None = None) -> int:
    """A token count in [minimum, MAX_TOKENS]."""
    return number(value, where, integer=True, minimum=minimum, maximum=MAX_TOKENS, fix=fix)


def seed(value: Any, where: str) -> int:
    return number(value, where, integer=True, minimum=0, maximum=MAX_SEED, fix="use an integer seed >= 0")


# ------------------------------------------------------------------------------------------- run identities


def run_id(value: str, where: str = "--run-id") -> str:
    """A run id names one folder under --out: no path separators, no `..`, nothing hidden or empty."""
    text = str(value)
    if (
        not text.strip()
        or "/" in text
        or "\\" in text
        or text in (".", "..")
        or text.startswith(".")
        or any(not c.isprintable() for c in text)
        or len(text) > 200
    ):
        raise UserError(
            f"{where} {excerpt(text)}: a run id names one folder under --out: letters, digits, '-', '_' and "
            "'.', no path separators or '..', not starting with '.' (e.g. --run-id baseline-2)"
        )
    return text


# ---------------------------------------------------------------------------------------------------- JSON


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (not a finite number)")


def load_json(
    text: str | bytes, where: str, error: type[UserError] = UserError, what: str = "JSON", fix: str | None = None
) -> Any:
    """Parse JSON strictly: NaN/Infinity refused, absurd nesting and huge integers reported (not crashed on),
    each as one line naming `where` (`corrupt {what} at line L column C (...)`)."""
    tail = f"; {fix}" if fix else ""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: corrupt {what} at line {exc.lineno} column {exc.colno} ({exc.msg}){tail}") from None
    except RecursionError:
        raise error(f"{where}: {what} nested too deeply to be read (corrupt or hostile){tail}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not UTF-8 text (byte {exc.start}); expected {what}{tail}") from None
    except ValueError as exc:  # NaN/Infinity, or an integer of thousands of digits
        raise error(f"{where}: invalid {what} ({str(exc)[:80]}){tail}") from None


# -------------------------------------------------------------------------------------------------- memory


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable; else free physical pages)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:,.0f} B"
        n /= 1024
    return f"{n:,.1f} PB"  # pragma: no cover


def check_memory(need: float, what: str, fix: str, available: Callable[[], int | None] | None = None) -> None:
    """Refuse work whose estimated memory `need` (bytes) exceeds what the machine has available (default:
    `available_memory()`), before any of it is allocated: one line with both figures and the fix."""
    have = (available or available_memory)()
    if have is not None and need > have:
        raise UserError(
            f"{what} needs about {human_bytes(need)} of memory, but {human_bytes(have)} is available; {fix}"
        )


def check_file_size(path: Path, factor: float, what: str, fix: str) -> None:
    """Refuse to read a file whose parsed form (about `factor` x its size) would not fit in memory."""
    try:
        size = path.stat().st_size
    except OSError:
        return
    check_memory(size * factor, f"{path}: reading this {human_bytes(size)} {what}", fix)


# ------------------------------------------------------------------------------------- records and fields


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "text"),
    "str | None": (lambda v: v is None or isinstance(v, str), "text or null"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool) and abs(v) <= INT64_MAX, "an integer"),
    "int | None": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and abs(v) <= INT64_MAX),
        "an integer or null",
    ),
    "float": (_is_number, "a finite number"),
    "float | None": (lambda v: v is None or _is_number(v), "a finite number or null"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "list[str]": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of text"),
    "list[float]": (lambda v: isinstance(v, list) and _finite_sum(v), "a list of finite numbers"),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "an object"),
}


def _finite_sum(values: list[Any]) -> bool:
    """Every element a finite number (one C-speed pass: a NaN, an infinity or text breaks the sum)."""
    try:
        return all(not isinstance(x, bool) for x in values) and math.isfinite(math.fsum(values))
    except (TypeError, OverflowError):
        return False


def field_checks(cls: type) -> list[tuple[str, Callable[[Any], bool], str]]:
    """(field, check, expected) for each dataclass field whose annotation this layer knows."""
    import dataclasses

    out = []
    for f in dataclasses.fields(cls):
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if annotation in _CHECKS:
            check, expected = _CHECKS[annotation]
            out.append((f.name, check, expected))
    return out


def check_record(
    data: Any,
    checks: Sequence[tuple[str, Callable[[Any], bool], str]],
    where: str,
    error: type[UserError] = UserError,
    required: Sequence[str] = (),
) -> None:
    """A record (JSON object) whose present fields have the dataclass's types; `required` must be present."""
    if not isinstance(data, dict):
        raise error(f"{where}: expected an object, got {type(data).__name__}; re-run to regenerate the file")
    for name in required:
        if name not in data:
            raise error(f"{where}: missing field '{name}'; the file is truncated or was edited")
    for name, check, expected in checks:
        if name in data and not check(data[name]):
            raise error(
                f"{where}.{name}: {excerpt(data[name])} is not {expected}; the file is corrupt or was edited "
                "(re-run to regenerate it)"
            )


def check_mapping_numbers(data: Any, where: str, error: type[UserError] = UserError) -> None:
    """Every scalar of a mapping (e.g. a result's `summary`) is a finite number or null; nested mappings are
    checked the same way; text is allowed only inside nested mappings (names, reasons)."""
    if not isinstance(data, dict):
        raise error(f"{where}: expected an object, got {type(data).__name__}")
    for key, value in data.items():
        if isinstance(value, dict):
            for inner_key, inner in value.items():
                if not (inner is None or isinstance(inner, str) or _is_number(inner)):
                    raise error(f"{where}.{key}.{inner_key}: {excerpt(inner)} is not a number; the file was edited")
        elif value is not None and not _is_number(value):
            raise error(
                f"{where}.{key}: {excerpt(value)} is not a finite number or null; the file is corrupt or was "
                "edited (re-run to regenerate it)"
            )
