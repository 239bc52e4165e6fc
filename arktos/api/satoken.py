"""Service-account tokens: the JWTs that carry a workload's identity, tenant included.

The token controller issues them and the API server's authenticator verifies
them; both use this module, so neither imports the other.  RS256 and ES256,
written out with `cryptography` (a JWT library would bring far more than the
few lines this needs).  Arktos adds the tenant as a claim; a token without it
is not an Arktos service-account token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

# Service-account token claims (the legacy, flat Kubernetes layout plus Arktos's tenant).
CLAIM_NAMESPACE = "kubernetes.io/serviceaccount/namespace"
CLAIM_SA_NAME = "kubernetes.io/serviceaccount/service-account.name"
CLAIM_SA_UID = "kubernetes.io/serviceaccount/service-account.uid"
CLAIM_SECRET_NAME = "kubernetes.io/serviceaccount/secret.name"
CLAIM_TENANT = "kubernetes.io/serviceaccount/tenant"
# Bound tokens (TokenRequest) also carry Kubernetes' private claim: {"kubernetes.io": {"namespace",
# "serviceaccount": {"name", "uid"}, "pod": {"name", "uid"}}}, plus `aud`, `exp` and `nbf`.
CLAIM_KUBERNETES = "kubernetes.io"
SA_USER_PREFIX = "system:serviceaccount:"


PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


def b64url_decode(data: str) -> bytes:
    raw = data.encode("ascii")
    return base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(key: PublicKey) -> str:
    """Kubernetes's `kid`: base64url(SHA-256(SubjectPublicKeyInfo DER))."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64url_encode(hashlib.sha256(der).digest())


def load_public_keys(data: bytes) -> list[PublicKey]:
    """The RSA and P-256 public keys in PEM data: public keys, certificates or private keys.

    Private keys are accepted because `--service-account-key-file` has always
    been allowed to point at the signing key itself.
    """
    keys: list[PublicKey] = []
    for block in _PEM_BLOCK.finditer(data):
        kind, pem = block.group(1), block.group(0)
        key: Any
        if kind == b"CERTIFICATE":
            key = x509.load_pem_x509_certificate(pem).public_key()
        elif kind.endswith(b"PUBLIC KEY"):
            key = serialization.load_pem_public_key(pem)
        elif kind.endswith(b"PRIVATE KEY") and b"ENCRYPTED" not in kind:
            key = serialization.load_pem_private_key(pem, password=None).public_key()
        else:
            continue
        if isinstance(key, rsa.RSAPublicKey) or (
            isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
        ):
            keys.append(key)
    return keys


def verify_jws(alg: str, key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    try:
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and len(signature) == 64:
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False


@functools.lru_cache(maxsize=8)
def _signing_key(pem: bytes) -> Any:
    """The loaded private key, kept: loading an RSA key checks it (tens of milliseconds), which per token made
    every pod's kube-api-access token cost as much (200 hollow pods: 7 s of one API server's time)."""
    return serialization.load_pem_private_key(pem, password=None)


def issue_service_account_token(
    private_key_pem: bytes | str,
    issuer: str,
    tenant: str,
    namespace: str,
    sa_name: str,
    sa_uid: str,
    secret_name: str | None = None,
    expires_in: float | None = None,
    audiences: list[str] | None = None,
    pod: tuple[str, str] | None = None,
    now: int | None = None,
) -> str:
    """A signed service-account JWT (RS256 for an RSA key, ES256 for a P-256 key).

    With `secret_name` the token is tied to that Secret (deleting it revokes
    the token); with `expires_in` (seconds) it carries `exp`.  A bound token
    (TokenRequest) has `audiences` (the `aud` claim, and `nbf`) and, with
    `pod` = (name, uid), lives only as long as that pod; it carries the
    `kubernetes.io` claim as Kubernetes' bound tokens do, besides the flat
    legacy claims and the tenant.
    """
    pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    key = _signing_key(pem)
    if isinstance(key, rsa.RSAPrivateKey):
        alg = "RS256"
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        alg = "ES256"
    else:
        raise ValueError("service-account signing key must be RSA or EC P-256")
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": f"{SA_USER_PREFIX}{namespace}:{sa_name}",
        "iat": now,
        CLAIM_TENANT: tenant,
        CLAIM_NAMESPACE: namespace,
        CLAIM_SA_NAME: sa_name,
        CLAIM_SA_UID: sa_uid,
    }
    if secret_name:
        claims[CLAIM_SECRET_NAME] = secret_name
    if expires_in is not None:
        claims["exp"] = now + int(expires_in)
    if audiences is not None:
        claims["aud"] = list(audiences)
        claims["nbf"] = now
        private: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": sa_name, "uid": sa_uid}}
        if pod is not None:
            private["pod"] = {"name": pod[0], "uid": pod[1]}
        claims[CLAIM_KUBERNETES] = private
    header = {"alg": alg, "kid": key_id(key.public_key())}
    signing_input = f"{_b64url_encode(orjson.dumps(header))}.{_b64url_encode(orjson.dumps(claims))}".encode()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{_b64url_encode(signature)}"
