"""The baseline for HTTP round trips: a FastAPI endpoint that only parses the same JSON and answers no cards."""

from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/cds-services/mscc-patient-view")
async def parse_only(request: Request) -> dict[str, list[object]]:
    await request.json()
    return {"cards": []}
