"""Reading the shell examples of docs/ and comparing what they print with what the docs show.

A page is a sequence of fenced blocks. Each `sh` block runs, in page order, in one bash process
per page (so variables carry from block to block, as in a reader's terminal). The block right
below it (only blank lines between), when it is `text`, `json` or unlabelled, is what the docs
say it prints; every line of
it must appear in the actual output, in order (a page may leave lines out, never change them).
A curl line annotated `# 404 ...` or `# 409 illegal-transition` must answer that status (and
that problem type). Values that differ on every run (ids, times, tokens, cursors, request ids,
digests) are compared by shape: a UUID must still be a UUID. `...` in a shown line stands for
anything.

An HTML comment on the line before a block steers it (invisible in the rendered page):
`<!-- docs-test: skip -->` (not run: it starts a server, deletes data, takes long),
`<!-- docs-test: server -->` (the output of the service's start, compared with the real one),
`<!-- docs-test: unchecked -->` (run, but its shown output is an illustration).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[\w-]*)\s*$")
DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(?P<word>\w+)")
# Values that change on every run, each compared by its shape.
VOLATILE = {
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "timestamp": r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:\d{2})?",
    "http-date": r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT",
    "token": r"tn[ati]_[A-Za-z0-9]{49}",
    "token-prefix": r"tn[ati]_[A-Za-z0-9]{4}",
    "cursor": r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
    "hex32": r"[0-9a-f]{32}",
    "base64-digest": r"[A-Za-z0-9+/]{43}=",
    "etag": r'W?/?"[0-9a-f-]{8,}"',
}
VOLATILE_RE = {name: re.compile(pattern) for name, pattern in VOLATILE.items()}
# Fields whose values are random without a shape of their own.
VOLATILE_FIELDS = {"last_four": re.compile(r"[A-Za-z0-9]{4}")}
# Shown header lines whose value is the server's business (dates, lengths, the wait).
FREE_HEADERS = {"date", "content-length", "retry-after", "etag", "last-modified", "location"}
ANNOTATION = re.compile(r"#\s*(?P<status>[1-5]\d\d)\b[\s:,]*(?P<slug>[a-z][a-z-]+[a-z])?")
CURL = re.compile(r"(?<![\w-])curl\s")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    directive: str | None = None
    end: int = 0  # 1-based line of the closing fence


@dataclass
class Example:
    """An `sh` block and the output the page shows for it (None when it shows none)."""

    command: Block
    shown: Block | None
    expected_statuses: list[tuple[int | None, str | None]] | None = None


@dataclass
class Outcome:
    example: Example
    output: str
    exit_code: int
    statuses: list[int] = field(default_factory=list)


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, start = len(match["indent"]), index
        body: list[str] = []
        index += 1
        while index < len(lines) and not re.match(r"^ *```\s*$", lines[index]):
            body.append(lines[index][indent:] if lines[index][:indent].strip() == "" else lines[index])
            index += 1
        directive = None
        back = start - 1
        while back >= 0 and not lines[back].strip():
            back -= 1
        if back >= 0 and (found := DIRECTIVE.search(lines[back])):
            directive = found["word"]
        blocks.append(Block(start + 1, match["info"], "\n".join(body), directive, index + 1))
        index += 1
    return blocks


def examples(path: Path) -> list[Example]:
    blocks = read_blocks(path)
    found: list[Example] = []
    for position, block in enumerate(blocks):
        if block.info != "sh":
            continue
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        # What it prints is the block right below it, with nothing but blank lines between.
        adjacent = following is not None and following.line - block.end <= 2 and following.directive is None
        shown = following if adjacent and following is not None and following.info in ("text", "json", "") else None
        found.append(Example(block, shown, annotations(block.text)))
    return found


def logical_lines(script: str) -> list[str]:
    """Lines with their `\\` continuations joined."""
    return re.sub(r"\\\n\s*", " ", script).splitlines()


def annotations(script: str) -> list[tuple[int | None, str | None]] | None:
    """Per curl line, in order, the status its comment promises (None: no promise); None when
    no line promises one, or a loop may run curl more than once."""
    promised: list[tuple[int | None, str | None]] = []
    for line in logical_lines(script):
        if re.match(r"\s*(for|while|until)\b", line):
            return None
        if not CURL.search(line):
            continue
        comment = line.split(" # ", 1)[1] if " # " in line else ""
        match = ANNOTATION.match("#" + comment) if comment else None
        if match is None:
            promised.append((None, None))
            continue
        slug = match["slug"] if int(match["status"]) >= 400 else None
        promised.append((int(match["status"]), slug))
    return promised if any(status is not None for status, _ in promised) else None


# --- comparing ------------------------------------------------------------------------------------


def _volatile_kind(value: str) -> str | None:
    for name, pattern in VOLATILE_RE.items():
        if pattern.fullmatch(value):
            return name
    return None


def same_json(shown: Any, actual: Any, where: str = "$") -> str | None:
    """None when `actual` has the shown structure and values (volatile ones by shape)."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {actual!r}"
        if set(shown) != set(actual):
            return f"{where}: keys differ: shown {sorted(shown)}, actual {sorted(actual)}"
        for key in shown:
            field = VOLATILE_FIELDS.get(key)
            if field is not None and isinstance(actual[key], str) and field.fullmatch(actual[key]):
                continue
            if problem := same_json(shown[key], actual[key], f"{where}.{key}"):
                return problem
        return None
    if isinstance(shown, list):
        if not isinstance(actual, list) or len(shown) != len(actual):
            return f"{where}: expected a list of {len(shown)}, got {actual!r}"
        for index, (a, b) in enumerate(zip(shown, actual, strict=True)):
            if problem := same_json(a, b, f"{where}[{index}]"):
                return problem
        return None
    if isinstance(shown, str) and (kind := _volatile_kind(shown)) is not None:
        if isinstance(actual, str) and VOLATILE_RE[kind].fullmatch(actual):
            return None
        return f"{where}: expected a {kind}, got {actual!r}"
    if isinstance(shown, str) and isinstance(actual, str) and shown != actual:
        # A string with a volatile part, such as a path with an id in it.
        return None if line_pattern(shown).fullmatch(actual) else f"{where}: shown {shown!r}, actual {actual!r}"
    if shown != actual or type(shown) is not type(actual):
        return f"{where}: shown {shown!r}, actual {actual!r}"
    return None


def line_pattern(shown: str) -> re.Pattern[str]:
    """A shown line as a pattern: volatile values by shape, `...` or `…` for anything."""
    combined = "|".join(f"(?:{pattern})" for pattern in VOLATILE.values())
    parts: list[str] = []
    position = 0
    for match in re.finditer(rf"\.\.\.|…|{combined}", shown):
        parts.append(re.escape(shown[position : match.start()]))
        token = match.group(0)
        parts.append(".*?" if token in ("...", "…") else f"(?:{VOLATILE[_volatile_kind(token) or 'uuid']})")
        position = match.end()
    parts.append(re.escape(shown[position:]))
    return re.compile("".join(parts), re.DOTALL)


def line_matches(shown: str, actual: str) -> bool:
    shown, actual = shown.strip(), actual.strip()
    header = re.match(r"^([A-Za-z0-9-]+):\s*(.*)$", shown)
    if header and not shown.startswith("{") and header.group(1).lower() in FREE_HEADERS:
        return actual.lower().startswith(header.group(1).lower() + ":")
    if shown.startswith(("{", "[")):
        try:
            expected, got = json.loads(shown), json.loads(actual)
        except ValueError:
            pass
        else:
            return same_json(expected, got) is None
    return line_pattern(shown).fullmatch(actual) is not None


def split_documents(line: str) -> list[str]:
    """`curl -s` ends a body without a newline, so the next answer follows on the same line:
    split a run of JSON documents (and any text after them) into one line each."""
    if not line.lstrip().startswith(("{", "[")):
        return [line]
    decoder = json.JSONDecoder()
    parts: list[str] = []
    position = len(line) - len(line.lstrip())
    while position < len(line) and line[position] in "{[":
        try:
            _, end = decoder.raw_decode(line, position)
        except ValueError:
            break
        parts.append(line[position:end])
        position = end
    if position < len(line) and line[position:].strip():
        parts.append(line[position:])
    return parts or [line]


def missing_lines(shown: str, output: str) -> list[str]:
    """The shown lines that do not appear, in order, in the output."""
    actual = [part for line in output.splitlines() if line.strip() for part in split_documents(line.rstrip("\r"))]
    missing: list[str] = []
    position = 0
    for line in (line for line in shown.splitlines() if line.strip()):
        for index in range(position, len(actual)):
            if line_matches(line, actual[index]):
                position = index + 1
                break
        else:
            missing.append(line)
    return missing


def explain(shown: str, output: str) -> str:
    """For a failure message: the first shown JSON line against the closest actual one."""
    for line in shown.splitlines():
        if line.strip().startswith("{"):
            try:
                expected = json.loads(line)
            except ValueError:
                continue
            for candidate in (part for line in output.splitlines() for part in split_documents(line)):
                try:
                    got = json.loads(candidate)
                except ValueError:
                    continue
                if isinstance(got, dict) and isinstance(expected, dict) and set(got) & set(expected):
                    return same_json(expected, got) or ""
    return ""
