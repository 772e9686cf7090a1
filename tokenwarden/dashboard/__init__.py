"""The on-call dashboard: a static single-page app served by the service at ``/``.

Plain HTML, CSS and JavaScript modules shipped in the package (``static/``): no build step,
nothing fetched from anywhere but this service. The page and its assets are open (they hold
no data); everything the dashboard shows comes from the admin API under ``/v1`` with the
credential the user signs in with (``Authorization: Bearer …``), so the API's roles and
tenant isolation apply unchanged. Every response carries a strict Content-Security-Policy
(``routes.SECURITY_HEADERS``): scripts and styles from this origin only, no inline script,
no framing.
"""

from tokenwarden.dashboard.routes import CONTENT_SECURITY_POLICY, router

__all__ = ["CONTENT_SECURITY_POLICY", "router"]
