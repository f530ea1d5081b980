"""The `{name}` template language: names, literal braces, and clear errors for everything else."""

from __future__ import annotations

import pytest

from leapbatch.manifest.template import TemplateError, names, parse, printable, render


def test_render_replaces_each_name() -> None:
    """Every `{name}` is replaced by its value, numbers written with str()."""
    assert "a watercolor cat, 3 of 4" == render(
        "a {style} {animal}, {n} of {total}", {"style": "watercolor", "animal": "cat", "n": 3, "total": 4}
    )


def test_text_without_fields_renders_as_is() -> None:
    """A template without fields is its own text."""
    assert "a plain prompt" == render("a plain prompt", {})


def test_doubled_braces_are_literal() -> None:
    """`{{` and `}}` write one brace each, and `{{name}}` is not a field."""
    template = parse("{{literal}} and {name} in {{ braces }}")

    assert ("name",) == template.names
    assert "{literal} and x in { braces }" == template.render({"name": "x"})


def test_names_are_listed_once_in_order_of_first_use() -> None:
    """`names` lists each field name once, first use first."""
    assert ("b", "a") == names("{b} {a} {b} {a}")


def test_a_name_may_repeat_and_sit_at_either_end() -> None:
    """Fields at the very start and end and repeated names all render."""
    assert "x-y-x" == render("{a}-{b}-{a}", {"a": "x", "b": "y"})


def test_render_of_a_missing_name_raises_key_error() -> None:
    """Rendering without a value for a name is a KeyError (manifests are checked before rendering)."""
    with pytest.raises(KeyError):
        render("{missing}", {})


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("a {animal.name}", "{animal.name}: attribute access is not supported in templates", 3),
        ("a {animal[0]}", "{animal[0]}: indexing is not supported in templates", 3),
        ("a {animal:>10}", "{animal:>10}: format specs are not supported in templates", 3),
        ("a {animal!r}", "{animal!r}: conversions are not supported in templates", 3),
        ("a {}", "empty field {}", 3),
        ("a {0}", "positional field {0} is not supported", 3),
        ("a { animal }", "{ animal }: spaces around a name", 3),
        ("a {9lives}", "{9lives} is not a name", 3),
        ("a {animal", "unclosed '{'", 3),
        ("a {b{c}}", "'{' inside a field", 5),
        ("a } b", "single '}'", 3),
    ],
)
def test_anything_but_a_plain_name_is_an_error(text: str, message: str, column: int) -> None:
    """Attribute access, indexing, format specs, conversions and stray braces are errors with a position."""
    with pytest.raises(TemplateError) as caught:
        parse(text)

    assert (message, column) == (caught.value.message, caught.value.column)


def test_errors_suggest_the_plain_name() -> None:
    """The hint for `{animal.name}` suggests `{animal}`."""
    with pytest.raises(TemplateError) as caught:
        parse("{animal.name}")

    assert "use a plain name such as {animal}" == caught.value.hint


def test_unicode_text_and_values_pass_through() -> None:
    """Non-ASCII text and values are kept exactly."""
    assert "un chat « noir » 🐈" == render("un {animal} « {colour} » 🐈", {"animal": "chat", "colour": "noir"})


def test_printable_escapes_what_can_rewrite_a_terminal() -> None:
    """Controls, DEL, C1 and bidi overrides are shown as escapes; other text, accents and emoji included, is kept."""
    assert "a\\x1b[31m\\x07 b\\x7f\\x9b \\u202eé 🐈\\n" == printable("a\x1b[31m\x07 b\x7f\x9b \u202eé 🐈\n")
