"""`openapi.yaml`: the document a development-mode app serves, written for the repository (a test keeps them equal).

Security settings do not change the document, so it is built from a development-mode app over an in-memory database
(writing it never touches `var/`).
"""

from __future__ import annotations

import yaml

from service.app import create_app
from service.config import Settings


def openapi_yaml() -> str:
    app = create_app(Settings(dev_mode=True, database_url="sqlite://"))
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True, width=120)
