"""Every command a message suggests is a command that works: each `tinykd …` in a string of the
package (docstrings aside: they name commands, they don't hand them to the user) parses with the
CLI as it is, its placeholders filled with a value the option accepts."""

import ast
import re
from pathlib import Path

import click
import pytest

from tinykd.cli import main

PACKAGE = Path(__file__).resolve().parents[1] / "tinykd"
SUGGESTED = re.compile(r"`(tinykd(?: [^`]+)?)`")
PLACEHOLDER = re.compile(r"^(\{[^}]*\}|<[^>]*>|[A-Z][A-Z0-9_]*(\.[a-z]+)?|\S*[{<].*)$")


def _message_strings(tree: ast.AST) -> list[str]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    strings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # an f-string: its text with {expressions} as placeholders
            strings.append("".join(v.value if isinstance(v, ast.Constant) else "{x}" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            strings.append(node.value)
    return strings


def suggested_commands() -> list[tuple[str, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for text in _message_strings(ast.parse(path.read_text())):
            for match in SUGGESTED.finditer(text):
                found.append((str(path.relative_to(PACKAGE.parent)), match.group(1)))
    return sorted(set(found))


def _fill(command: click.Command, words: list[str], tmp_path: Path) -> list[str]:
    """Replace placeholders ({board.name}, <chosen>, FILE, NAME …) by a value the option accepts."""
    params = {opt: p for p in command.params for opt in getattr(p, "opts", [])}
    filled = []
    for i, word in enumerate(words):
        if PLACEHOLDER.match(word) and not word.startswith("-"):
            param = params.get(words[i - 1]) if i else None
            kind = getattr(param, "type", None)
            if isinstance(kind, click.Choice):
                word = kind.choices[0]
            elif isinstance(kind, click.IntRange | click.types.IntParamType):
                word = "1"
            elif getattr(kind, "file_okay", True) is False:
                word = str(tmp_path / "placeholder-folder")  # an option that takes a folder
                Path(word).mkdir(exist_ok=True)
            else:
                word = str(tmp_path / "placeholder")
                Path(word).touch()
        filled.append(word)
    return filled


def test_there_are_hints_to_check():
    assert len(suggested_commands()) > 20


@pytest.mark.parametrize("where,text", suggested_commands())
def test_suggested_command_parses(where, text, tmp_path):
    words = text.split()[1:]
    if not words:
        return  # `tinykd` alone
    group_ctx = main.make_context("tinykd", [], resilient_parsing=True)
    command = main.get_command(group_ctx, words[0])
    assert command is not None, f"{where} suggests `{text}`: there is no command {words[0]!r}"
    args = _fill(command, words[1:], tmp_path)
    if isinstance(command, click.Group):
        if not args:
            return
        sub = command.get_command(group_ctx, args[0])
        assert sub is not None, f"{where} suggests `{text}`: {words[0]} has no subcommand {args[0]!r}"
        command, args = sub, _fill(sub, args[1:], tmp_path)
    try:
        command.make_context(words[0], args, parent=group_ctx)
    except click.UsageError as exc:
        pytest.fail(f"{where} suggests `{text}`, which the CLI refuses: {exc.format_message()}")
