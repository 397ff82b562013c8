"""An unexpected error is a JSON 500 naming a logged incident, never request data, and the connection survives."""

from __future__ import annotations

import httpx

from tests.liveserver import serving


def test_an_unexpected_error_is_a_json_500_and_the_keep_alive_connection_stays_open(make_app) -> None:
    app = make_app()

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("Ann Example's record")  # request data in an error must never reach the client

    with serving(app) as base, httpx.Client(base_url=base, timeout=5) as client:
        failed = client.get("/boom")
        first = failed.extensions["network_stream"].get_extra_info("client_addr")
        after = client.get("/healthz")
        second = after.extensions["network_stream"].get_extra_info("client_addr")
    assert failed.status_code == 500
    assert failed.json()["error"] == "internal_error"
    assert "incident" in failed.json()["message"]
    assert "Ann" not in failed.text
    assert after.status_code == 200
    assert first == second  # the same connection served both: the 500 did not drop it
