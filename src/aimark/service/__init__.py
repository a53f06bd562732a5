"""The HTTP door: OpenAI-shaped generation (watermarked, labelled, registered), public verification and its page.

Start it with `aimark serve`; build it in Python with `aimark.service.app.create_app(ServiceRuntime.start(config))`.
Imports FastAPI only in its submodules, so `import aimark.service` stays cheap.
"""
