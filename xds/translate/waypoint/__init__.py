"""Waypoint translation: the mesh as LDS/CDS/EDS for stock Envoy 1.40 waypoints.

Flow: ``collect`` reads one waypoint's inputs from the mesh (binding from
``xds.translate.binding``); ``listeners``/``main_internal``/``sandwich``,
``clusters`` and ``endpoints`` build the protos; ``routes`` (fed by
``gateway_api`` and ``virtual_service`` through ``route_ir``) builds the
inline route configs and ``rbac`` the authorization filters;
``translator`` ties it together and scopes it per waypoint. ``bootstrap``
and ``cli`` give a stock Envoy the bootstrap that connects it to us.

The package imports nothing itself: ``xds bootstrap`` (and the parser of every ``xds``
command) needs ``bootstrap`` alone, without the translator and the Envoy API it loads
(a quarter of a second, which ``xds serve`` spends reading the mesh instead).
"""
