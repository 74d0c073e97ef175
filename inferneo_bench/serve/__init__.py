"""`inferneo-bench serve`: an OpenAI-compatible HTTP server over the project's scheduler core and engine.

One engine thread (engine_loop.py) drives the synchronous scheduler core and the engine on the wall clock; the
HTTP side (app.py, FastAPI on uvicorn) parses requests, tokenises, and streams the tokens the engine thread
hands over, never blocking it. Protocol details: docs/serving.md.
"""
