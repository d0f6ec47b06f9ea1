"""Safe, fast readers for the formats manifests come in (YAML, XML).

YAML is read by `timbel_dagster.safe_yaml` (alias expansion and nesting bounded, safe types
only); XML here, where a document with a DTD is refused.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # nosec B405  # parse_xml refuses DTDs: see there

_DOCTYPE = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def parse_xml(text: str) -> ET.Element:
    """The root element of an XML document with namespaces removed from tag names.

    Documents with a DTD are refused: manifests never need one, and entity declarations are
    how XML bombs and external-entity reads get in.
    """
    if _DOCTYPE.search(text):
        raise ValueError("XML with a DOCTYPE or ENTITY declaration is not read")
    try:
        # Bandit's B314 accepted: a document without a DOCTYPE declares no entity (no
        # expansion bomb, no external read); `text` is str, so expat reads it as UTF-8
        # whatever encoding it declares, and cannot hide a DOCTYPE from the check above.
        root = ET.fromstring(text)  # nosec B314
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
