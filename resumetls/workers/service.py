"""
What C{twist resumetls --workers N} runs in the parent (the hook in
L{resumetls.cli.tap.makeService}): the supervisor, and C{--metrics} for the
whole server.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service

from resumetls.workers import plan as _plan
from resumetls.workers.supervisor import WorkerSupervisor


def workers_service(options: Any) -> service.MultiService:
    """
    What C{twist resumetls --workers N} runs in the parent: the supervisor,
    and C{--metrics} for the whole server.
    """
    from twisted.internet import reactor

    top = service.MultiService()
    # The endpoints built while the options were checked: what they resolved
    # (and logged) once is handed on, not made again by every worker.
    endpoints = [endpoint for _, endpoint in options.listeners]
    configs = [
        _plan.checked_config(config, endpoint)
        for config, endpoint in zip(
            _plan.listener_configs(options), endpoints, strict=True
        )
    ]
    supervisor = WorkerSupervisor(
        configs,
        {name: options[name] for name in ("factory", "wsgi", "path")},
        options.workers,
        reactor,
        first_key=_plan.first_key(configs, endpoints),
    )
    supervisor.setServiceParent(top)
    if options.metrics_endpoint is not None:
        from twisted.application.internet import StreamServerEndpointService
        from twisted.internet.endpoints import serverFromString

        from resumetls.workers.status import metrics_site

        endpoint = serverFromString(reactor, options.metrics_endpoint)
        service_ = StreamServerEndpointService(endpoint, metrics_site(supervisor))
        service_._raiseSynchronously = True
        service_.setServiceParent(top)
    return top
