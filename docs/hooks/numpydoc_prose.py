"""A griffe extension (mkdocstrings' ``extensions:`` in mkdocs.yml) that reads awdvd's house numpydoc.

awdvd's docstrings put a parameter's prose where numpydoc puts its type (``stride : window step in px ...``; the
types are in the signature), write a return value as a sentence (``(H, W) float32 restored image ...``) and an
exception with its condition on one line (``ValueError if ...``), and cross-reference with Sphinx roles
(``:func:`defocus_psf```). Read as strict numpydoc that prose would land in the type slot. This extension
rewrites a docstring to strict numpydoc just before mkdocstrings parses it; the source is not changed:

- ``name : prose`` in Parameters / Other Parameters / Attributes -> ``name`` + indented prose (the type then
  comes from the signature); in Returns / Yields -> ``name :`` + indented prose;
- a Returns / Yields section that is prose -> one unnamed item (type from the signature) with that prose;
- ``SomeError prose`` in Raises / Warns -> ``SomeError`` + indented prose;
- a continuation line at any indentation -> 4 spaces (numpydoc's rule);
- ``:role:`~pkg.name``` -> ``name`` as code.
"""

from __future__ import annotations

import re
from functools import cached_property

import griffe

_NAMED_ITEMS = {"parameters", "other parameters", "attributes"}
_RETURN_ITEMS = {"returns", "yields", "receives"}
_EXCEPTION_ITEMS = {"raises", "warns"}
_SECTIONS = _NAMED_ITEMS | _RETURN_ITEMS | _EXCEPTION_ITEMS | {
    "deprecated", "type parameters", "examples", "functions", "methods", "classes", "type aliases", "modules",
    "notes", "references", "see also", "warnings"}

_NAMES = re.compile(r"^(?P<names>\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*:(?:\s+(?P<text>.*))?$")
_EXCEPTION = re.compile(r"^(?P<name>(?:\w+\.)*[A-Z]\w*(?:Error|Warning|Exception|Interrupt|Exit))(?:[\s:,;]+(?P<text>.*))?$")
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const|term|ref):`~?(?P<target>[^`]+)`")
_UNNAMED = "awdvd_unnamed_item_"


def _role(match: re.Match) -> str:
    target = match.group("target")
    shown = target.rsplit(".", 1)[-1] if match.group(0).split("`")[1].startswith("~") else target
    return f"`{shown}`"


def _is_header(lines: list[str], index: int) -> bool:
    if index + 1 >= len(lines):
        return False
    dashes = lines[index + 1].strip()
    return lines[index].strip().lower() in _SECTIONS and bool(dashes) and set(dashes) == {"-"}


def strict_numpydoc(text: str) -> str:
    """``text`` (a cleaned docstring in awdvd's style) as strict numpydoc (see the module docstring)."""
    lines = _ROLE.sub(_role, text).split("\n")
    out: list[str] = []
    section = None
    continuation_indent = None  # indentation of the current item's first continuation line
    index = 0
    while index < len(lines):
        line = lines[index]
        if _is_header(lines, index):
            section = lines[index].strip().lower()
            out += [line, lines[index + 1]]
            index += 2
            first_item = True
            continue
        index += 1
        if section not in _NAMED_ITEMS | _RETURN_ITEMS | _EXCEPTION_ITEMS or not line.strip():
            out.append(line)
            continue
        if line[0].isspace():  # a continuation line
            indent = len(line) - len(line.lstrip())
            continuation_indent = indent if continuation_indent is None else continuation_indent
            out.append("    " + " " * max(0, indent - continuation_indent) + line.lstrip())
            continue
        named = _NAMES.match(line)
        exception = _EXCEPTION.match(line)
        if section in _NAMED_ITEMS and named:
            item = [named.group("names")]
            text_part = named.group("text")
        elif section in _RETURN_ITEMS and named and "," not in named.group("names"):
            item = [named.group("names") + " :"]
            text_part = named.group("text")
        elif section in _RETURN_ITEMS and first_item:
            item, text_part = [_UNNAMED + " :"], line
        elif section in _EXCEPTION_ITEMS and exception:
            item = [exception.group("name")]
            text_part = exception.group("text")
        elif section in _EXCEPTION_ITEMS and first_item:
            item, text_part = [_UNNAMED], line
        else:  # prose flush with the items: it continues the item above
            out.append("    " + line)
            continue
        first_item = False
        continuation_indent = None
        out += item + (["    " + text_part] if text_part else [])
    return "\n".join(out)


class _HouseDocstring(griffe.Docstring):
    """A docstring parsed as strict numpydoc after :func:`strict_numpydoc`; unnamed items lose their stand-in
    name."""

    @cached_property
    def parsed(self):
        original = self.value
        self.value = strict_numpydoc(original)
        try:
            sections = self.parse()
        finally:
            self.value = original
        signature = getattr(self.parent, "parameters", None)
        for section in sections:
            for item in section.value if isinstance(section.value, list) else ():
                if getattr(item, "name", None) == _UNNAMED:
                    item.name = ""
                if str(getattr(item, "annotation", "")) == _UNNAMED:
                    item.annotation = None
                # griffe gives every name of "a, b : ..." the first one's type and default: take each its own
                if (section.kind is griffe.DocstringSectionKind.parameters and signature is not None
                        and item.name in signature):
                    item.annotation = signature[item.name].annotation
                    item.value = signature[item.name].default
        return sections


class HouseNumpydoc(griffe.Extension):
    """Parse every awdvd docstring with :class:`_HouseDocstring`."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None and type(obj.docstring) is griffe.Docstring:
            obj.docstring.__class__ = _HouseDocstring
