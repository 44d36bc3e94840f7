"""Live detection: a stream's snippets scored as they arrive, causally, with alerts and a report when it ends.

``source`` opens what is watched (a file, a pipe, a URL, a capture device); ``stream`` decodes it into snippets in a
thread of its own, dropping whole snippets from a live source when the network falls behind; ``causal`` scores each
snippet on a window of the snippets up to it; ``alerts`` turns scores into events with hysteresis; ``watch`` runs
them (``s3r watch``); ``benchmark`` measures what causal scores cost in accuracy and how fast a snippet is scored
here (``s3r benchmark-live``).
"""
