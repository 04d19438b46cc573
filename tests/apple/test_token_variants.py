"""Server token files as admins end up with them: the same bytes re-saved by an editor, a mail client or
openssl. Each variant is built from the real 2025 token (and a simulator-issued one) and must decrypt to
the same credentials; files that are not tokens keep their messages (test_tokens.py)."""

from __future__ import annotations

import base64
import quopri
import textwrap
from email.message import EmailMessage

import pytest

from portal.apple.errors import CorruptToken, NotATokenFile
from portal.apple.tokenfile import build_token_file
from portal.apple.tokens import ServerToken, decrypt_token, read_recipient

REAL_ISSUER = "CN=apple-mdm-client-tests,OU=com.github.petarov,C=DE"
REAL_SERIAL = 0x70FEDDC7D5AFA393


def _split(token: bytes) -> tuple[list[bytes], bytes]:
    """The MIME header lines and the base64 body of an LF token file."""
    head, body = token.replace(b"\r\n", b"\n").split(b"\n\n", 1)
    return head.split(b"\n"), body


def _pem(token: bytes, label: bytes) -> bytes:
    """The token's CMS as openssl writes it with -outform PEM (64-column base64)."""
    der = base64.b64decode(_split(token)[1])
    lines = textwrap.wrap(base64.b64encode(der).decode(), 64)
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines).encode(), label)


def _resaved_by_a_mail_client(token: bytes) -> bytes:
    """The attachment saved as a whole message: more headers, one folded, header names and values in
    other cases, CRLF line ends."""
    headers, body = _split(token)
    headers = [b"MIME-Version: 1.0", b"Message-ID: <1234@mail.example.com>",
               b"content-type: application/pkcs7-mime;\n\tname=\"smime.p7m\"; smime-type=enveloped-data",
               b"CONTENT-TRANSFER-ENCODING: BASE64",
               *[line for line in headers if not line.lower().startswith((b"content-type", b"content-transfer"))]]
    return (b"\n".join(headers) + b"\n\n" + body).replace(b"\n", b"\r\n")


def _multipart_mail(token: bytes) -> bytes:
    """The whole e-mail the token was forwarded in, saved as .eml/.p7m: the token is its attachment."""
    headers, body = _split(token)
    return b"\n".join([
        b"From: it@example.com", b"To: admin@example.com", b"Subject: Fwd: server token", b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="XYZ"', b"", b"--XYZ", b"Content-Type: text/plain", b"",
        b"Here is the token.", b"--XYZ", *headers, b"", body.rstrip(b"\n"), b"--XYZ--", b""])


def _quoted_printable_base64(token: bytes, one_line: bool = False) -> bytes:
    """The token part re-encoded by a mail client as quoted-printable: its '=' padding becomes '=3D' and
    lines longer than 76 columns (the base64 on one line) get soft line breaks ('=' at the line end)."""
    headers, body = _split(token)
    headers = [b"Content-Transfer-Encoding: quoted-printable" if line.lower().startswith(b"content-transfer-encoding")
               else line for line in headers]
    return b"\n".join(headers) + b"\n\n" + quopri.encodestring(b"".join(body.split()) if one_line else body)


def _quoted_printable_attachment(token: bytes, maintype: str = "application", subtype: str = "pkcs7-mime",
                                 encode=lambda t: t) -> bytes:
    """The whole token file forwarded as an attachment the mail client encoded as quoted-printable."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "it@example.com", "admin@example.com", "Fwd: server token"
    mail.set_content("Here is the token.")
    mail.add_attachment(encode(token), maintype=maintype, subtype=subtype, cte="quoted-printable",
                        filename="Paris_Token_2025-01-17T11-02-21Z_smime.p7m")
    return mail.as_bytes()


VARIANTS = {
    "utf8_bom": lambda t: b"\xef\xbb\xbf" + t,
    "utf8_bom_bare_base64": lambda t: b"\xef\xbb\xbf" + _split(t)[1],
    "utf16_bom": lambda t: t.decode("ascii").encode("utf-16"),
    "crlf": lambda t: t.replace(b"\n", b"\r\n"),
    "cr": lambda t: t.replace(b"\n", b"\r"),
    "blank_lines_around": lambda t: b"\n\n  \n" + t + b"\n\n\n",
    "spaces_around": lambda t: b"  \t" + t + b"  \t\n",
    "trailing_spaces_on_lines": lambda t: t.replace(b"\n", b"  \n"),
    "bare_base64": lambda t: _split(t)[1],
    "bare_base64_indented": lambda t: b"\n".join(b"    " + line for line in _split(t)[1].split(b"\n")),
    "one_line_base64": lambda t: b"".join(_split(t)[1].split()),
    "raw_ber": lambda t: base64.b64decode(_split(t)[1]),
    "raw_ber_with_newline": lambda t: base64.b64decode(_split(t)[1]) + b"\n",
    "pem_pkcs7": lambda t: _pem(t, b"PKCS7"),
    "pem_cms": lambda t: _pem(t, b"CMS"),
    "pem_crlf_bom": lambda t: b"\xef\xbb\xbf" + _pem(t, b"PKCS7").replace(b"\n", b"\r\n"),
    "pem_with_text_around": lambda t: b"Token for Paris\n\n" + _pem(t, b"PKCS7") + b"\n(do not share)\n",
    "mail_client_resaved": _resaved_by_a_mail_client,
    "transfer_encoding_lower_case": lambda t: t.replace(b"Content-Transfer-Encoding: base64",
                                                        b"content-transfer-encoding: Base64"),
    "x_pkcs7_mime": lambda t: t.replace(b"application/pkcs7-mime", b"application/x-pkcs7-mime"),
    "forwarded_mail": _multipart_mail,
    "quoted_printable_base64": _quoted_printable_base64,
    "quoted_printable_base64_soft_line_breaks": lambda t: _quoted_printable_base64(t, one_line=True),
    "quoted_printable_base64_crlf": lambda t: _quoted_printable_base64(t, one_line=True).replace(b"\n", b"\r\n"),
    "quoted_printable_attachment": _quoted_printable_attachment,
    "quoted_printable_octet_stream_p7m": lambda t: _quoted_printable_attachment(t, "application", "octet-stream"),
    "quoted_printable_attachment_of_quoted_printable_token": lambda t: _quoted_printable_attachment(
        t, encode=_quoted_printable_base64),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_real_token_variants_decrypt_to_the_same_credentials(abm_vector, variant):
    data = VARIANTS[variant](abm_vector.token)
    assert data != abm_vector.token
    expected = decrypt_token(abm_vector.token, abm_vector.private_key)
    assert decrypt_token(data, abm_vector.private_key) == expected
    assert read_recipient(data) == (REAL_ISSUER, REAL_SERIAL)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_simulator_token_variants_decrypt_to_the_same_credentials(mdm_pair, mdm_key, token_creds, variant):
    data = VARIANTS[variant](build_token_file(mdm_pair.certificate_pem, token_creds))
    assert decrypt_token(data, mdm_key) == ServerToken.from_dict(token_creds)


@pytest.mark.parametrize("data, says", [
    (b"\xef\xbb\xbf", "empty"),
    (b"\xef\xbb\xbf \r\n\r\n", "empty"),
    (b"\xef\xbb\xbfjust some notes about the MDM server\n", "not an Apple server token"),
    ("notes in UTF-16\n".encode("utf-16"), "not an Apple server token"),
    (b"-----BEGIN PKCS7-----\naGVsbG8=\n-----END PKCS7-----\n", "not an Apple server token"),
    (b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: text/plain\n\nhi\n--X--\n",
     "not an S/MIME encrypted"),
], ids=["bom_only", "bom_and_blank_lines", "bom_text", "utf16_text", "pem_pkcs7_of_garbage", "mail_without_token"])
def test_variants_of_files_that_are_not_tokens(mdm_key, data, says):
    with pytest.raises(NotATokenFile, match=says):
        decrypt_token(data, mdm_key)


def test_damaged_base64_in_a_pem_token_is_corrupt(abm_vector):
    pem = _pem(abm_vector.token, b"PKCS7")
    with pytest.raises(CorruptToken):
        decrypt_token(pem.replace(b"A", b"*", 3), abm_vector.private_key)


def test_quoted_printable_nested_deeper_than_a_mail_client_does_is_damaged(abm_vector):
    """Three re-encodings (a mail around a mail around a quoted-printable token) are no file anyone saved."""
    nested = _quoted_printable_attachment(_quoted_printable_attachment(abm_vector.token,
                                                                       encode=_quoted_printable_base64))
    with pytest.raises(CorruptToken):
        decrypt_token(nested, abm_vector.private_key)


def test_a_quoted_printable_token_part_that_holds_no_token_is_damaged(mdm_key):
    mail = _quoted_printable_attachment(b"just some notes about the MDM server\n")
    with pytest.raises(CorruptToken, match="damaged"):
        decrypt_token(mail, mdm_key)
