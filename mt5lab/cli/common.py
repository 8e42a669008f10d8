"""What every verb shares: ``--profile`` and ``--verbose``, and the one-line error contract.

Errors are one line on stderr (``--verbose`` adds the traceback), mt5lab's warnings one ``warning:``
line each (an assumed epoch unit, a doubtful clock), secrets are redacted from
everything printed, and the exit code is the error's (2 bad input, 3 configuration, 4 store; 1 for
anything unexpected).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
import warnings

import click

from mt5lab.errors import Mt5LabError, Mt5LabWarning, install_log_redaction, redact


def common(fn):
    """``--profile`` and ``--verbose`` on every verb, and the one-line error contract."""

    @click.option("--profile", envvar="MT5LAB_PROFILE", default=None,
                  help="Store profile: local (default) or postgres. Env: MT5LAB_PROFILE.")
    @click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logs.")
    @functools.wraps(fn)
    def wrapper(*args, profile=None, verbose=False, **kwargs):
        logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        install_log_redaction()
        if not sys.stderr.isatty():  # a log or a pipe: no progress bars between the one-line messages
            os.environ.setdefault("TQDM_DISABLE", "1")
        if not verbose:  # psycopg warns about a COPY it could not end after a lost connection; the
            logging.getLogger("psycopg").setLevel(logging.ERROR)  # error line below says it all
        try:
            with warnings.catch_warnings():  # restores showwarning afterwards
                warnings.simplefilter("always", Mt5LabWarning)
                warnings.showwarning = _show_warning
                return fn(*args, profile=profile, **kwargs)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Mt5LabError as exc:
            _fail(exc, verbose, exc.exit_code)
        except Exception as exc:
            from mt5lab.errors import translate

            if (err := translate(exc, _resolved(profile))) is not None:  # Redis/PostgreSQL auth, connection
                _fail(err, verbose, err.exit_code)
            _fail(exc, verbose, 1, prefix=f"{type(exc).__name__}: ")

    return wrapper


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """mt5lab's own warnings as one ``warning:`` line on stderr; others as Python prints them."""
    if issubclass(category, Mt5LabWarning):
        click.echo(redact(f"warning: {str(message).strip().splitlines()[0]}"), err=True)
    else:
        click.echo(redact(warnings.formatwarning(message, category, filename, lineno, line)).rstrip(), err=True)


def _fail(exc: BaseException, verbose: bool, code: int, prefix: str = "") -> None:
    if verbose:
        click.echo(redact("".join(traceback.format_exception(exc))), err=True)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    more = getattr(exc, "more", "")  # bad bars: the next violations and their count, same line
    click.echo(redact(f"error: {prefix}{first}{more}"), err=True)
    sys.exit(code)


def _resolved(profile):
    """The loaded profile for an error message, or None when the profile itself cannot load."""
    from mt5lab.config import resolve

    try:
        return resolve(profile)
    except Exception:
        return None


def open_offline(profile):
    """The profile's offline store (imported late: ``mt5lab --help`` stays fast)."""
    from mt5lab.storage import open_store

    return open_store(profile)
