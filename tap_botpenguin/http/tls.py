"""A server certificate the tap does not trust: the same answer on every attempt, so one line.

A self-signed certificate, or a corporate proxy that re-signs TLS with its own CA, fails
verification on every request; retrying it with backoff only delays the line that says so.
"""

from __future__ import annotations

import ssl

import requests

from tap_botpenguin.http.proxy import causes

#: What to do about it. The session reads REQUESTS_CA_BUNDLE (`http.session`); SSL_CERT_FILE
#: does nothing here: `requests` verifies against certifi's bundle, not the system's.
TRUST_A_CA = (
    "if a corporate proxy or your own CA signs it, set REQUESTS_CA_BUNDLE to that CA's "
    "certificate file (PEM)"
)


def certificate_trouble(exc: BaseException, host: str) -> str | None:
    """Why the certificate of `host` was refused, if that is what `exc` says, else None."""
    if not isinstance(exc, requests.exceptions.SSLError):
        return None
    for cause in causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause.reason or "certificate verify failed"
            return (
                f"the certificate of {host} is not trusted (certificate verify failed: "
                f"{reason}); {TRUST_A_CA}"
            )
    return None
