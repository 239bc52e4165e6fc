"""Ask TLS clients for a certificate without letting the handshake judge it.

kube-apiserver requests client certificates without verifying them in TLS
(Go's `tls.RequestClientCert`); its X.509 and front-proxy authenticators
verify them and answer 401 when they do not hold.  Python's `ssl` module can
only verify during the handshake, so a certificate from an unknown CA would
end the connection with a TLS alert instead of a 401 that says what happened.

OpenSSL itself has the hook: a verify callback.  `ssl` does not expose it, so
this module installs one through ctypes on the context's `SSL_CTX`.  It is
guarded: it runs on CPython with the OpenSSL `ssl` was built with, checks that
the setting took, and otherwise leaves the context as it was (the handshake
then refuses unknown CAs itself, which is safe, only less informative).

Only use it when every certificate-reading authenticator verifies chains
itself (ours do: `X509Authenticator` and `RequestHeaderAuthenticator`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import ssl
import sys

log = logging.getLogger(__name__)

SSL_VERIFY_PEER = 0x01
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VERIFY_CALLBACK
def _accept_any(preverify_ok: int, store_ctx: int) -> int:
    return 1  # the authenticators decide; the handshake only collects the certificate


def _libssl() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("ssl")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_callback.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_callback.restype = ctypes.c_void_p
    lib.OpenSSL_version_num.restype = ctypes.c_ulong
    return lib


def request_client_certificates(ctx: ssl.SSLContext) -> bool:
    """Make `ctx` request client certificates and accept any; True if that took effect."""
    if sys.implementation.name != "cpython":
        return False
    try:
        lib = _libssl()
        if lib is None or lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
            return False  # not the library `ssl` uses: leave verification to the handshake
        # CPython's context object starts with the SSL_CTX pointer right after the object header.
        pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if not pointer or lib.SSL_CTX_get_verify_mode(pointer) != SSL_VERIFY_PEER:
            return False  # not the layout we expect (verify_mode must be CERT_OPTIONAL already)
        lib.SSL_CTX_set_verify(pointer, SSL_VERIFY_PEER, _accept_any)
        installed = lib.SSL_CTX_get_verify_callback(pointer)
        return installed == ctypes.cast(_accept_any, ctypes.c_void_p).value
    except (OSError, AttributeError, ValueError) as exc:
        log.warning("could not defer client-certificate checks to the authenticators: %s", exc)
        return False
