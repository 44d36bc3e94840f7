"""Features released by other projects, turned into datasets every tool takes as ``--dataset NAME``
(``s3r import-features --from <release>``).

An import writes what ``s3r make-dataset`` writes but the dictionary (``s3r learn-dictionary`` learns it): the
features in this project's layout, the lists, the frame-level ground truth and the description. One release per
module; ``IMPORTERS`` names them.
"""

from typing import Callable, Dict

from anomaly.importing.vadclip import import_vadclip

IMPORTERS: Dict[str, Callable[..., int]] = {"vadclip": import_vadclip}
RELEASES = tuple(IMPORTERS)
