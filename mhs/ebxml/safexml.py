"""A hardened lxml parser for XML from the network: no DTDs, no entities, no network."""

from __future__ import annotations

import threading

from lxml import etree

from mhs.ebxml.model import EbxmlError

_BOM = b"\xef\xbb\xbf"
_XML_SPACE = b" \t\r\n"
_XML_SPACE_TEXT = " \t\r\n"
_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers keep state while parsing, so each thread gets its own.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def _prolog_has_doctype(data: bytes) -> bool:
    # Only the prolog (declaration, comments, processing instructions, blanks) is walked,
    # so "<!DOCTYPE" inside a CDATA section or a comment later on is not mistaken for one.
    pos = len(_BOM) if data.startswith(_BOM) else 0
    end = len(data)
    while pos < end:
        if data[pos] in _XML_SPACE:
            pos += 1
        elif data.startswith(b"<?", pos):
            close = data.find(b"?>", pos + 2)
            if close < 0:
                return False
            pos = close + 2
        elif data.startswith(b"<!--", pos):
            close = data.find(b"-->", pos + 4)
            if close < 0:
                return False
            pos = close + 3
        else:
            return data.startswith(b"<!DOCTYPE", pos)
    return False


def parse_xml(data: bytes, where: str) -> etree._Element:
    """Parse ``data`` as XML, refusing any DTD; errors name ``where`` the XML came from."""
    # A DTD is refused before libxml2 sees it, so entity declarations (billion laughs,
    # external entities such as file:///etc/passwd) are never even read.
    if _prolog_has_doctype(data):
        raise EbxmlError(f"{where}: a DOCTYPE is not allowed (no DTDs or entity declarations)")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as error:
        raise EbxmlError(f"{where}: XML is not well formed: {error}") from None
    except (ValueError, LookupError) as error:
        # lxml raises these for an unusable encoding declaration.
        raise EbxmlError(f"{where}: XML cannot be read: {error}") from None
    if not isinstance(root, etree._Element):
        raise EbxmlError(f"{where}: XML has no root element")
    # Second line of defence: encodings the prolog scan cannot read (UTF-16) still get here.
    if root.getroottree().docinfo.internalDTD is not None:
        raise EbxmlError(f"{where}: a DOCTYPE is not allowed (no DTDs or entity declarations)")
    return root


def text_of(element: etree._Element | None) -> str | None:
    """The stripped text of ``element``, or None when it is absent or empty."""
    if element is None:
        return None
    text = element.text
    if text is None:
        return None
    text = text.strip(_XML_SPACE_TEXT)
    return text or None
