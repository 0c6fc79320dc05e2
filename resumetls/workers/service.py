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
    supervisor = WorkerSupervisor(
        _plan.listener_configs(options),
        {name: options[name] for name in ("factory", "wsgi", "path")},
        options.workers,
        reactor,
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
