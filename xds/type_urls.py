"""Type URLs: the names under which each resource kind travels over xDS.

Shared by translation (which wraps messages in ``Any``) and serving (which
routes subscriptions and orders pushes); kept here so neither layer imports
the other.
"""

from collections.abc import Collection, Iterable
from typing import Final

_PREFIX: Final = "type.googleapis.com/"

LISTENER: Final = _PREFIX + "envoy.config.listener.v3.Listener"
CLUSTER: Final = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT: Final = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTE: Final = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET: Final = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
ADDRESS: Final = _PREFIX + "istio.workload.Address"
AUTHORIZATION: Final = _PREFIX + "istio.security.Authorization"

# istioctl's debug types; the resources carry no "type.googleapis.com/" prefix.
DEBUG_SYNCZ: Final = "istio.io/debug/syncz"
DEBUG_CONFIG_DUMP: Final = "istio.io/debug/config_dump"
DEBUG: Final = "istio.io/debug"

# Make before break: clusters and endpoints exist before the listeners that
# use them, and secrets before listeners warm (istiod's PushOrder).
PUSH_ORDER: Final[tuple[str, ...]] = (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    SECRET,
    ADDRESS,
    AUTHORIZATION,
)

# In state-of-the-world xDS an empty name list means "everything" for these
# types and "nothing" for all others (EDS, RDS, SDS).
SOTW_WILDCARD: Final = frozenset({LISTENER, CLUSTER, ADDRESS, AUTHORIZATION})

SHORT_NAMES: Final = {
    LISTENER: "lds",
    CLUSTER: "cds",
    ENDPOINT: "eds",
    ROUTE: "rds",
    SECRET: "sds",
    ADDRESS: "wds",
    AUTHORIZATION: "wads",
}


def short_name(type_url: str) -> str:
    """The metric/log label istiod uses for a type ("cds", "wds", ...)."""
    return SHORT_NAMES.get(type_url, type_url.rsplit("/", 1)[-1])


def in_push_order(type_urls: Iterable[str]) -> list[str]:
    """``type_urls`` sorted by ``PUSH_ORDER``; unknown types last, by name."""
    if isinstance(type_urls, Collection) and len(type_urls) < 2:
        return list(type_urls)  # most pushes carry one type: a per-stream sort saved
    return sorted(type_urls, key=_push_rank)


_RANKS: Final = {t: i for i, t in enumerate(PUSH_ORDER)}


def _push_rank(type_url: str) -> tuple[int, str]:
    return _RANKS.get(type_url, len(_RANKS)), type_url
