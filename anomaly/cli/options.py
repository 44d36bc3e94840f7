"""Option checks shared by several commands."""

from typing import Optional

from anomaly.errors import InputError
from anomaly.models.s3r import check_feature_size


def check_feature_size_option(feature_size: Optional[int], option: str = "--feature_size") -> None:
    """A one-line InputError for a feature size the model cannot take; None means the default."""
    if feature_size is not None:
        try:
            check_feature_size(feature_size)
        except ValueError as error:
            raise InputError(None, f"{option} {error}") from None
