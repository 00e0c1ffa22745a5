"""How the run store speaks to people: its errors, its URL without the password, and the database's own
reason when the store cannot be reached (kept apart so messages need not import the store)."""
from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError


class StoreError(ValueError):
    """A sweep is missing, or a name is taken by a different sweep."""


def url_for_humans(url: str) -> str:
    """A store URL for messages, without its password, even when SQLAlchemy cannot parse it."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        try:
            password = urlsplit(url).password
        except ValueError:
            return "(not a URL)"
        return url.replace(f":{password}@", ":***@") if password else url


def database_reason(error: BaseException | None) -> str:
    """The first line of the database's own reason when `error`, or what caused it, is the store's URL,
    connection or permissions failing (SQLAlchemy's error under Optuna's wrappers); "" otherwise."""
    while error is not None:
        if isinstance(error, (ArgumentError, NoSuchModuleError, OperationalError)):
            reason = str(getattr(error, "orig", None) or error).strip()
            return reason.splitlines()[0] if reason else type(error).__name__
        error = error.__cause__ or error.__context__
    return ""
