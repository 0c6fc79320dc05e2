"""
What a worker is told to serve (the plan the parent sends in
L{resumetls.workers.control.Boot}), made from C{twist resumetls}' options.

A listener's configuration is the one C{twist resumetls} parsed, with two
substitutions: an in-process cache (C{memory://}) becomes the workers'
shared LMDB store (C{worker://}, same size bound), and generated ticket
keys become the parent's (C{worker:}).  A networked cache (C{redis://}) and
key files are kept: every worker reaches the same ones.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from resumetls.cache.memory import DEFAULT_MAX_ENTRIES
from resumetls.options import ConfigError

#: Seconds a stopping worker lets open connections finish.
GRACE = 10.0


def worker_count(value: Any) -> int:
    """
    C{--workers}: a number from 1 to 256, or C{auto} (one per CPU).

    @raise ConfigError: anything else.
    """
    text = str(value).strip().lower()
    if text == "auto":
        return os.cpu_count() or 1
    if text.isdigit() and 1 <= int(text) <= 256:
        return int(text)
    raise ConfigError(
        f"--workers must be a number from 1 to 256 or auto, not {value!r}"
    )


def owns_keys(config: Any) -> bool:
    """Whether the parent generates this listener's ticket keys."""
    return bool(config.tickets) and not config.ticket_keys


def cache_size(config: Any) -> int | None:
    """
    The shared cache's bound for a listener whose cache is in-process
    (C{memory://?size=N} keeps its N), else L{None}: its cache is kept.
    """
    url = config.session_cache
    if not url.lower().startswith("memory:"):
        return None
    from urllib.parse import parse_qsl, urlsplit

    params = dict(parse_qsl(urlsplit(url).query))
    return int(params.get("size", DEFAULT_MAX_ENTRIES))


def worker_config(config: Any, parent_keys: bool) -> Any:
    """A listener's configuration as a worker serves it (see the module)."""
    changes: dict[str, Any] = {}
    size = cache_size(config)
    if size is not None:
        changes["session_cache"] = f"worker://?size={size}"
    if parent_keys and owns_keys(config):
        spec = "worker:"
        changes["ticket_keys"] = (
            spec if isinstance(config.ticket_keys, str) else (spec,)
        )
    return attrs.evolve(config, **changes)


def checked_config(config: Any, endpoint: Any) -> Any:
    """
    A listener's configuration with what the parent resolved when it
    checked the options (C{endpoint}, built then): without C{--certificate},
    the development certificate's files, made and announced once by the
    parent, so that no worker makes or announces it again.
    """
    watch = getattr(endpoint, "certificate_watch", None)
    if config.certificate is not None or watch is None:
        return config
    return attrs.evolve(config, certificate=watch.certificate, key=watch.key)


def first_key(configs: list[Any], endpoints: list[Any]) -> Any:
    """
    The key that encrypts first with generated ticket keys: the one the
    parent generated (and logged) for the first listener whose keys it
    owns, when it checked the options; L{None} if none does.
    """
    for config, endpoint in zip(configs, endpoints, strict=True):
        if owns_keys(config) and endpoint is not None:
            return endpoint.key_source.key_ring.encrypting_key()
    return None


def config_as_data(config: Any) -> dict[str, Any]:
    """A configuration as JSON-able data (the worker rebuilds it)."""
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in attrs.asdict(config).items()
    }


def listener_configs(options: Any) -> list[Any]:
    """
    The configuration of each listener of C{twist resumetls}' options:
    C{--port}'s, or each C{--listen resumetls:…} string's.

    @raise ConfigError: a C{--listen} string of another kind (the workers
        serve resumetls: listeners only).
    """
    from resumetls.options import split_description
    from resumetls.server.config import parse_endpoint

    if not options["listen"]:
        return [options.config]
    configs = []
    for description in options["listen"]:
        prefix, args, kwargs = split_description(description)
        if prefix != "resumetls":
            raise ConfigError(
                f"--workers serves resumetls: listeners only, not --listen "
                f"{description}; write it as resumetls:PORT:… or run without "
                "--workers"
            )
        configs.append(parse_endpoint(args, kwargs))
    return configs
