"""Live detection: a stream's snippets scored as they arrive, causally, with alerts and a report when it ends."""
