# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write Nix expressions from Python data, and add an import to a NixOS configuration.nix.

The renderer is deterministic: the same data gives the same bytes whatever the order of the
dictionaries, so a second run of a module that writes a NixOS module changes nothing. The output
is formatted the way nixpkgs-fmt would lay it out: two-space indentation, one element per line.

The imports editor only edits what it fully understands (one literal `imports = [ ... ];` list in
the module's top-level attribute set) and otherwise refuses with the exact line to add by hand.
"""

from __future__ import annotations

import math
import posixpath
import re

_IDENTIFIER = re.compile(r"[a-zA-Z_][a-zA-Z0-9_'-]*\Z")
# Words the Nix lexer never reads as an identifier; as attribute names they must be quoted.
_KEYWORDS = frozenset(("assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"))
_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 63 - 1
INDENT = "  "


class NixRaw:
    """A Nix expression written verbatim, for the few values data cannot express (`pkgs.bash`).

    Use it sparingly: the text is not checked here, only by `nix-instantiate --parse` later.
    """

    __slots__ = ("text",)

    def __init__(self, text: str):
        if not isinstance(text, str) or not text.strip():
            raise ValueError("NixRaw needs a non-empty expression")
        self.text = text

    def __eq__(self, other):
        return isinstance(other, NixRaw) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return f"NixRaw({self.text!r})"


def render_string(value: str) -> str:
    """A double-quoted Nix string; `${` is escaped so that nothing is interpolated.

    Refused (ValueError): a NUL character, which ends the string where Nix reads it (`"a<NUL>b"`
    evaluates to `"a"`), and text that is not Unicode (a lone surrogate cannot be written as UTF-8).
    """
    if "\x00" in value:
        raise ValueError(f"{value!r} contains a NUL character, which ends a Nix string where Nix reads it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{value!r} is not valid UTF-8 text") from None
    out = []
    for index, char in enumerate(value):
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "$" and value[index + 1:index + 2] == "{":
            out.append("\\$")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def render_key(key) -> str:
    """An attribute name: bare when Nix reads it as an identifier, quoted otherwise (`"a.b"` is one name)."""
    if not isinstance(key, str):
        raise TypeError(f"attribute names must be strings, got {key!r} ({type(key).__name__})")
    if _IDENTIFIER.match(key) and key not in _KEYWORDS:
        return key
    return render_string(key)


def _render_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{value!r} has no Nix literal")
    text = repr(value)
    # Nix float literals need a dot before any exponent: `1e+20` is not one, `1.0e+20` is.
    mantissa, _sep, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + ("e" + exponent if exponent else "")


def _render_scalar(value) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError(f"{value} does not fit a Nix integer (64-bit signed)")
        if value == _INT_MIN:
            # Nix reads `-N` as a negation of N, and 2^63 itself is not an integer literal.
            return f"({_INT_MIN + 1} - 1)"
        return str(value)
    if isinstance(value, float):
        return _render_float(value)
    if isinstance(value, str):
        return render_string(value)
    if isinstance(value, NixRaw):
        return value.text
    return None


def _needs_parens_in_list(value, text: str) -> bool:
    # A list element is a single term: `-1` or `lib.mkForce x` would be split into several.
    if isinstance(value, NixRaw):
        return bool(re.search(r"\s", text)) and not (text.startswith("(") and text.endswith(")"))
    return text.startswith("-")


def render(value, indent: int = 0, where: str = "value") -> str:
    """Render value as a Nix expression whose first line is not indented and later lines are at `indent`."""
    try:
        scalar = _render_scalar(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if scalar is not None:
        return scalar
    pad, inner = INDENT * indent, INDENT * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{ }"
        for key in value:
            try:
                render_key(key)  # fail on a bad key before sorting can
            except ValueError as exc:
                raise ValueError(f"{where}: attribute name {exc}") from None
        lines = ["{"]
        for key in sorted(value):
            lines.append(f"{inner}{render_key(key)} = {render(value[key], indent + 1, f'{where}.{key}')};")
        lines.append(pad + "}")
        return "\n".join(lines)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[ ]"
        lines = ["["]
        for position, item in enumerate(value):
            text = render(item, indent + 1, f"{where}[{position}]")
            if _needs_parens_in_list(item, text):
                text = f"({text})"
            lines.append(inner + text)
        lines.append(pad + "]")
        return "\n".join(lines)
    raise TypeError(f"{where}: cannot write a {type(value).__name__} ({value!r}) as Nix")


def render_module(body: dict, header_comment: str = "", args=("config", "lib", "pkgs")) -> str:
    """A complete NixOS module file: comment lines, the argument pattern, the body attribute set."""
    if not isinstance(body, dict):
        raise TypeError(f"a NixOS module body must be a dict, got {type(body).__name__}")
    lines = [("# " + line).rstrip() for line in header_comment.splitlines()] if header_comment else []
    pattern = ", ".join(list(args) + ["..."])
    lines.append("{ " + pattern + " }:")
    lines.append(render(body, 0, "content"))
    return "\n".join(lines) + "\n"


# --- adding an import to configuration.nix --------------------------------------------------

class ImportEditError(ValueError):
    """configuration.nix has no imports list this module can edit safely. `.line` is what to add by hand."""

    def __init__(self, source: str, reason: str, line: str, import_path: str):
        self.source, self.reason, self.line = source, reason, line
        where = "the top-level attribute set" if line.startswith("imports") else "the module's imports list"
        super().__init__(
            f"{source}: cannot add {import_path} to the imports safely: {reason}. "
            f"Add it yourself: put `{line}` in {where} of {source}, then run this again"
        )


class NixSyntaxError(ValueError):
    """The tokenizer met something it cannot read (an unterminated string or comment)."""


_PATH_CHAR = r"[a-zA-Z0-9._+-]"
_CODE_TOKENS = re.compile(
    "|".join((
        r"(?P<uri>[a-zA-Z][a-zA-Z0-9+.-]*:[a-zA-Z0-9%/?:@&=+$,_.!~*'-]+)",
        rf"(?P<path>{_PATH_CHAR}*(?:/{_PATH_CHAR}+)+/?|~(?:/{_PATH_CHAR}+)+/?|<{_PATH_CHAR}+(?:/{_PATH_CHAR}+)*>)",
        r"(?P<id>[a-zA-Z_][a-zA-Z0-9_'-]*)",
        r"(?P<num>[0-9][0-9.eE+-]*)",
        r"(?P<space>\s+)",
        r"(?P<punct>\.\.\.|\+\+|//|==|!=|<=|>=|&&|\|\||->|[{}\[\]();:=.,@?!+*/<>|&-])",
    ))
)


class _Token:
    __slots__ = ("kind", "text", "start", "end")

    def __init__(self, kind, text, start, end):
        self.kind, self.text, self.start, self.end = kind, text, start, end


class _Scanner:
    """A Nix lexer just good enough to find brackets and identifiers outside comments and strings."""

    def __init__(self, text: str):
        self.text = text

    def line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def tokens(self) -> list:
        tokens, end = self._code(0, nested=False)
        return tokens

    def _code(self, pos: int, nested: bool):
        """Scan code from pos; when nested (inside `${`), stop at the `}` that closes it."""
        text, tokens, depth = self.text, [], 0
        while pos < len(text):
            char = text[pos]
            if char == "#":
                newline = text.find("\n", pos)
                pos = len(text) if newline < 0 else newline
                continue
            if text.startswith("/*", pos):
                close = text.find("*/", pos + 2)
                if close < 0:
                    raise NixSyntaxError(f"line {self.line_of(pos)}: comment /* is never closed")
                pos = close + 2
                continue
            if char == '"':
                end = self._string(pos + 1, pos)
                tokens.append(_Token("str", text[pos:end], pos, end))
                pos = end
                continue
            if text.startswith("''", pos):
                end = self._indented_string(pos + 2, pos)
                tokens.append(_Token("str", text[pos:end], pos, end))
                pos = end
                continue
            if text.startswith("${", pos):  # dynamic attribute name in code
                _inner, end = self._code(pos + 2, nested=True)
                tokens.append(_Token("interp", text[pos:end], pos, end))
                pos = end
                continue
            if nested and char == "}" and depth == 0:
                return tokens, pos + 1
            match = _CODE_TOKENS.match(text, pos)
            if not match:
                tokens.append(_Token("punct", char, pos, pos + 1))
                pos += 1
                continue
            kind = match.lastgroup
            if kind != "space":
                tokens.append(_Token(kind, match.group(), pos, match.end()))
                if nested and match.group() == "{":
                    depth += 1
                elif nested and match.group() == "}":
                    depth -= 1
            pos = match.end()
        if nested:
            raise NixSyntaxError("an interpolation ${ is never closed")
        return tokens, pos

    def _string(self, pos: int, start: int) -> int:
        text = self.text
        while pos < len(text):
            char = text[pos]
            if char == "\\":
                pos += 2
            elif char == '"':
                return pos + 1
            elif text.startswith("${", pos):
                _inner, pos = self._code(pos + 2, nested=True)
            else:
                pos += 1
        raise NixSyntaxError(f"line {self.line_of(start)}: string is never closed")

    def _indented_string(self, pos: int, start: int) -> int:
        text = self.text
        while pos < len(text):
            if text.startswith("''", pos):
                if text.startswith("'''", pos) or text.startswith("''$", pos):
                    pos += 3
                elif text.startswith("''\\", pos):
                    pos += 4
                else:
                    return pos + 2
            elif text.startswith("${", pos):
                _inner, pos = self._code(pos + 2, nested=True)
            else:
                pos += 1
        raise NixSyntaxError(f"line {self.line_of(start)}: indented string '' is never closed")


_IMPORT_PATH = re.compile(rf"(?:\.{{1,2}}|~)?(?:/{_PATH_CHAR}+)+\Z")
_OPENERS = {"{": "}", "[": "]", "(": ")"}


def _normalize_import(token: _Token) -> str | None:
    if token.kind == "path":
        text = token.text
    elif token.kind == "str" and token.text.startswith('"') and "\\" not in token.text and "${" not in token.text:
        text = token.text[1:-1]
    else:
        return None
    relative = text.startswith("./") or text.startswith("../")
    normal = posixpath.normpath(text)
    return "./" + normal if relative and not normal.startswith("..") else normal


def _find_imports_list(text: str, source: str, import_path: str, line: str):
    """Return (tokens, index of `[`, index of `]`) of the one imports list, or raise ImportEditError."""
    def refuse(reason):
        raise ImportEditError(source, reason, line, import_path)

    try:
        tokens = _Scanner(text).tokens()
    except NixSyntaxError as exc:
        refuse(f"cannot read the file ({exc})")
    scanner = _Scanner(text)
    found = [index for index, token in enumerate(tokens) if token.kind == "id" and token.text == "imports"]
    if not found:
        raise ImportEditError(source, "it has no `imports` list", f"imports = [ {import_path} ];", import_path)
    if len(found) > 1:
        lines = ", ".join(str(scanner.line_of(tokens[index].start)) for index in found)
        refuse(f"`imports` appears {len(found)} times (lines {lines}), so which list is the module's is ambiguous")
    index = found[0]
    where = f"line {scanner.line_of(tokens[index].start)}"
    stack = []
    for token in tokens[:index]:
        if token.text in _OPENERS and token.kind == "punct":
            stack.append(token.text)
        elif token.kind == "punct" and token.text in ("}", "]", ")"):
            if not stack or _OPENERS[stack.pop()] != token.text:
                refuse(f"unbalanced brackets before {where}")
    if stack != ["{"] or (index and tokens[index - 1].text == "."):
        refuse(f"the `imports` on {where} is not an attribute of the module's top-level set")
    following = tokens[index + 1:index + 3]
    if len(following) < 2 or following[0].text != "=" or following[1].text != "[":
        refuse(f"the `imports` on {where} is not a literal list (`imports = [ ... ];`)")
    open_index, depth = index + 2, 0
    for close_index in range(open_index, len(tokens)):
        token = tokens[close_index]
        if token.kind != "punct":
            continue
        if token.text in _OPENERS:
            depth += 1
        elif token.text in ("}", "]", ")"):
            depth -= 1
            if depth == 0:
                break
    else:
        refuse(f"the imports list on {where} is never closed")
    if tokens[close_index].text != "]":
        refuse(f"unbalanced brackets in the imports list on {where}")
    if close_index + 1 >= len(tokens) or tokens[close_index + 1].text != ";":
        refuse(f"the imports list on {where} is combined with something else (only `imports = [ ... ];` is edited)")
    return tokens, open_index, close_index


def check_import_path(import_path: str) -> None:
    if not isinstance(import_path, str) or not _IMPORT_PATH.match(import_path):
        raise ValueError(f"{import_path!r} is not a Nix path literal such as ./remote-builder.nix or /etc/nixos/remote-builder.nix")


def is_imported(configuration_nix_text: str, import_path: str, source: str = "configuration.nix") -> bool:
    """Whether the one imports list already holds import_path (False when there is no editable list)."""
    check_import_path(import_path)
    try:
        return add_import(configuration_nix_text, import_path, source) == configuration_nix_text
    except ImportEditError:
        return False


def add_import(configuration_nix_text: str, import_path: str, source: str = "configuration.nix") -> str:
    """Add import_path to the top-level `imports = [ ... ];` list, keeping every other byte.

    Returns the text unchanged when the path is already listed. Raises ImportEditError (whose
    message names the line to add by hand) when there is no single literal list to edit.
    """
    check_import_path(import_path)
    text = configuration_nix_text
    tokens, open_index, close_index = _find_imports_list(text, source, import_path, import_path)
    wanted = _normalize_import(_Token("path", import_path, 0, 0))
    depth = 0
    for token in tokens[open_index + 1:close_index]:
        if token.kind == "punct" and token.text in _OPENERS:
            depth += 1
        elif token.kind == "punct" and token.text in ("}", "]", ")"):
            depth -= 1
        elif depth == 0 and _normalize_import(token) == wanted:
            return text

    close = tokens[close_index].start
    line_start = text.rfind("\n", 0, close) + 1
    if text[line_start:close].strip():
        # `[ ./a.nix ]` on one line: add the element before the bracket, on the same line.
        before = text[close - 1] if close else ""
        trailing = " " if before.isspace() or close_index == open_index + 1 else ""
        addition = ("" if before.isspace() else " ") + import_path + trailing
        return text[:close] + addition + text[close:]
    # The `]` is on its own line: a new line before it, indented like the last element.
    last = tokens[close_index - 1] if close_index - 1 > open_index else None
    if last is not None:
        last_line = text.rfind("\n", 0, last.start) + 1
        indent = re.match(r"[ \t]*", text[last_line:]).group()
        if last_line == text.rfind("\n", 0, tokens[open_index].start) + 1:
            # The last element shares the `[`'s line (`[ ./a.nix`): align under the first element.
            indent = " " * (tokens[open_index + 1].start - last_line)
    else:
        indent = text[line_start:close] + INDENT
    return text[:line_start] + indent + import_path + "\n" + text[line_start:]


def references_path(text: str, import_path: str) -> bool:
    """Whether the Nix code in text mentions import_path as a path (or plain string) anywhere outside comments."""
    check_import_path(import_path)
    wanted = _normalize_import(_Token("path", import_path, 0, 0))
    try:
        tokens = _Scanner(text).tokens()
    except NixSyntaxError:
        return False
    return any(_normalize_import(token) == wanted for token in tokens)


RAW_MARKER = "__nix_raw"


def from_data(value, where: str = "content"):
    """Turn data from YAML into renderable values: a dict whose only key is `__nix_raw` becomes NixRaw."""
    if isinstance(value, dict):
        if RAW_MARKER in value:
            if len(value) != 1 or not isinstance(value[RAW_MARKER], str):
                raise ValueError(f"{where}: a raw Nix expression is written as {{{RAW_MARKER}: \"pkgs.bash\"}}, with no other keys")
            return NixRaw(value[RAW_MARKER])
        return {key: from_data(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_data(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value
