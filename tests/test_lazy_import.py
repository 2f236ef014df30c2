"""`import spinecls` is light: torch, albumentations and OpenCV load when an estimator is used."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys

import pytest

import spinecls

HEAVY = ("torch", "albumentations", "cv2", "skorch", "sklearn")


def _loaded(code: str) -> list[str]:
    """The HEAVY modules in sys.modules after running ``code`` in a fresh interpreter."""
    script = (
        f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(result.stdout.splitlines()[-1])


def test_import_spinecls_loads_no_heavy_library():
    assert _loaded("import spinecls") == []
    assert _loaded("import spinecls; spinecls.SEVERITIES; spinecls.load_rsna") == []
    assert _loaded("from spinecls.datasets import load_rsna") == []
    # The probe sees a heavy library a lazy name loads (sklearn: a second torch import in a
    # subprocess would cost seconds; test_every_public_name_is_listed_and_resolves shows that
    # spinecls.DualHeadClassifier resolves to the estimator).
    assert _loaded("import spinecls; spinecls.model_selection") == ["sklearn"]


# Every public import path, as users write it: a re-layout of the package keeps each one.
# "module: names", continued on indented lines.
PUBLIC_NAMES = """
spinecls: CONDITIONS ConditionGroupClassifier DualHeadClassifier DualHeadEnsemble LEVELS
    IntensityNormalizer read_images LevelLocalizer LumbarPatchTransformer RSNADataWarning
    SERIES_DESCRIPTIONS SEVERITIES SEVERITY_WEIGHTS __version__ load_rsna load_series
    make_synthetic_rsna predict_studies
    split_by_study
spinecls.augment: PRESETS PRESET_ALIASES TTA_MODES AugmentedDataset lateral_swap
    make_augmentation mirrors_sides shift_pixels tta_views check_intensity_range
    intensity_transforms
spinecls.calibration: MIN_CALIBRATION_ROWS HeadView calibrate_heads check_temperatures
    fit_temperatures softmax
spinecls.classifier: DualHeadClassifier DualHeadLoss HeadAccuracy DualHeadNet HeadClasses
    HeadProbabilities
spinecls.cli: build_parser main
spinecls.datasets: make_synthetic_rsna synthetic_quirks RSNADataWarning image_paths
    load_coordinates load_rsna load_series read_series_descriptions SpineVolume
    levels_from_mask write_volumes
spinecls.datasets.baselines: baselines geometry_baseline template_baseline
spinecls.datasets.rsna: RSNADataWarning image_paths load_coordinates load_rsna load_series
    read_series_descriptions
spinecls.datasets.synthetic: make_synthetic_rsna synthetic_quirks SEVERITY_PRIORS
spinecls.datasets.volumes: SAGITTAL_DIRECTION SpineVolume levels_from_mask write_volumes
spinecls.demo: CALIBRATIONS DemoConfig MODELS run_demo split_by_study
spinecls.dicom: NORMALIZE DicomSlice MissingCodecError PixelDataError exact_percentiles
    read_slice UnreadableFileWarning UnreadableSeriesError fail_on_unreadable
spinecls.ensemble: DualHeadEnsemble
spinecls.estimator_checks: EXPECTED_FAILED_CHECKS expected_failed_checks
spinecls.evaluation: Evaluation evaluate
spinecls.geometry: ANGLE_TOLERANCE ORTHONORMAL_TOLERANCE GeometryWarning SeriesGeometry
    SliceGeometry SliceProjection SliceStack series_order
spinecls.inference: PriorFallbackWarning predict_studies submission_row_ids FALLBACK_REASONS
    UnreadableFileWarning locate_studies
spinecls.images: NORMALIZATIONS IntensityNormalizer read_images
spinecls.labels: CONDITIONS LEVELS SEVERITIES HEADS SEVERITY_WEIGHTS TARGETS SCORE_GROUPS
    SEVERITY_PRIORS SERIES_DESCRIPTIONS CONDITION_SERIES slug
spinecls.localization: LevelLocalizer OUTPUT_COLUMNS POINT_COLUMNS SCORE_RADIUS
    localization_errors
spinecls.localization_plots: localization_errors plot_localization plot_localization_errors
spinecls.metrics: CALIBRATION_BINS DualHeadReport HeadScorer RSNAScorer dual_head_report
    expected_calibration_error head_scorer reliability_table row_ids rsna_score rsna_scorer
    solution_from_frame to_submission
spinecls.model_selection: split_by_study
spinecls.models: BACKBONES MAX_WIDTH DualHead InceptionCNN InceptionModule SimpleCNN
    TorchvisionBackbone adapt_input_conv backbone_name build_backbone
    check_backbone_param_names check_backbone_params load_pretrained register_backbone
    resolve_backbone takes_weights CumulativeLink OrdinalSeverity build_ordinal
spinecls.models.heads: MAX_WIDTH DualHead check_dropout check_params check_width check_widths
    mlp_head CumulativeLink OrdinalSeverity
spinecls.models.heatmap: HeatmapLoss SliceHeatmapNet decode_heatmaps
spinecls.models.inception: InceptionCNN InceptionModule
spinecls.models.simple: SimpleCNN
spinecls.models.torchvision: ARCHITECTURES TorchvisionBackbone adapt_input_conv load_pretrained
spinecls.patches: Image Windowed crop crop_mm marker mm_to_pixels region resize whole window
spinecls.persistence: DeviceWarning FIELDS FILE_VERSION PersistenceMixin check_device
    check_state_dict decode_params encode_params load load_localizer load_pipeline save
    save_pipeline
spinecls.plotting: conv_layers plot_confusion_matrices plot_feature_maps plot_filters
    plot_patches plot_reliability plot_training_curves
spinecls.preprocessing: RUNTIME_PARAMS LumbarPatchTransformer PatchExtractionWarning
    recipe_params
spinecls.report: write_report
spinecls.routing: CONDITION_GROUPS ConditionGroupClassifier
"""
PUBLIC = {
    module: names.split()
    for module, names in re.findall(r"^(\S+):((?:.*\n?(?: .*\n?)*))", PUBLIC_NAMES, re.M)
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_imports_from_where_it_did(module):
    imported = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(imported, name)]
    assert not missing, f"from {module} import {', '.join(missing)} fails"
    listed = getattr(imported, "__all__", None)
    if listed is not None:  # a name made public must be added to PUBLIC (and kept)
        assert sorted(set(listed) - set(PUBLIC[module])) == []


def test_the_lazy_top_level_lists_its_names_and_refuses_others():
    assert set(spinecls.__all__) <= set(dir(spinecls))
    assert "metrics" in dir(spinecls) and spinecls.metrics.dual_head_report
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        spinecls.no_such_name  # noqa: B018
