"""Image patches for the classifier: :class:`LumbarPatchTransformer`.

The estimator is in ``_transformer``; its parameters are checked in ``_params``, its rows
in ``_rows`` (image paths, series descriptions), and the extraction and its warnings run
in ``_extract`` over the decoded-slice cache of ``_cache``.
"""

from ._transformer import (
    RUNTIME_PARAMS,
    LumbarPatchTransformer,
    PatchExtractionWarning,
    recipe_params,
)

__all__ = ["RUNTIME_PARAMS", "LumbarPatchTransformer", "PatchExtractionWarning", "recipe_params"]
