"""Authentication and authorization of the API.

* ``principal``: who is calling — tenant, roles (viewer < responder < admin), scopes;
* ``api_keys``: ``twk_<id>_<secret>`` keys, hashed at rest, scoped, per tenant, revocable;
* ``bearer``: OIDC access tokens (JWTs) of the configured issuer, keys from its JWKS;
* ``deps``: the FastAPI dependencies routes declare (``Viewer``, ``Admin``, ``Ingest``, …);
* ``settings``: ``[auth]``.

Nothing is re-exported here, so ``tokenwarden.settings`` can import ``auth.settings``
without loading the rest.
"""
