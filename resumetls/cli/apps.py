"""
What C{twist resumetls} serves: a protocol factory (C{--factory}), a WSGI
application (C{--wsgi}), a directory (C{--path}) or, by default, the demo
page.  Names are resolved while the command line is parsed, so a bad one is
a one-line option error (L{resumetls.ConfigError}), not a traceback later.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.python.reflect import namedAny

from resumetls.options import ConfigError

# The options that choose what to serve, in the order messages name them.
CHOICES = ("factory", "wsgi", "path")


def choose(options: Any) -> tuple[str, Any]:
    """
    What to serve, from the C{--factory}, C{--wsgi} and C{--path} options.

    @return: C{(what, target)}: C{what} is C{"factory"}, C{"wsgi"},
        C{"path"} or C{"demo"}; C{target} the protocol factory, the WSGI
        application, the directory's absolute path, or L{None}.
    @raise ConfigError: more than one was given, or the one given is not
        usable.
    """
    chosen = [n for n in CHOICES if options[n]]
    if len(chosen) > 1:
        raise ConfigError(
            "give only one of --factory, --wsgi and --path, not "
            + " and ".join("--" + n for n in chosen)
        )
    if not chosen:
        return "demo", None
    what = chosen[0]
    name = options[what]
    if what == "factory":
        return what, _protocol_factory_from(name, resolve("--factory", name))
    if what == "wsgi":
        target = resolve("--wsgi", name)
        if not callable(target):
            raise ConfigError(f"--wsgi {name} is not callable")
        return what, target
    if not os.path.isdir(name):
        raise ConfigError(f"--path {name}: not a directory")
    return what, os.path.abspath(name)


def refuse_secrets_under(directory: str, secrets: list[str]) -> None:
    """
    Refuse to serve C{directory} (C{--path}) when one of C{secrets} (the
    private key, ticket key files) is in it or anywhere below it: anyone
    could fetch it.  Symbolic links are resolved first.

    @raise ConfigError: naming the file and what to do.
    """
    top = os.path.realpath(directory)
    for secret in secrets:
        real = os.path.realpath(secret)
        if os.path.commonpath([top, real]) == top:
            raise ConfigError(
                f"--path {directory}: refusing to serve a directory that holds "
                f"{secret}, a secret this server uses (anyone could download it); "
                "keep keys outside the directory served, or serve a subdirectory "
                "without them"
            )


def resolve(option: str, name: str) -> Any:
    """
    The object a dotted name names.  The current directory is searched
    first, as C{python -m} and gunicorn do (C{twist}'s own path starts at
    its script), so C{--factory examples.echo.EchoFactory} works from the
    directory that holds C{examples/}.
    """
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        return namedAny(name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{option} {name}: cannot import it ({e})") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed to import
        raise ConfigError(
            f"{option} {name}: importing it raised {type(e).__name__}: {e}"
        ) from None


def _protocol_factory_from(name: str, target: Any) -> Any:
    """
    The protocol factory C{--factory} names: the object itself, or what
    calling it (with no arguments) returns.
    """
    from twisted.internet.interfaces import IProtocolFactory

    if not IProtocolFactory.providedBy(target):
        if not callable(target):
            raise ConfigError(
                f"--factory {name} is neither a protocol factory nor callable"
            )
        try:
            target = target()
        except Exception as e:  # noqa: BLE001 - the user's code, one line
            raise ConfigError(
                f"--factory {name}: calling it raised {type(e).__name__}: {e}"
            ) from None
    if not IProtocolFactory.providedBy(target):
        raise ConfigError(
            f"--factory {name} did not give a protocol factory "
            f"(got {type(target).__name__})"
        )
    return target


def protocol_factory(what: str, target: Any, reactor: Any) -> Any:
    """The protocol factory that serves what L{choose} chose."""
    from twisted.web.server import Site

    if what == "factory":
        return target
    if what == "wsgi":
        from twisted.web.wsgi import WSGIResource

        return Site(WSGIResource(reactor, reactor.getThreadPool(), target))
    if what == "path":
        from twisted.web.static import File

        return Site(File(target))
    from resumetls.cli.demo import demo_site

    return demo_site()
