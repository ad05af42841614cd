"""Extensions store: numbers, names and digest credentials.

Passwords are never stored: only HA1 = H(number:realm:password) per algorithm
(MD5 and SHA-256, RFC 7616). Changing the realm therefore needs new passwords.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import asdict, dataclass

from pypbx.db import Database, ExtensionRow, IntegrityError
from pypbx.errors import PbxError

NUMBER_RE = re.compile(r"^[0-9]{2,8}$")
MIN_PASSWORD_LENGTH = 10
# No 0/O/o, 1/l/I, and no characters that phones' keypads or SIP tooling handle badly.
PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
GENERATED_PASSWORD_LENGTH = 20  # log2(56) * 20 ~ 116 bits
MAX_NAME_LENGTH = 64


class ExtensionError(PbxError):
    """A one-line, user-facing problem with an extension operation."""


@dataclass(frozen=True)
class Extension:
    number: str
    name: str
    enabled: bool
    created_at: float | None
    updated_at: float | None
    realm: str = ""

    def to_dict(self) -> dict[str, str | bool | float | None]:
        return asdict(self)


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """HA1 = H(username ":" realm ":" password), hex. algorithm: 'MD5' or 'SHA-256'."""
    data = f"{username}:{realm}:{password}".encode()
    if algorithm.upper() == "MD5":
        return hashlib.md5(data).hexdigest()
    if algorithm.upper() == "SHA-256":
        return hashlib.sha256(data).hexdigest()
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


def generate_password(length: int = GENERATED_PASSWORD_LENGTH) -> str:
    """A strong random password from an unambiguous alphabet (at least 16 characters)."""
    length = max(16, length)
    while True:
        pw = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        # at least one digit, one lower, one upper: some phone UIs insist
        if any(c.isdigit() for c in pw) and any(c.islower() for c in pw) and any(c.isupper() for c in pw):
            return pw


def validate_number(number: str) -> str:
    number = str(number).strip()
    if not NUMBER_RE.match(number):
        raise ExtensionError(f"bad extension number {number!r}: expected 2-8 digits")
    return number


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ExtensionError(
            f"password too weak: at least {MIN_PASSWORD_LENGTH} characters needed "
            f"(omit --password to generate a strong one)"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise ExtensionError("password must not contain control characters")
    return password


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ExtensionError(f"name too long: at most {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == '"' for c in name):
        raise ExtensionError("name must not contain quotes or control characters")
    return name


def _from_row(row: ExtensionRow) -> Extension:
    return Extension(
        number=row["number"],
        name=row["name"] or "",
        enabled=bool(row["enabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        realm=row["realm"],
    )


async def add_extension(
    db: Database, number: str, name: str = "", realm: str = "pypbx", password: str | None = None
) -> tuple[Extension, str]:
    """Create an extension. Returns it and its password (generated if not given)."""
    number = validate_number(number)
    name = _check_name(name)
    password = _check_password(password) if password is not None else generate_password()
    now = time.time()
    row: ExtensionRow = {
        "number": number,
        "name": name,
        "realm": realm,
        "ha1_md5": ha1(number, realm, password, "MD5"),
        "ha1_sha256": ha1(number, realm, password, "SHA-256"),
        "enabled": 1,
        "created_at": now,
        "updated_at": now,
    }
    try:
        await db.insert_extension(row)
    except IntegrityError:
        raise ExtensionError(f"extension {number} already exists") from None
    return _from_row(row), password


async def list_extensions(db: Database) -> list[Extension]:
    return [_from_row(r) for r in await db.list_extension_rows()]


async def get_extension(db: Database, number: str) -> Extension:
    number = validate_number(number)
    row = await db.get_extension_row(number)
    if row is None:
        raise ExtensionError(f"extension {number} not found")
    return _from_row(row)


async def set_password(db: Database, number: str, realm: str, password: str | None = None) -> str:
    """Replace the credentials (and realm) of an extension. Returns the (possibly generated) password."""
    number = validate_number(number)
    password = _check_password(password) if password is not None else generate_password()
    ok = await db.update_extension_secret(
        number, realm, ha1(number, realm, password, "MD5"), ha1(number, realm, password, "SHA-256"), time.time()
    )
    if not ok:
        raise ExtensionError(f"extension {number} not found")
    return password


async def set_enabled(db: Database, number: str, enabled: bool) -> Extension:
    number = validate_number(number)
    if not await db.update_extension_fields(number, time.time(), enabled=1 if enabled else 0):
        raise ExtensionError(f"extension {number} not found")
    return await get_extension(db, number)


async def set_name(db: Database, number: str, name: str) -> Extension:
    number = validate_number(number)
    if not await db.update_extension_fields(number, time.time(), name=_check_name(name)):
        raise ExtensionError(f"extension {number} not found")
    return await get_extension(db, number)


async def remove_extension(db: Database, number: str) -> None:
    """Delete an extension (and its saved registrations)."""
    number = validate_number(number)
    if not await db.delete_extension(number):
        raise ExtensionError(f"extension {number} not found")


async def credentials_map(db: Database, realm: str) -> dict[str, dict[str, str]]:
    """{number: {'MD5': ha1, 'SHA-256': ha1}} for enabled extensions whose credentials were
    made for ``realm`` (an extension created under another realm cannot authenticate until
    ``pypbx ext passwd`` gives it a new password)."""
    out: dict[str, dict[str, str]] = {}
    for r in await db.list_extension_rows():
        if r["enabled"] and r["realm"] == realm:
            out[r["number"]] = {"MD5": r["ha1_md5"], "SHA-256": r["ha1_sha256"]}
    return out
