"""`DATABASE_URL`: which PostgreSQL database to use, checked, and shown only with its password masked."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")
MASK = "***"
EXAMPLE = "postgresql://user:password@host:5432/database"


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.split("://", 1)[0].lower() in SCHEMES and "://" in target


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by `***`, fit for a log line or an error message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    netloc = f"{user}{colon and ':' + MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_passwords(url: str) -> list[str]:
    """The password as written in the URL and decoded (for log redaction); empty if it has none."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    return sorted({password, unquote(password)})


def check_url(url: str) -> str:
    """The URL if it names a PostgreSQL database; else ValueError saying what is expected (never the password)."""
    if not is_postgres_url(url):
        raise ValueError(f"a PostgreSQL URL like {EXAMPLE}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port raises on a malformed one
    except ValueError:
        raise ValueError(f"a PostgreSQL URL like {EXAMPLE} (the host or port cannot be read)") from None
    if not parts.path.strip("/"):
        raise ValueError(f"a PostgreSQL URL naming its database, like {EXAMPLE}")
    return url
