"""Password hashes in the formats the services read, stable across renders.

Salts are derived from the stack's own random `IOTSTACK_SALT`, so re-rendering
an unchanged stack writes byte-identical files and restarts nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt

_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MOSQUITTO_ITERATIONS = 101


def _derived_bytes(stack_salt: str, purpose: str, size: int) -> bytes:
    digest = hmac.new(stack_salt.encode(), purpose.encode(), hashlib.sha512).digest()
    return digest[:size]


def mosquitto_hash(user: str, password: str, stack_salt: str) -> str:
    """A `mosquitto_passwd` line body: PBKDF2-SHA512 in Mosquitto's `$7$` format."""
    salt = _derived_bytes(stack_salt, f"mosquitto:{user}", 12)
    key = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), salt, MOSQUITTO_ITERATIONS, dklen=64
    )
    encoded_salt = base64.b64encode(salt).decode()
    encoded_key = base64.b64encode(key).decode()
    return f"$7${MOSQUITTO_ITERATIONS}${encoded_salt}${encoded_key}"


def bcrypt_hash(purpose: str, password: str, stack_salt: str, rounds: int = 8) -> str:
    """A bcrypt hash (as Node-RED's adminAuth expects) with a derived salt."""
    raw = _derived_bytes(stack_salt, f"bcrypt:{purpose}", 22)
    chars = [_BCRYPT_ALPHABET[b % 64] for b in raw[:21]]
    chars.append(".Oeu"[raw[21] % 4])
    salt = f"$2b${rounds:02d}${''.join(chars)}".encode()
    return bcrypt.hashpw(password.encode(), salt).decode()
