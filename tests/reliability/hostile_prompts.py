"""A named corpus of hostile prompts: text built to trip path handling, encodings, parsers and look-alike matching.

Deterministic by construction (no randomness): every call returns the same prompts, in the same order, with the
same names. Every prompt is valid Unicode with no lone surrogates, so it has one exact UTF-8 form to compare. No two
prompts are equal: a job key that collided would show up as two jobs sharing one file.

`TWINS` groups prompts that a careless normaliser (case folding, NFC/NFKC, stripping invisible characters, trimming)
would merge; leapbatch must keep every member of a group a job of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hostile:
    """One hostile prompt: a unique name, the category it belongs to, and the exact text."""

    name: str
    category: str
    prompt: str


_TRAVERSAL = {
    "dotdot-etc-passwd": "../../etc/passwd",
    "dotdot-deep": "../../../../../../../../../../tmp/leapbatch-pwned.png",
    "dotdot-windows": "..\\..\\windows\\system32\\config\\SAM",
    "absolute-etc-passwd": "/etc/passwd",
    "absolute-root": "/",
    "absolute-dev-null": "/dev/null",
    "absolute-proc-environ": "/proc/self/environ",
    "windows-drive": "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "windows-unc": "\\\\server\\share\\secret.txt",
    "home-ssh-key": "~/.ssh/id_rsa",
    "url-encoded-dotdot": "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "double-url-encoded-dotdot": "%252e%252e%252fetc%252fpasswd",
    "overlong-utf8-dotdot": "%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
    "dot-dot-slash-slash": "....//....//etc/passwd",
    "lone-dotdot": "..",
    "lone-dot": ".",
    "dot-slash": "./",
    "file-url": "file:///etc/shadow",
    "division-slash-dotdot": "..\u2215..\u2215etc\u2215passwd",
    "fullwidth-solidus-dotdot": "..\uff0f..\uff0fetc\uff0fpasswd",
    "nested-images-escape": "images/../../outside.png",
    "looks-like-an-image-name": "images/" + "0" * 64 + "-0.png",
    "looks-like-the-ledger": "ledger.jsonl",
    "looks-like-results": "results.json",
    "looks-like-the-lock": ".leapbatch.lock",
    "looks-like-a-part-file": "images/" + "f" * 64 + "-0.part",
    "nul-truncated-path": "safe.png\x00../../etc/passwd",
}

_BIDI = {
    "lre": "\u202a",
    "rle": "\u202b",
    "pdf": "\u202c",
    "lro": "\u202d",
    "rlo": "\u202e",
    "lri": "\u2066",
    "rli": "\u2067",
    "fsi": "\u2068",
    "pdi": "\u2069",
    "lrm": "\u200e",
    "rlm": "\u200f",
    "alm": "\u061c",
}

_INVISIBLE = {
    "zero-width-space": "\u200b",
    "zero-width-non-joiner": "\u200c",
    "zero-width-joiner": "\u200d",
    "word-joiner": "\u2060",
    "mongolian-vowel-separator": "\u180e",
    "soft-hyphen": "\u00ad",
    "combining-grapheme-joiner": "\u034f",
    "hangul-filler": "\u3164",
    "invisible-times": "\u2062",
}

_BOM_AND_NONCHARACTERS = {
    "bom-leading": "\ufeffa fox",
    "bom-trailing": "a fox\ufeff",
    "bom-middle": "a\ufefffox",
    "bom-only": "\ufeff",
    "reversed-bom": "\ufffea fox",
    "noncharacter-ffff": "a fox\uffff",
    "replacement-character": "a \ufffd fox",
    "object-replacement": "a \ufffc fox",
}

_YAML = {
    "key-value": "key: value",
    "list-item": "- item",
    "anchor": "&anchor value",
    "alias": "*alias",
    "python-object-tag": "!!python/object/apply:os.system ['touch /tmp/leapbatch-pwned']",
    "binary-tag": "!!binary aGVsbG8=",
    "local-tag": "!local thing",
    "document-start": "---",
    "document-end": "...",
    "directive": "%YAML 1.1",
    "bool-no": "no",
    "bool-yes": "yes",
    "bool-off": "off",
    "bool-on": "On",
    "bool-y": "y",
    "bool-n": "N",
    "bool-true": "true",
    "bool-false": "False",
    "null-tilde": "~",
    "null-word": "null",
    "null-upper": "NULL",
    "flow-mapping": "{a: b}",
    "flow-sequence": "[a, b]",
    "complex-key": "? complex key",
    "literal-block": "|",
    "folded-block": ">-",
    "comment": "# not a comment",
    "merge-key": "<<: *base",
    "octal": "017",
    "octal-1-2": "0o17",
    "hex": "0x1F",
    "sexagesimal": "1:30",
    "date": "2001-12-14",
    "float-inf": ".inf",
    "float-nan": ".NaN",
    "exponent": "1e3",
    "reserved-at": "@reserved",
    "reserved-backtick": "`reserved",
    "single-quoted": "'single'",
    "double-quoted": '"double"',
}

_JSON = {
    "json-object": '{"prompt": "a fox"}',
    "json-array": '["a", "fox"]',
    "json-empty-object": "{}",
    "json-empty-array": "[]",
    "json-string": '"a fox"',
    "json-proto-pollution": '{"__proto__": {"admin": true}}',
    "json-escaped-nul": "\\u0000",
    "json-escaped-quote": 'a \\" fox',
    "json-duplicate-keys": '{"a": 1, "a": 2}',
    "json-nan": "NaN",
    "json-infinity": "-Infinity",
    "json-huge-number": "1e999",
    "json-negative-zero": "-0",
    "json-unterminated": '{"prompt": "a fox',
    "json-lines": '{"a": 1}\n{"b": 2}',
}

_SHELL = {
    "command-substitution": "$(rm -rf /)",
    "backticks": "`id`",
    "semicolon": "a fox; rm -rf ~",
    "pipe": "a fox | cat /etc/passwd",
    "and-and": "a fox && curl http://127.0.0.1:1/x",
    "redirect": "a fox > /etc/passwd",
    "variable": "$HOME",
    "braced-variable": "${IFS}",
    "quoted-substitution": "'$(whoami)'",
    "backslash": "\\",
    "glob-star": "*",
    "glob-question": "?",
    "history-bang": "!!",
    "process-substitution": "<(ls -la)",
    "stderr-redirect": "a fox 2>&1",
    "newline-command": "a fox\nrm -rf /",
}

_FORMAT = {
    "percent-s": "%s",
    "percent-n": "%s%s%s%s%n",
    "percent-x": "%x%x%x%x",
    "percent-mapping": "%(prompt)s",
    "brace-zero": "{0}",
    "brace-empty": "a {} fox",
    "brace-class": "{__class__}",
    "brace-mro": "{0.__class__.__mro__}",
    "brace-prompt": "{prompt}",
    "brace-subject": "{subject}",
    "double-brace-subject": "{{subject}}",
    "dollar-brace": "${prompt}",
    "jinja": "{{7*7}}",
    "ruby-interpolation": "#{7*7}",
    "erb": "<%= 7*7 %>",
    "unclosed-brace": "a {fox",
    "lone-close-brace": "a fox}",
}

_MARKUP = {
    "script": "<script>alert(1)</script>",
    "img-onerror": "<img src=x onerror=alert(1)>",
    "svg-onload": "</title><svg/onload=alert(1)>",
    "javascript-url": "javascript:alert(1)",
    "html-comment": "<!-- a fox",
    "cdata-end": "]]>",
    "entities": "&amp;&lt;&gt;&quot;&#0;",
    "xml-declaration": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
}

_SQL = {
    "drop-table": "'; DROP TABLE jobs; --",
    "or-true": "1' OR '1'='1",
    "double-quote-or": '" OR 1=1 --',
    "bobby-tables": "Robert'); DROP TABLE Students;--",
    "union-select": "a' UNION SELECT prompt FROM jobs --",
}

_EMOJI = {
    "fox": "\U0001f98a",
    "family-zwj": "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "rainbow-flag": "\U0001f3f3\ufe0f\u200d\U0001f308",
    "skin-tone": "\U0001f44d\U0001f3fd",
    "regional-flag": "\U0001f1fa\U0001f1f3",
    "keycap": "1\ufe0f\u20e3",
    "heart-text-style": "\u2764",
    "heart-emoji-style": "\u2764\ufe0f",
    "tag-sequence-scotland": "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
}

_COMBINING = {
    "zalgo": "a f" + "\u0336\u0321\u032a\u032b\u0329\u0304\u0305\u0306\u0307\u0308" * 8 + "ox",
    "lone-combining-acute": "\u0301",
    "combining-at-start": "\u0301a fox",
    "stacked-marks": "e" + "\u0301" * 64,
    "devanagari": "\u0928\u092e\u0938\u094d\u0924\u0947",
    "thai": "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
}

# Pairs and triples a normaliser would merge (case folding, NFC/NFD/NFKC, invisible characters, trimming).
_TWIN_GROUPS: dict[str, dict[str, str]] = {
    "german-sharp-s": {
        "upper": "STRASSE",
        "sharp-s": "stra\u00dfe",
        "lower": "strasse",
        "capital-sharp-s": "STRA\u1e9eE",
    },
    "turkish-i": {"dotted-capital": "\u0130stanbul", "plain-lower": "istanbul", "dotless-lower": "\u0131stanbul"},
    "greek-sigma": {
        "upper": "\u03a3\u0399\u03a3\u03a5\u03a6\u039f\u03a3",
        "final-sigma": "\u03c3\u03b9\u03c3\u03c5\u03c6\u03bf\u03c2",
        "medial-sigma": "\u03c3\u03b9\u03c3\u03c5\u03c6\u03bf\u03c3",
    },
    "kelvin": {"kelvin-sign": "\u212a fox", "latin-k": "K fox"},
    "e-acute": {"nfc": "caf\u00e9", "nfd": "cafe\u0301"},
    "a-ring": {"nfc": "\u00c5ngstr\u00f6m", "angstrom-sign": "\u212bngstr\u00f6m", "nfd": "A\u030angstro\u0308m"},
    "hangul": {"syllable": "\ud55c", "jamo": "\u1112\u1161\u11ab"},
    "fullwidth": {"fullwidth": "\uff46\uff4f\uff58", "ascii": "fox"},
    "ligature": {"fi-ligature": "\ufb01re", "fi-letters": "fire"},
    "ohm": {"ohm-sign": "1 \u2126", "omega": "1 \u03a9"},
    "circled-digit": {"circled": "\u2460 fox", "digit": "1 fox"},
    "superscript": {"superscript": "x\u00b2", "digit": "x2"},
    "spaces": {"nbsp": "a\u00a0fox", "space": "a fox", "ideographic": "a\u3000fox", "en-space": "a\u2002fox"},
    "zero-width-inside": {"plain": "a red fox", "zwsp": "a red\u200b fox", "zwj": "a red\u200d fox"},
    "trimmed": {"leading-space": " a grey fox", "trailing-space": "a grey fox ", "bare": "a grey fox"},
    "case": {"lower": "a white fox", "title": "A White Fox", "upper": "A WHITE FOX"},
}

_ASTRAL = {
    "double-struck": "\U0001d557\U0001d560\U0001d569",
    "hieroglyphs": "\U00013000\U0001307f",
    "cjk-extension-b": "\U0002070e\U00020731\U00020779",
    "math-bold": "\U0001d400\U0001d401\U0001d402",
    "private-use-plane-16": "\U0010fffd",
    "plane-14-tags": "\U000e0041\U000e0042",
    "many-foxes": "\U0001f98a" * 100,
}

_WINDOWS = {
    "con": "CON",
    "con-lower": "con",
    "nul": "NUL",
    "prn": "PRN",
    "aux": "AUX",
    "com1": "COM1",
    "lpt1": "LPT1",
    "aux-txt": "aux.txt",
    "con-png": "CON.png",
    "nul-tar-gz": "nul.tar.gz",
    "com-superscript": "COM\u00b9",
    "mft": "$MFT",
    "desktop-ini": "desktop.ini",
    "alternate-stream": "a fox.png:Zone.Identifier:$DATA",
}

_TRAILING = {
    "trailing-dot": "a fox.",
    "trailing-dots": "a fox...",
    "trailing-space-dot": "a fox . . .",
    "trailing-spaces": "a fox   ",
    "trailing-dot-space": "a fox. ",
    "leading-dot": ".a fox",
    "leading-dash": "-a fox",
    "leading-double-dash": "--help",
}

_LONG = {
    "prose-4000": ("a fox in a forest, " * 211)[:4000],
    "emoji-4000": "\U0001f98a" * 4000,
    "nul-4000": "\x00" * 4000,
    "rlo-4000": "\u202e" * 4000,
    "mixed-10000": ("caf\u00e9 \U0001f98a \x01 ../ " * 1000)[:10_000],
    "over-the-cap-10001": "x" * 10_001,
    "word-255": "x" * 255,
    "word-256": "y" * 256,
    "word-4096": "z" * 4096,
    "two-byte-word-256": "\u00e4" * 256,
    "path-component-300": "a/" + "b" * 300 + "/c.png",
    "long-word-german": "Donaudampfschifffahrtselektrizit\u00e4tenhauptbetriebswerkbauunterbeamtengesellschaft",
}

_WHITESPACE_ONLY = {
    "one-space": " ",
    "spaces": "   ",
    "tab": "\t",
    "newline": "\n",
    "crlf": "\r\n",
    "carriage-return": "\r",
    "vertical-tab-form-feed": "\x0b\x0c",
    "mixed-ascii": " \t\n\r\x0b\x0c",
    "nbsp": "\u00a0",
    "ideographic-space": "\u3000",
    "line-separator": "\u2028",
    "paragraph-separator": "\u2029",
    "next-line": "\x85",
    "file-group-record-unit-separators": "\x1c\x1d\x1e\x1f",
    "em-spaces": "\u2003\u2003",
    "zero-width-space-only": "\u200b\u200b",
}

_NEWLINES = {
    "lf": "first line\nsecond line",
    "crlf": "first line\r\nsecond line",
    "cr": "first line\rsecond line",
    "line-separator": "first line\u2028second line",
    "paragraph-separator": "first line\u2029second line",
    "next-line": "first line\x85second line",
    "trailing-lf": "a fox\n",
    "leading-lf": "\na fox",
    "many-lf": "a\n\n\n\n\nfox",
    "json-lines-break": 'a fox"}\n{"injected": true',
}


def _control(code: int, around: tuple[str, str]) -> str:
    return f"{around[0]}{chr(code)}{around[1]}"


def hostile_prompts() -> list[Hostile]:
    """Return the corpus: every hostile prompt, named `category/name`, in a fixed order."""
    corpus: list[Hostile] = []

    def add(category: str, items: dict[str, str]) -> None:
        corpus.extend(Hostile(f"{category}/{name}", category, text) for name, text in items.items())

    add("traversal", _TRAVERSAL)
    add("c0", {f"u{code:04x}": _control(code, ("fox", "den")) for code in range(0x20)})
    add("c0", {"nul-only": "\x00", "nul-run": "\x00" * 16, "escape-sequence": "\x1b[2J\x1b]0;pwned\x07a fox"})
    add("del", {"del-inside": "fox\x7fden", "del-only": "\x7f"})
    add("c1", {f"u{code:04x}": _control(code, ("owl", "nest")) for code in range(0x80, 0xA0)})
    add("bidi", {name: f"a fox{char}gnp.exe" for name, char in _BIDI.items()})
    add("bidi", {"rlo-extension-spoof": "invoice\u202egnp.exe", "isolates-unclosed": "\u2067\u2066\u2068a fox"})
    add("invisible", {name: f"a{char}fox" for name, char in _INVISIBLE.items()})
    add("bom", _BOM_AND_NONCHARACTERS)
    add("yaml", _YAML)
    add("json", _JSON)
    add("shell", _SHELL)
    add("format", _FORMAT)
    add("markup", _MARKUP)
    add("sql", _SQL)
    add("emoji", _EMOJI)
    add("combining", _COMBINING)
    for group, members in _TWIN_GROUPS.items():
        add(f"twins-{group}", members)
    add("astral", _ASTRAL)
    add("windows", _WINDOWS)
    add("trailing", _TRAILING)
    add("long", _LONG)
    add("whitespace-only", _WHITESPACE_ONLY)
    add("newlines", _NEWLINES)
    return corpus


def twin_groups() -> list[list[str]]:
    """Return the names of each group of look-alike prompts that must stay distinct jobs."""
    return [[f"twins-{group}/{name}" for name in members] for group, members in _TWIN_GROUPS.items()]
