"""The CMS bytes inside a server token file, however the admin's tools saved it.

Apple sends a MIME entity (four headers, a blank line, base64 of a BER CMS EnvelopedData). Between
Apple Business Manager and the upload field the same bytes can gain a byte order mark (UTF-8 or
UTF-16, from an editor), other line ends, blank lines or indentation, lose the headers (bare base64),
be decoded to raw DER/BER, be converted to PEM by openssl (``-----BEGIN PKCS7-----`` or ``CMS``), or
be re-saved by a mail client: more headers, folded ones, names and values in another case, or the
whole forwarded message with the token as its attachment, and re-encode the token part as
quoted-printable (the base64 text, or the whole token file as an attachment, wrapped in soft line breaks
with its ``=`` padding as ``=3D``). Each of those is still the token. MIME is read with the standard
library's e-mail parser, which already knows folding, case, line ends and transfer encodings.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import re

from .certs import pem_blocks
from .errors import CorruptToken, NotATokenFile

# DER of the envelopedData OID (1.2.840.113549.1.7.3): how we recognise a damaged token.
ENVELOPED_DATA_OID = bytes.fromhex("06092a864886f70d010703")
TOKEN_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
NOT_TEXT = ("This file is not an Apple server token (expected a *_smime.p7m file downloaded from Apple "
            "Business Manager).")
DAMAGED = "The server token's encoded content is damaged; download the token again from Apple Business Manager."
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_HEADER_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*:")
# openssl writes PKCS7 (smime, pkcs7) or CMS (cms -outform PEM); other tools spell out "PKCS #7".
_CMS_PEM = re.compile(r"-----BEGIN (PKCS7|CMS|PKCS #7[A-Z ]*)-----(.*?)-----END \1-----", re.DOTALL)
# A mail around a token file around its base64 is two re-encodings; more is no file Apple or a mail client made
# (and must not recurse without end).
_MAX_REENCODINGS = 2


def unwrap_token_file(data: bytes) -> bytes:
    """The CMS bytes of a token file: MIME (any line ends, headers, case or transfer encoding), bare base64,
    PEM or raw DER/BER."""
    return _unwrap(data, reencodings=0)


def _unwrap(data: bytes, reencodings: int) -> bytes:
    data = data or b""
    if data[:1] == b"\x30":  # a SEQUENCE: raw DER/BER (never strip it: its last bytes may be 0x20)
        return data
    text = _as_text(data)
    if text is None:
        raise NotATokenFile(NOT_TEXT)
    text = text.strip()
    if not text:
        raise NotATokenFile("The token file is empty.")
    if "-----BEGIN" in text:
        return _from_pem(text)
    if _HEADER_LINE.match(text) or text.startswith("From "):  # "From " starts a message saved from a mailbox
        return _from_mime(text, reencodings)
    return _from_base64(text, damaged_if_not_cms=looks_like_token(text.encode("utf-8")))


def looks_like_token(data: bytes) -> bool:
    """True when ``data`` starts like a server token (MIME S/MIME, its base64 or the CMS bytes)."""
    head = (data or b"")[:200]
    head = next((head[len(bom):] for bom, _ in _BOMS if head.startswith(bom)), head).lstrip()
    return (b"pkcs7-mime" in head.lower() or head.startswith(b"MIAGCSqGSIb3DQEHA")
            or ENVELOPED_DATA_OID in head[:20])


def _as_text(data: bytes) -> str | None:
    """The file as text without its byte order mark; None when it is not text (binary, not UTF-8/16)."""
    encoding = "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom):], name
            break
    if encoding == "utf-16":  # the BOM said which byte order; put it back for the codec
        data = bom + data
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _from_pem(text: str) -> bytes:
    """The CMS of a PEM PKCS7/CMS block; other PEM files are named (a certificate, a key...)."""
    match = _CMS_PEM.search(text)
    if match is None:
        raise NotATokenFile(_describe_pem(text.encode("utf-8")))
    try:
        der = base64.b64decode("".join(match.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        raise CorruptToken(DAMAGED) from None
    if der[:1] != b"\x30":
        raise NotATokenFile("This file is not an Apple server token.")
    return der


def _from_mime(text: str, reencodings: int) -> bytes:
    """The CMS of the S/MIME part of a MIME entity or of a whole saved e-mail (its attachment)."""
    for part in email.message_from_string(text).walk():
        if part.is_multipart():
            continue
        is_token = part.get_content_type() in TOKEN_TYPES or \
            (part.get_filename() or "").lower().endswith(".p7m")
        if is_token and isinstance(part.get_payload(), str):
            if part.get("Content-Transfer-Encoding", "").strip().lower() == "quoted-printable":
                return _from_quoted_printable(part, reencodings)
            return _from_base64(part.get_payload(), damaged_if_not_cms=True)
    raise NotATokenFile("This file is a MIME message but not an S/MIME encrypted server token.")


def _from_quoted_printable(part, reencodings: int) -> bytes:
    """The CMS of a token part a mail client re-encoded as quoted-printable. Decoded by the e-mail package, it
    is what was encoded: the base64 of the CMS, the whole token file Apple sent (an attachment), or the CMS."""
    if reencodings >= _MAX_REENCODINGS:
        raise CorruptToken(DAMAGED)
    try:
        return _unwrap(part.get_payload(decode=True), reencodings + 1)
    except NotATokenFile:  # the part says it is the token: what it holds is a damaged one
        raise CorruptToken(DAMAGED) from None


def _from_base64(text: str, damaged_if_not_cms: bool) -> bytes:
    """Strictly decode base64 in any layout (lines, indentation, one line) to the CMS bytes."""
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        der = b""
    if der[:1] != b"\x30":
        if damaged_if_not_cms:
            raise CorruptToken(DAMAGED)
        raise NotATokenFile("This file is not an Apple server token.")
    return der


def _describe_pem(data: bytes) -> str:
    """Say what a PEM file holds instead of a token."""
    labels = [label for label, _ in pem_blocks(data)]
    if any("CERTIFICATE" in label for label in labels):
        return ("This file is a certificate, not a server token. Upload the *_smime.p7m token "
                "file downloaded from Apple Business Manager.")
    if any("PRIVATE KEY" in label for label in labels):
        return ("This file is a private key, not a server token. Upload the *_smime.p7m token "
                "file downloaded from Apple Business Manager.")
    return "This PEM file is not an Apple server token."
