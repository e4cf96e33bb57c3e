"""TLS mutual authentication contexts (off unless MHS_TLS_CERT/KEY/CA are set).

TLS 1.2 is the floor, with the reference's cipher preference (ECDHE, then DHE, AES-GCM
first). Servers ask for a client certificate without demanding one at the handshake, so
a request without one can be answered 496 the way the SSP answers it.
"""

from __future__ import annotations

import ssl

from mhs.settings import Settings

# AESGCM+EECDH, AESGCM+EDH, AES256+EECDH, AES256+EDH (TLS 1.3 suites are all AEAD anyway).
CIPHERS = "ECDHE+AESGCM:DHE+AESGCM:ECDHE+AES256:DHE+AES256:!aNULL:!eNULL:!MD5:!SHA1"


def _context(purpose: ssl.Purpose, settings: Settings) -> ssl.SSLContext:
    assert settings.tls_cert is not None
    assert settings.tls_key is not None
    assert settings.tls_ca is not None
    context = ssl.create_default_context(purpose, cafile=str(settings.tls_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The listening context for a role, or None when TLS is off."""
    if not settings.tls:
        return None
    context = _context(ssl.Purpose.CLIENT_AUTH, settings)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for calls to other roles, presenting our certificate; None when off."""
    if not settings.tls:
        return None
    return _context(ssl.Purpose.SERVER_AUTH, settings)


def certificate_names(peercert: object) -> tuple[str, ...]:
    """The DNS and IP subject alternative names of a verified peer certificate (as
    ``SSLSocket.getpeercert()`` gives it), else its common names; () for no certificate."""
    if not isinstance(peercert, dict) or not peercert:
        return ()
    names = tuple(
        str(value)
        for kind, value in peercert.get("subjectAltName", ())
        if kind in ("DNS", "IP Address")
    )
    if names:
        return names
    return tuple(
        str(value)
        for rdn in peercert.get("subject", ())
        for key, value in rdn
        if key == "commonName"
    )
