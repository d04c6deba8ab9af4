"""The queue board and the probes: a Starlette app served by uvicorn on the daemon's loop."""
