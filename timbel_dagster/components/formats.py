"""Safe, fast readers for the formats manifests come in (YAML, XML)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import yaml

# libyaml's loader is many times faster than the pure-Python one on lockfiles.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOCTYPE = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def load_yaml(text: str) -> Any:
    """One YAML document, safely (no Python objects)."""
    return yaml.load(text, Loader=_LOADER)


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a multi-document YAML stream, empty ones dropped."""
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc is not None]


def parse_xml(text: str) -> ET.Element:
    """The root element of an XML document with namespaces removed from tag names.

    Documents with a DTD are refused: manifests never need one, and entity declarations are
    how XML bombs and external-entity reads get in.
    """
    if _DOCTYPE.search(text):
        raise ValueError("XML with a DOCTYPE or ENTITY declaration is not read")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise ValueError(f"invalid XML: {error}") from None
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.rpartition("}")[2]
    return root


def child_text(element: ET.Element | None, tag: str) -> str | None:
    """The stripped text of `element`'s first `tag` child, or None."""
    if element is None:
        return None
    child = element.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None
