"""Why a connection to a webhook or mail server failed, in words an IT admin acts on, not an exception's name.

requests and smtplib wrap what went wrong (requests.ConnectionError holds urllib3's MaxRetryError, which holds
NewConnectionError, which holds the socket error), so the chain is followed down to the cause the operating
system or the TLS library gave: a name DNS does not know, a refused or timed-out connection, a certificate that
is not trusted, a TLS handshake that failed, a connection the server closed. Whether a retry may help follows
from the cause: a certificate or a TLS mismatch needs the admin; the network and a restarting server may pass.
"""
from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass

# OpenSSL's verify codes (x509_vfy.h) that have their own words; the others fall back to OpenSSL's text.
UNTRUSTED_CODES = {18, 19, 20, 21, 27}  # self-signed, self-signed in chain, unknown issuer, cannot verify, untrusted
EXPIRED_CODES = {10: "has expired", 9: "is not valid yet"}
NAME_MISMATCH = {62, 64}  # host name, IP address


@dataclass(frozen=True)
class ConnectionProblem:
    """What failed (`words`, starting with the host's name, without a final full stop) and whether it may pass."""

    words: str
    retryable: bool


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and every exception behind it (cause, context, urllib3's `reason`, exceptions among its args)."""
    found: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        reason = getattr(current, "reason", None)
        pending += [current.__cause__, current.__context__, reason if isinstance(reason, BaseException) else None]
        pending += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
    return found


def connection_problem(exc: BaseException, host: str, port: int, port_hint: str,
                       server: str = "server") -> ConnectionProblem | None:
    """Plain words for a connection to `host`:`port` that failed with `exc`, or None when nothing in its chain is a
    network or TLS cause (the caller words it). `port_hint` says where the port is set and what it usually is;
    `server` what kind of server it is ("mail server")."""
    chain = causes(exc)

    def first(kind):
        return next((e for e in chain if isinstance(e, kind)), None)

    if certificate := first(ssl.SSLCertVerificationError):
        return ConnectionProblem(_certificate_words(certificate, host), retryable=False)
    if lookup := first(socket.gaierror):
        temporary = lookup.errno == socket.EAI_AGAIN  # the DNS server did not answer, rather than "no such name"
        words = (f"{host}: the DNS server did not answer when asked for this name: check this server's DNS settings"
                 if temporary else
                 f"{host}: no such host name was found (DNS does not know it): check the spelling of the name, and "
                 "that this server's DNS can resolve it (an internal name needs the internal DNS)")
        return ConnectionProblem(words, retryable=True)
    if first(ConnectionRefusedError):  # nothing listens there: most often a wrong port
        return ConnectionProblem(f"{host} refused the connection on port {port}: {port_hint}, or whether the {server} "
                                 "runs", retryable=True)
    if tls := first(ssl.SSLError):
        reason = (tls.reason or "").replace("_", " ").lower()
        return ConnectionProblem(f"{host}: the TLS handshake on port {port} failed ({reason or 'no reason given'}):"
                                 f" the port may not speak the encryption chosen. {_capital(port_hint)}",
                                 retryable=False)
    if first(TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return ConnectionProblem(f"{host} did not accept a connection on port {port} in time: check the host name and "
                                 "port, and that no firewall blocks this server from reaching it", retryable=True)
    if first((ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return ConnectionProblem(f"{host} closed the connection without answering: {port_hint}; the {server} may also "
                                 "be restarting", retryable=True)
    unreachable = next((e for e in chain if type(e).__module__ == "builtins" and isinstance(e, OSError)
                        and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL)), None)
    if unreachable:
        return ConnectionProblem(f"{host} cannot be reached from this server (no route to it: "
                                 f"{(unreachable.strerror or '').lower()}): check the network and firewall",
                                 retryable=True)
    return None


def _certificate_words(error: ssl.SSLCertVerificationError, host: str) -> str:
    code = error.verify_code
    if code in NAME_MISMATCH:
        return (f"{host}'s TLS certificate is issued for another name: give the name the certificate is for (the "
                "one in its subject alternative names), or have the certificate reissued for this name")
    if code in EXPIRED_CODES:
        return f"{host}'s TLS certificate {EXPIRED_CODES[code]}: have it renewed on that server"
    if code in UNTRUSTED_CODES:
        return (f"{host}'s TLS certificate is not trusted (it is self-signed or signed by an authority this server "
                "does not know): have it replaced by one from a public authority, or add the organization's "
                "authority to this server's trusted certificates")
    return f"{host}'s TLS certificate could not be verified ({error.verify_message or 'no reason given'})"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
