"""The `{name}` template language of prompts: literal text, `{name}` fields, and `{{` / `}}` for literal braces.

It is deliberately tiny. A field is a bare name (letters, digits and `_`, not starting with a digit) and nothing
else: attribute access (`{a.b}`), indexing (`{a[0]}`), format specs (`{a:>10}`), conversions (`{a!r}`) and
positional fields (`{}`, `{0}`) are errors with a message that says so, never silently rendered. A template is
parsed once and rendered many times, so parsing does the checking and rendering only joins strings.
`printable` escapes the characters that could rewrite a terminal (`UNPRINTABLE`), for showing (never sending) prompt
text, and the CLI shows every other text from outside (paths, the server's messages) through it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME = re.compile(NAME_PATTERN + r"\Z")
# C0 and C1 controls, DEL, bidi embeddings/overrides/isolates and lone surrogates: what can rewrite a terminal.
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


class TemplateError(ValueError):
    """Raised when a template does not parse; `column` is the 1-based position of the fault in the template."""

    def __init__(self, message: str, *, column: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: `literals[0] {fields[0]} literals[1] {fields[1]} ... literals[-1]`."""

    text: str
    literals: tuple[str, ...]
    fields: tuple[str, ...]
    names: tuple[str, ...] = ()  # the names used, each once, in order of first use (set by `parse`)

    def render(self, values: Mapping[str, object]) -> str:
        """Return the text with every field replaced by `str()` of its value (a missing name raises KeyError)."""
        if not self.fields:
            return self.literals[0]
        out = [self.literals[0]]
        for name, literal in zip(self.fields, self.literals[1:], strict=True):
            out.append(str(values[name]))
            out.append(literal)
        return "".join(out)


def _explain_field(inner: str, column: int) -> TemplateError:
    """Return the error for a `{...}` whose content is not a bare name."""
    shown = "{" + inner + "}"
    if inner.strip() == "":
        return TemplateError(
            f"empty field {shown}", column=column, hint="put a name inside, or write {{ and }} for literal braces"
        )
    if inner.isdigit():
        return TemplateError(f"positional field {shown} is not supported", column=column, hint="use a name: {animal}")
    unsupported = (
        (".", "attribute access is"),
        ("[", "indexing is"),
        (":", "format specs are"),
        ("!", "conversions are"),
    )
    for mark, what in unsupported:
        if mark in inner:
            base = inner.split(mark, 1)[0]
            hint = f"use a plain name such as {{{base}}}" if _NAME.match(base) else "use a plain name such as {animal}"
            return TemplateError(f"{shown}: {what} not supported in templates", column=column, hint=hint)
    if inner != inner.strip() and _NAME.match(inner.strip()):
        return TemplateError(f"{shown}: spaces around a name", column=column, hint=f"write {{{inner.strip()}}}")
    return TemplateError(
        f"{shown} is not a name",
        column=column,
        hint="names use letters, digits and _ and do not start with a digit; write {{ and }} for literal braces",
    )


def parse(text: str) -> Template:
    """Parse a template, raising TemplateError at the first fault."""
    literals: list[str] = []
    fields: list[str] = []
    current: list[str] = []
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char == "{":
            if text.startswith("{{", i):
                current.append("{")
                i += 2
                continue
            close = text.find("}", i + 1)
            nested = text.find("{", i + 1)
            if close < 0:
                raise TemplateError("unclosed '{'", column=i + 1, hint="close it with '}', or write {{ for a '{'")
            if 0 <= nested < close:
                raise TemplateError(
                    "'{' inside a field", column=nested + 1, hint="fields hold one name; write {{ for a literal '{'"
                )
            inner = text[i + 1 : close]
            if not _NAME.match(inner):
                raise _explain_field(inner, i + 1)
            literals.append("".join(current))
            current = []
            fields.append(inner)
            i = close + 1
        elif char == "}":
            if text.startswith("}}", i):
                current.append("}")
                i += 2
                continue
            raise TemplateError("single '}'", column=i + 1, hint="write }} for a literal '}'")
        else:
            # Copy the run of plain text up to the next brace in one step.
            stop = min((p for p in (text.find("{", i), text.find("}", i)) if p >= 0), default=end)
            current.append(text[i:stop])
            i = stop
    literals.append("".join(current))
    return Template(text, tuple(literals), tuple(fields), tuple(dict.fromkeys(fields)))


def names(text: str) -> tuple[str, ...]:
    """Return the names a template uses, each once, in order of first use."""
    return parse(text).names


def render(text: str, values: Mapping[str, object]) -> str:
    """Parse and render a template in one step."""
    return parse(text).render(values)


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """Return text safe to show on a terminal: control and bidi characters written as escapes (`\\x1b`, `\\u202e`).

    Prompts are sent exactly as written; only what leapbatch shows people (plans, error messages) is escaped.
    """
    return UNPRINTABLE.sub(_escape, text)
