"""Errors of the database and of the disk under it."""

from __future__ import annotations

import errno
import sqlite3


class StorageError(Exception):
    """The database cannot be used; the message says why and what to do."""


class JobNotFound(StorageError, LookupError):
    """No job has the given id."""


class DatabaseError(StorageError):
    """PostgreSQL refused a statement or could not be reached; the message never holds the password."""


class IntegrityViolation(DatabaseError):
    """A unique key or a check refused a write (PostgreSQL's counterpart of `sqlite3.IntegrityError`)."""


class DatabaseUnavailable(DatabaseError):
    """The PostgreSQL server cannot be reached or dropped the connection: waiting may help."""


# Whichever database runs: a write refused by a constraint, and a failure that may pass if tried again.
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, IntegrityViolation)
PASSING_ERRORS: tuple[type[Exception], ...] = (sqlite3.OperationalError, DatabaseUnavailable)

_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}


def storage_failure(exc: BaseException) -> str | None:
    """One line on why the database or the disk failed, if that is what `exc` is; else None."""
    if isinstance(exc, JobNotFound):
        return None
    if isinstance(exc, StorageError):
        return str(exc)
    if isinstance(exc, sqlite3.Error):
        return f"the database cannot be written ({exc})"
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return f"the disk cannot be written ({exc.strerror or exc})"
    return None
