"""mcfault: a client for the admin API of mcfault, the fault-injection proxy
for memcached. Standard library only.

    import mcfault
    mc = mcfault.Mcfault("http://127.0.0.1:8080")
    with mc.fault({"name": "oom", "command": "set", "action": "error",
                   "message": "SERVER_ERROR out of memory storing object"}):
        ...  # every set through the proxy fails here

The pytest plugin (fixtures mcfault, mcfault_server, mcfault_proxy) is
mcfault.pytest_plugin; mcfault.process starts an mcfault beside a suite.
"""

from .client import (DEFAULT_TIMEOUT, DEFAULT_URL, ApiError,
                     ConnectionFailed, Document, Event, Events, Fault,
                     Health, Mcfault, McfaultError, NotFound, ProxyHealth,
                     ProxyStats, ProxySwitch, Rule, RuleChange, RuleError,
                     RuleSpec, RuleStats, Stats, Timeout, UpstreamError,
                     UpstreamReply, UpstreamTimeout)

__version__ = '0.1.0'

__all__ = [
    'Mcfault', 'Fault', 'DEFAULT_URL', 'DEFAULT_TIMEOUT',
    'Rule', 'RuleChange', 'Event', 'Events', 'Stats', 'ProxyStats',
    'RuleStats', 'Health', 'ProxyHealth', 'ProxySwitch', 'UpstreamReply',
    'McfaultError', 'ApiError', 'RuleError', 'NotFound', 'UpstreamError',
    'UpstreamTimeout', 'ConnectionFailed', 'Timeout',
    'RuleSpec', 'Document',
]
