"""HTTP routers, mounted in one place (``tokenwarden.app.create_app``)."""
