"""Small C text helpers for the generated sources: literals, identifiers, comments, const
arrays and parameter structs with designated initialisers (4-space indent, at most
ARRAY_LINE values per array line, comments kept short)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

COMMENT_NAME_MAX = 60  # longest tensor name quoted in a comment (longer ones are cut with "...")
LINE_MAX = 100  # the repo's .clang-format ColumnLimit


def c_float(x: float) -> str:
    """A float32 literal that reads back as the same float32."""
    s = f"{float(np.float32(x)):.9g}"
    if not any(c in s for c in ".en"):
        s += ".0"
    return s + "f"


def c_ident(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", s)


def c_string(s: str) -> str:
    """A C string literal of printable ASCII (anything else becomes '_')."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("_")
    return '"' + "".join(out) + '"'


def comment_text(s: str, limit: int = COMMENT_NAME_MAX) -> str:
    """`s` made safe inside a /* */ comment (printable ASCII, no comment delimiters) and cut to
    `limit` characters with a trailing "..." (tensor names copied from a model can run to
    hundreds of characters)."""
    s = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in s)
    s = s.replace("*/", "*_").replace("/*", "_*")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def shape(s: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in s) + "]"


def c_array(ctype: str, name: str, values: np.ndarray, per_line: int, align: int | None) -> str:
    """`static const ctype name[n] = {...};` with `per_line` values a line."""
    vals = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    if ctype == "int32_t":
        vals = [v if int(v) != -(1 << 31) else "INT32_MIN" for v in vals]
    lines = []
    for i in range(0, len(vals), per_line):
        lines.append("    " + ", ".join(vals[i : i + per_line]) + ",")
    al = f" TKD_ALIGN({align})" if align else ""
    return f"static const {ctype} {name}[{len(vals)}]{al} = {{\n" + "\n".join(lines) + "\n};\n"


def wrap_call(stmt: str, indent: str = "    ", limit: int = LINE_MAX) -> str:
    """`indent + stmt` for a one-line call statement, its arguments wrapped and aligned after
    the opening parenthesis when the line would be longer than `limit`."""
    line = indent + stmt
    open_at = stmt.find("(")
    if len(line) <= limit or open_at < 0 or not stmt.endswith(");"):
        return line
    head, args = stmt[: open_at + 1], stmt[open_at + 1 : -2].split(", ")
    pad = " " * (len(indent) + len(head))
    lines, cur = [], indent + head
    for k, a in enumerate(args):
        piece = a + (", " if k < len(args) - 1 else ");")
        if cur.strip() and cur != indent + head and len(cur + piece.rstrip()) > limit:
            lines.append(cur.rstrip())
            cur = pad
        cur += piece
    lines.append(cur.rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class Field:
    """One member of a params struct: `.name = value,` with an optional short comment."""

    name: str
    value: object  # int, str (a C expression) or a sequence of ints (an array member)
    comment: str = ""


def c_struct(ctype: str, name: str, rows: Sequence[Field | tuple[Field, ...]]) -> str:
    """`static const ctype name = { .field = value, ... };` with designated initialisers, one
    line per row (a Field, or a tuple of related Fields such as `.stride_h = 2, .stride_w = 2,`);
    the row's comments follow it."""
    lines = [f"static const {ctype} {name} = {{"]
    for row in rows:
        fields = row if isinstance(row, tuple) else (row,)
        parts, notes = [], []
        for f in fields:
            if isinstance(f.value, (list, tuple)):
                value = "{ " + ", ".join(str(v) for v in f.value) + " }"
            else:
                value = str(f.value)
            parts.append(f".{f.name} = {value},")
            if f.comment:
                notes.append(f.comment)
        line = "    " + " ".join(parts)
        if notes:
            line += f" /* {'; '.join(notes)} */"
        lines.append(line)
    return "\n".join(lines) + "\n};\n"
