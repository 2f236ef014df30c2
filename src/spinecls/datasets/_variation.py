"""The clinical variation of the synthetic studies: what makes real lumbar MRI hard to read.

The plain phantom shows every disc alike, the sacrum as a straight column and the spine
near the middle of a 200-250 mm field of view. Real scans are where level finding
failed (RSNA.md, "Real DICOM headers and real anatomy"): L5/S1 is often the faintest
disc (thin, dark, cut obliquely, near the lower edge of the field of view), the sacrum
shows rudimentary disc-like remnants, a few per cent of people have a lumbosacral
transitional vertebra, fields of view run 200-400 mm and contrasts vary (T1, T2,
STIR, the water and fat images of a Dixon sequence).

``variation="clinical"`` draws these per study, as a :class:`Quirks`, first thing
from the study's random generator (so they can be read back without drawing the rest,
:func:`draw_quirks`), then shapes the spine with :func:`vary`. ``CLINICAL`` holds every
rate and range in one place. The labels stay on the anatomical L1/L2 to L5/S1 discs
whatever the quirks: a lumbarised S1's mobile S1/S2 disc is not labelled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..labels import LEVELS
from ._anatomy import Spine

VARIATIONS = ("plain", "clinical")
"""The values of ``make_synthetic_rsna(..., variation=)``."""

TRANSITIONAL = ("none", "sacralised L5", "lumbarised S1")
"""A study's lumbosacral junction: normal, L5 fused to the sacrum, or S1 free."""

CLINICAL: dict[str, float | tuple[float, float] | dict[str, float]] = {
    # Shares of studies. Sources: RSNA.md's real anatomy; a third of the studies with a
    # faint and/or oblique L5/S1, a transitional vertebra in about 5 %.
    "faint_l5s1": 0.22,  # L5/S1 degenerated: thin, dark, low contrast
    "oblique_l5s1": 0.15,  # L5/S1 tilted steeply forwards and a little sideways
    "sacralised_l5": 0.03,  # L5 fused to the sacrum: L5/S1 a faint remnant, no endplates
    "lumbarised_s1": 0.02,  # S1 free: S1/S2 a mobile disc like a lumbar one (unlabelled)
    "s1_s2_remnant": 0.8,  # a rudimentary disc visible between S1 and S2 ...
    "s2_s3_remnant": 0.5,  # ... and, of those, one between S2 and S3 as well
    "low_coverage": 0.15,  # the sagittal field of view ends just below L5/S1
    "t1_contrast": {"T1": 0.85, "T1 water": 0.15},  # the Sagittal T1 series
    "t2_contrast": {"T2": 0.55, "STIR": 0.25, "T2 water": 0.13, "T2 fat": 0.07},
    # Ranges, drawn uniformly.
    "fov_mm": (200.0, 400.0),  # the sagittal field of view (image height), per study
    "fov_jitter": 0.05,  # each sagittal series within this fraction of it
    "off_centre_mm": 60.0,  # how far the spine's centre may lie from the field's (25 plain)
    "disc_signal": (0.7, 1.0),  # contrast of a lumbar disc against bone (healthy = 1)
    "disc_height": (0.85, 1.05),  # height of a lumbar disc (the study's disc height = 1)
    "faint_signal": (0.1, 0.35),  # a faint L5/S1
    "faint_height": (0.45, 0.7),
    "fused_signal": (0.03, 0.12),  # a sacralised L5's L5/S1
    "fused_height": (0.25, 0.4),
    "remnant_signal": (0.25, 0.55),  # a sacral remnant
    "remnant_height": (0.3, 0.6),
    "oblique_deg": (12.0, 25.0),  # an oblique L5/S1's extra forward tilt
    "oblique_side_deg": (3.0, 8.0),  # ... and sideways, either way
    "sacral_angle_deg": (30.0, 50.0),  # the sacrum's slope 100 mm below its top
    "thoracic_discs": 7,  # discs drawn above T11/T12, for the large fields of view
}
"""Every rate and range of ``variation="clinical"``."""

_ENDPLATE = {"lumbar": 1.2, "faint": 0.8, "remnant": 0.6, "fused": 0.0}  # mm of dark cortex
_SACRAL_BODIES = ((26.0, 31.0), (22.0, 26.0), (18.0, 22.0), (15.0, 18.0))  # S1 to S4 (mm)

SEQUENCES: dict[str, dict] = {
    "T1": dict(ScanningSequence="SE", RepetitionTime=600.0, EchoTime=10.0),
    "T2": dict(ScanningSequence="SE", RepetitionTime=3500.0, EchoTime=100.0),
    "STIR": dict(
        ScanningSequence=["SE", "IR"], RepetitionTime=4000.0, EchoTime=60.0, InversionTime=160.0
    ),
    "T1 water": dict(
        ScanningSequence="SE",
        RepetitionTime=600.0,
        EchoTime=10.0,
        ImageType=["DERIVED", "PRIMARY", "DIXON", "WATER"],
    ),
    "T2 water": dict(
        ScanningSequence="SE",
        RepetitionTime=3500.0,
        EchoTime=100.0,
        ImageType=["DERIVED", "PRIMARY", "DIXON", "WATER"],
    ),
    "T2 fat": dict(
        ScanningSequence="SE",
        RepetitionTime=3500.0,
        EchoTime=100.0,
        ImageType=["DERIVED", "PRIMARY", "DIXON", "FAT"],
    ),
}
"""DICOM attributes a clinical study's series carry for each contrast."""


@dataclass(frozen=True)
class Quirks:
    """What a clinical study has that the plain phantom lacks (see ``CLINICAL``).

    Attributes
    ----------
    transitional : str
        One of :data:`TRANSITIONAL`.
    faint_l5s1, oblique_l5s1 : bool
        L5/S1 drawn faint (or fused: a sacralised L5's is always faint), or tilted.
    l5s1_signal, l5s1_height : float
        L5/S1's contrast against bone and height, as fractions of a healthy disc's.
    l5s1_tilt, l5s1_side_tilt : float
        L5/S1's extra tilt (degrees) forwards and sideways (0 unless oblique).
    sacral_discs : int
        Discs drawn below L5/S1: a lumbarised S1's mobile S1/S2, then the rudimentary
        remnants.
    remnant_signal, remnant_height : float
        The remnants' contrast and height, as fractions of a healthy disc's.
    fov_mm : float
        The sagittal series' field of view (image height, mm), within ``fov_jitter``.
    low_coverage : bool
        The sagittal field of view ends just below L5/S1.
    t1_contrast, t2_contrast : str
        Contrast of the Sagittal T1 and of the Sagittal T2/STIR series.
    """

    transitional: str
    faint_l5s1: bool
    oblique_l5s1: bool
    l5s1_signal: float
    l5s1_height: float
    l5s1_tilt: float
    l5s1_side_tilt: float
    sacral_discs: int
    remnant_signal: float
    remnant_height: float
    fov_mm: float
    low_coverage: bool
    t1_contrast: str
    t2_contrast: str

    def as_dict(self) -> dict:
        return asdict(self)

    def sagittal_fov(self, rng: np.random.Generator) -> float:
        """One sagittal series' field of view (mm)."""
        jitter = CLINICAL["fov_jitter"]
        lo, hi = CLINICAL["fov_mm"]
        return float(np.clip(self.fov_mm * rng.uniform(1 - jitter, 1 + jitter), lo, hi))


def _pick(rng, shares: dict[str, float]) -> str:
    names = list(shares)
    return names[int(rng.choice(len(names), p=list(shares.values())))]


def draw_quirks(rng: np.random.Generator) -> Quirks:
    """Draw one clinical study's quirks: the first draws from its generator."""
    r = CLINICAL
    normal = 1 - r["sacralised_l5"] - r["lumbarised_s1"]
    shares = [normal, r["sacralised_l5"], r["lumbarised_s1"]]
    transitional = TRANSITIONAL[int(rng.choice(len(TRANSITIONAL), p=shares))]
    sacralised = transitional == "sacralised L5"
    faint = bool(rng.random() < r["faint_l5s1"]) or sacralised
    oblique = bool(rng.random() < r["oblique_l5s1"])
    if sacralised:
        signal, height = rng.uniform(*r["fused_signal"]), rng.uniform(*r["fused_height"])
    elif faint:
        signal, height = rng.uniform(*r["faint_signal"]), rng.uniform(*r["faint_height"])
    else:
        signal, height = rng.uniform(*r["disc_signal"]), rng.uniform(*r["disc_height"])
    tilt = side = 0.0
    if oblique:
        tilt = rng.uniform(*r["oblique_deg"])
        side = rng.uniform(*r["oblique_side_deg"]) * rng.choice([-1.0, 1.0])
    remnants = 0
    if rng.random() < r["s1_s2_remnant"]:
        remnants = 1 + int(rng.random() < r["s2_s3_remnant"])
    return Quirks(
        transitional=transitional,
        faint_l5s1=faint,
        oblique_l5s1=oblique,
        l5s1_signal=float(signal),
        l5s1_height=float(height),
        l5s1_tilt=float(tilt),
        l5s1_side_tilt=float(side),
        sacral_discs=remnants + (transitional == "lumbarised S1"),
        remnant_signal=float(rng.uniform(*r["remnant_signal"])),
        remnant_height=float(rng.uniform(*r["remnant_height"])),
        fov_mm=float(rng.uniform(*r["fov_mm"])),
        low_coverage=bool(rng.random() < r["low_coverage"]),
        t1_contrast=_pick(rng, r["t1_contrast"]),
        t2_contrast=_pick(rng, r["t2_contrast"]),
    )


def vary(spine: Spine, quirks: Quirks, rng: np.random.Generator) -> None:
    """Shape a plain spine (in place) into a clinical one with ``quirks``.

    Adds the thoracic discs above T11/T12 and the sacral discs below L5/S1, and gives
    every disc its height, signal, endplates and tilt; the sacrum bends backwards from
    its top (L5/S1, or S1/S2 below a lumbarised S1), tapers to the coccyx and holds the
    end of the thecal sac; the spinal cord ends at about L1.
    """
    r = CLINICAL
    h = spine.disc_height
    n_top, n_bottom = int(r["thoracic_discs"]), quirks.sacral_discs
    lumbarised = quirks.transitional == "lumbarised S1"
    body = float(np.mean(-np.diff(spine.disc_z))) - h

    # Thoracic discs: thinner, between smaller bodies, going up.
    t_scale = rng.uniform(0.5, 0.7, size=n_top)
    t_bodies = body * (0.95 - 0.025 * np.arange(1, n_top + 1)) + rng.normal(0.0, 0.8, n_top)
    above = spine.disc_z[0] + np.cumsum(t_bodies + h * t_scale)
    # Sacral discs: a lumbarised S1's mobile disc, then remnants between shrinking bodies.
    kinds = ["mobile"] * lumbarised + ["remnant"] * (n_bottom - lumbarised)
    b_scale = np.array(
        [rng.uniform(*r["disc_height"]) if k == "mobile" else quirks.remnant_height for k in kinds]
    )
    b_bodies = [rng.uniform(24.0, 29.0)] * lumbarised + [
        rng.uniform(*_SACRAL_BODIES[i]) for i in range(n_bottom - lumbarised)
    ]
    below = spine.disc_z[-1] - np.cumsum(np.asarray(b_bodies) + h * b_scale)

    n = len(spine.disc_z)
    scale = rng.uniform(*r["disc_height"], size=n)
    scale[: spine.top] = rng.uniform(0.7, 0.9, size=spine.top)  # T11/T12, T12/L1
    signal = rng.uniform(*r["disc_signal"], size=n)
    endplate = np.full(n, _ENDPLATE["lumbar"])
    l5s1 = spine.index(len(LEVELS) - 1)
    scale[l5s1], signal[l5s1] = quirks.l5s1_height, quirks.l5s1_signal
    if quirks.transitional == "sacralised L5":
        endplate[l5s1] = _ENDPLATE["fused"]
    elif quirks.faint_l5s1:
        endplate[l5s1] = _ENDPLATE["faint"]
    tilt = np.zeros((n, 2))
    tilt[l5s1] = np.radians([quirks.l5s1_tilt, quirks.l5s1_side_tilt])

    b_signal = np.array(
        [rng.uniform(*r["disc_signal"]) if k == "mobile" else quirks.remnant_signal for k in kinds]
    )
    b_plate = np.array([_ENDPLATE["lumbar" if k == "mobile" else "remnant"] for k in kinds])
    walk_up = spine.lateral[0] + np.cumsum(rng.normal(0.0, 0.4, n_top))
    walk_down = spine.lateral[-1] + np.cumsum(rng.normal(0.0, 0.3, n_bottom))
    foramina_up = spine.foramen_x[:, :1] - 0.2 * np.arange(1, n_top + 1)
    foramina_down = np.repeat(spine.foramen_x[:, -1:], n_bottom, axis=1)

    l5s1 += n_top
    spine.update(
        disc_z=np.concatenate([above[::-1], spine.disc_z, below]),
        lateral=np.concatenate([walk_up[::-1], spine.lateral, walk_down]),
        foramen_x=np.concatenate([foramina_up[:, ::-1], spine.foramen_x, foramina_down], 1),
        disc_scale=np.concatenate([t_scale[::-1], scale, b_scale]),
        disc_signal=np.concatenate([rng.uniform(0.8, 1.0, n_top), signal, b_signal]),
        endplate=np.concatenate([np.full(n_top, 1.0), endplate, b_plate]),
        tilt=np.concatenate([np.zeros((n_top, 2)), tilt, np.zeros((n_bottom, 2))]),
        top=spine.top + n_top,
        sacrum=l5s1 + lumbarised,
        sacral_bend=math.tan(math.radians(rng.uniform(*r["sacral_angle_deg"]))) / 200.0,
        coccyx=rng.uniform(125.0, 150.0),
        sac_end=rng.uniform(35.0, 55.0),
        conus=float(spine.disc_z[spine.top]) + rng.uniform(5.0, 30.0),
    )
