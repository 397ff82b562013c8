"""An unexpected error is a JSON 500 naming a logged incident, never request data, and the connection survives."""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn


def test_an_unexpected_error_is_a_json_500_and_the_keep_alive_connection_stays_open(make_app) -> None:
    app = make_app()

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("Ann Example's record")  # request data in an error must never reach the client

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            failed = client.get("/boom")
            first = failed.extensions["network_stream"].get_extra_info("client_addr")
            after = client.get("/healthz")
            second = after.extensions["network_stream"].get_extra_info("client_addr")
    finally:
        server.should_exit = True
        thread.join(10)
    assert failed.status_code == 500
    assert failed.json()["error"] == "internal_error"
    assert "incident" in failed.json()["message"]
    assert "Ann" not in failed.text
    assert after.status_code == 200
    assert first == second  # the same connection served both: the 500 did not drop it
