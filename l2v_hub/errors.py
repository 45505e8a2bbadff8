"""The few named exceptions l2v-hub raises, and ``clip`` / ``quote`` for one-line messages.

Every error a user can act on is one of these; each message names the thing at fault and what was
expected. Errors about an argument the caller passed are ``ValueError``s too (``ArgumentError``,
``PackError``, ...), so ordinary ``except ValueError`` code catches them; I/O and Hub failures
(``HubError``) are not.
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "BuildError",
    "HubError",
    "IncompatiblePackError",
    "L2VHubError",
    "PackError",
    "PackNotFoundError",
    "clip",
    "quote",
]


class L2VHubError(Exception):
    """Base class of every l2v-hub error."""


class ArgumentError(L2VHubError, ValueError):
    """An argument was refused before any work: names the argument, the value and what is expected."""


class PackError(L2VHubError, ValueError):
    """A pack is malformed, tampered with or unreadable (names the file and the field)."""


class IncompatiblePackError(L2VHubError, ValueError):
    """A pack does not fit the model it is applied to (names both values)."""


class HubError(L2VHubError):
    """The Hub or a local store refused or failed a request (names the repo, revision and cause)."""


class PackNotFoundError(HubError, LookupError):
    """No pack exists for what was asked: says what was looked for, and where."""


class BuildError(L2VHubError, ValueError):
    """Bad input to the builder: malformed pairs, an unreadable target config, an unknown model."""


def clip(text: object, width: int = 240) -> str:
    """The first line of ``text``, cut at a word boundary to at most ``width`` characters.

    Messages quote other libraries' errors; a cut mid-word ("a token having permissi") reads
    like a bug, so a long line ends at the last space before ``width``, marked with an ellipsis.
    """
    lines = str(text).strip().splitlines()
    line = lines[0].rstrip() if lines else ""
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip(" ,;:") + "…"


def quote(exc: object, width: int = 800) -> str:
    """Another library's error message whole, on one line, for quoting inside one of ours.

    Its lines are joined and runs of whitespace collapsed. Only a message longer than ``width``
    is cut, and then after its last full sentence that fits (else at a word boundary), marked
    with an ellipsis: a fixed slice cut transformers' "...listed on 'https://huggingface.co/mo".
    """
    line = " ".join(str(exc).split())
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    if end > width // 2:
        return cut[: end + 1] + " …"
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip(" ,;:") + "…"
