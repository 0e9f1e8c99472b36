"""The simulation configuration: one YAML file, validated by pydantic.

Only user-facing configuration lives here. The models never hold big arrays and never read files
when built; the physics functions take plain numbers, not these models. Every section forbids
unknown keys and constrains every number. Units follow CONVENTIONS.md: Å, degrees, and the unit in
the name where it is ambiguous (``voltage_kv``, ``cs_mm``, ``defocus_um``, ``dose_e_per_a2``).

Loading: :func:`load_config` reads YAML, applies ``--set section.key=value`` overrides and the
seed, and validates. :func:`dump_config` writes the fully resolved config (every default filled
in) that is saved next to every output as ``config.resolved.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field, ValidationError, model_validator

from tomosim.errors import TomosimError
from tomosim.microscope.ctf import Optics
from tomosim.sample_config import (
    CONFIG_VERSION as CONFIG_VERSION,
)
from tomosim.sample_config import (
    MAX_VOLUME_FRACTION as MAX_VOLUME_FRACTION,
)
from tomosim.sample_config import (  # re-exported: the whole config is tomosim.config
    Angle as Angle,
)
from tomosim.sample_config import (
    CarbonConfig as CarbonConfig,
)
from tomosim.sample_config import (
    ContaminationConfig as ContaminationConfig,
)
from tomosim.sample_config import (
    ContextConfig as ContextConfig,
)
from tomosim.sample_config import (
    DecorationConfig as DecorationConfig,
)
from tomosim.sample_config import (
    FiducialsConfig as FiducialsConfig,
)
from tomosim.sample_config import (
    FilamentSpecies as FilamentSpecies,
)
from tomosim.sample_config import (
    OrientationMode as OrientationMode,
)
from tomosim.sample_config import (
    PositiveLength as PositiveLength,
)
from tomosim.sample_config import (
    PotentialConfig as PotentialConfig,
)
from tomosim.sample_config import (
    ProteinsConfig as ProteinsConfig,
)
from tomosim.sample_config import (
    ProteinSpecies as ProteinSpecies,
)
from tomosim.sample_config import (
    SampleConfig as SampleConfig,
)
from tomosim.sample_config import (
    Section as Section,
)
from tomosim.sample_config import (
    SlabConfig as SlabConfig,
)
from tomosim.sample_config import (
    StructureOptions as StructureOptions,
)
from tomosim.sample_config import (
    VesiclesConfig as VesiclesConfig,
)

# --------------------------------------------------------------------------------------------
# The microscope
# --------------------------------------------------------------------------------------------


class TiltConfig(Section):
    """Tilt scheme and its errors."""

    min_angle: float = Field(-60.0, gt=-90, lt=90, description="degrees; ±90 would be edge-on")
    max_angle: float = Field(60.0, gt=-90, lt=90, description="degrees; ±90 would be edge-on")
    step: float = Field(2.0, gt=0, le=90)
    order: Literal["unidirectional", "bidirectional", "dose_symmetric"] = "dose_symmetric"
    group_size: int = Field(2, ge=1, le=100, description="dose-symmetric group size (Hagen)")
    start_angle: float = Field(
        0.0, ge=-90, le=90, description="first tilt of bidirectional and dose-symmetric orders"
    )
    tilt_axis_angle: float = Field(0.0, ge=-180, le=180)
    shift_error: float = Field(0.0, ge=0, le=1e4, description="per-tilt shift s.d., Å")
    rotation_error: float = Field(0.0, ge=0, le=45, description="per-tilt in-plane rotation s.d.")
    angle_error: float = Field(0.0, ge=0, le=10, description="per-tilt tilt-angle s.d., degrees")

    @model_validator(mode="after")
    def _range(self) -> TiltConfig:
        if self.min_angle > self.max_angle:
            raise ValueError("tilt min_angle is larger than max_angle")
        return self


class OpticsConfig(Section):
    """Lens and CTF, CTFFIND convention (defocus positive = underfocus)."""

    voltage_kv: float = Field(Optics.voltage_kv, gt=0, le=3000)
    cs_mm: float = Field(Optics.cs_mm, ge=0, le=20)
    amplitude_contrast: float = Field(Optics.amplitude_contrast, ge=0, lt=1)
    defocus_um: float = Field(3.0, ge=-20, le=50)
    astigmatism_um: float = Field(0.0, ge=0, le=10, description="defocus_u - defocus_v, µm")
    astigmatism_angle: float = Field(0.0, ge=-180, le=180)
    phase_shift: float = Field(0.0, ge=-180, le=180, description="phase plate shift, degrees")
    defocus_jitter_um: float = Field(0.0, ge=0, le=10, description="per-tilt defocus s.d., µm")
    defocus_gradient: bool = Field(True, description="defocus varies across tilted images")
    depth_defocus: bool = Field(False, description="defocus varies through the sample thickness")
    b_factor: float = Field(0.0, ge=0, le=1e4, description="CTF envelope B-factor, Å²")
    source_spread_mrad: float = Field(0.0, ge=0, le=10, description="spatial coherence envelope")
    energy_spread_ev: float = Field(0.0, ge=0, le=10, description="temporal coherence envelope")
    chromatic_aberration_mm: float = Field(Optics.chromatic_aberration_mm, ge=0, le=20)
    padding: float = Field(0.25, ge=0, le=2, description="fractional padding against wrap-around")


class DoseConfig(Section):
    """Electron dose, radiation damage and inelastic scattering."""

    total_dose_e_per_a2: float = Field(100.0, gt=0, le=1e4)
    weighting: Literal["uniform", "cosine"] = "uniform"
    exposure_filter: bool = True
    energy_filter: bool = True
    inelastic_mean_free_path: float = Field(3500.0, gt=0, le=1e6, description="Å")


class DetectorConfig(Section):
    """Electron counting detector."""

    preset: Literal["ideal", "k3", "falcon4"] = "k3"
    dqe: float | None = Field(None, gt=0, le=1, description="DQE at zero frequency; None = preset")
    mtf_falloff: float | None = Field(None, ge=0, le=10, description="None = preset")
    read_noise: float = Field(0.0, ge=0, le=1e3, description="Gaussian read noise, electrons")
    noise: bool = Field(True, description="Poisson shot noise")
    write_noise_free: bool = False
    write_half_sets: bool = Field(False, description="odd/even half-dose series and tomograms")
    binning: int = Field(
        1,
        ge=1,
        le=16,
        description="Fourier binning from the physical detector pixel (sample.pixel_size / "
        "binning) to the simulation pixel; 1 = the simulation pixel is the detector pixel",
    )


class AcquisitionConfig(Section):
    """Acquisition imperfections left after motion correction, alignment and CTF estimation.

    ``profile`` gives every size (see :mod:`tomosim.microscope.acquisition`); a field set here
    overrides the profile's value. They add to the independent per-tilt errors of ``tilt``.
    """

    profile: Literal["realistic", "ideal"] = "realistic"
    residual_shift: float | None = Field(
        None, ge=0, le=1e3, description="residual alignment shift s.d. per axis, Å"
    )
    shift_correlation: float | None = Field(
        None, ge=0, lt=1, description="correlation of consecutive exposures' residual errors"
    )
    residual_rotation: float | None = Field(
        None, ge=0, le=10, description="residual in-plane rotation s.d., degrees"
    )
    tilt_axis_error: float | None = Field(
        None, ge=0, le=10, description="s.d. of the constant tilt-axis angle error, degrees"
    )
    tilt_offset: float | None = Field(
        None, ge=0, le=10, description="s.d. of the constant tilt-angle offset, degrees"
    )
    motion_blur: float | None = Field(
        None, ge=0, le=1e3, description="mean residual beam-induced motion per exposure, Å"
    )
    defocus_mismatch: float | None = Field(
        None, ge=0, le=1e5, description="s.d. of assumed minus true defocus per tilt, Å"
    )


class MicroscopeConfig(Section):
    """The microscope: tilt scheme, optics, dose and detector."""

    tilt: TiltConfig = TiltConfig()
    optics: OpticsConfig = OpticsConfig()
    dose: DoseConfig = DoseConfig()
    detector: DetectorConfig = DetectorConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()


class ReconstructionConfig(Section):
    """Weighted backprojection (see :func:`tomosim.reconstruct.weighted_backprojection`)."""

    thickness_px: int | None = Field(None, ge=1, le=8192, description="None = sample z size")
    lowpass_cutoff: float = Field(0.35, gt=0, le=0.5, description="radial filter, cycles/pixel")
    lowpass_falloff: float = Field(0.035, ge=0, le=0.5)
    sirt_like_iterations: int = Field(0, ge=0, le=1000)
    phase_flip: bool = False
    wiener_snr: float | None = Field(
        None, gt=0, le=1e6, description="with phase_flip: a Wiener filter of this SNR instead"
    )
    binning: int = Field(1, ge=1, le=16)
    invert: bool = False


class OutputConfig(Section):
    """What is written besides the volumes."""

    previews: bool = True
    tomogram_name: str = Field("TS_01", min_length=1, description="rlnTomoName in particles.star")
    volume_format: Literal["mrc", "ome-zarr", "both"] = Field(
        "mrc", description="volumes (ground truth, labels, instances, tomogram) as MRC, OME-Zarr"
    )
    ome_zarr_levels: int = Field(3, ge=1, le=8, description="OME-Zarr resolution levels")
    ome_zarr_chunk_px: int = Field(64, ge=8, le=1024, description="OME-Zarr chunk edge, voxels")


# --------------------------------------------------------------------------------------------
# The root
# --------------------------------------------------------------------------------------------


class SimulationConfig(Section):
    """A whole simulation: one YAML file."""

    version: Literal[1] = CONFIG_VERSION
    seed: int = Field(0, ge=0, le=2**63 - 1)
    classes: list[str] | None = Field(
        None, description="class names in id order (1, 2, ...); None = order of first use"
    )
    potential: PotentialConfig = PotentialConfig()
    sample: SampleConfig = SampleConfig()
    proteins: ProteinsConfig = ProteinsConfig()
    filaments: list[FilamentSpecies] = []
    vesicles: VesiclesConfig = VesiclesConfig()
    microscope: MicroscopeConfig = MicroscopeConfig()
    reconstruction: ReconstructionConfig = ReconstructionConfig()
    output: OutputConfig = OutputConfig()
    context: ContextConfig = ContextConfig()

    @model_validator(mode="after")
    def _binning_divides(self) -> SimulationConfig:
        factor = self.reconstruction.binning
        _, ny, nx = self.sample.shape
        if ny % factor or nx % factor:
            raise ValueError(
                f"reconstruction.binning {factor} does not divide the sample's y, x shape "
                f"({ny}, {nx})"
            )
        return self

    @model_validator(mode="after")
    def _context_fits(self) -> SimulationConfig:
        context, sample = self.context, self.sample
        box_z = sample.shape[0] * sample.pixel_size
        if context.slab.enabled and context.slab.thickness is not None:
            if context.slab.thickness >= box_z:
                raise ValueError(
                    f"context.slab.thickness {context.slab.thickness:g} Å is not thinner than the "
                    f"sample box ({sample.shape[0]} × {sample.pixel_size:g} Å = {box_z:g} Å)"
                )
        if (context.carbon.enabled or context.contamination.count) and not context.slab.enabled:
            raise ValueError("context.carbon and context.contamination need context.slab.enabled")
        if context.fiducials.count:
            diameter = 2 * context.fiducials.radius
            smallest = min(sample.shape) * sample.pixel_size
            slab = context.slab.thickness if context.slab.enabled else sample.ice_thickness
            if diameter >= smallest or (slab is not None and diameter >= slab):
                raise ValueError(
                    f"context.fiducials: beads of {diameter:g} Å diameter do not fit in the sample "
                    f"({smallest:g} Å smallest box side, slab {slab} Å)"
                )
        return self

    @model_validator(mode="after")
    def _class_names(self) -> SimulationConfig:
        used = self.used_labels()
        if self.classes is not None:
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes: names must be unique")
            if "background" in self.classes:
                raise ValueError("classes: 'background' is class 0 and must not be listed")
            unknown = [name for name in used if name not in self.classes]
            if unknown:
                raise ValueError(f"unknown class name(s) {unknown}; classes lists {self.classes}")
        names = [s.name for s in self.proteins.species] + [f.name for f in self.filaments]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"species/filament names must be unique, repeated: {dup}")
        known = {s.name for s in self.proteins.species}
        in_membrane = [s.name for s in self.proteins.species if s.in_membrane and s.count]
        if in_membrane and self.vesicles.count == 0 and self.vesicles.sheets == 0:
            raise ValueError(
                f"membrane proteins {in_membrane} need membranes: set vesicles.count or "
                "vesicles.sheets"
            )
        for key in ("proteins_inside", "proteins_outside"):
            for name in getattr(self.vesicles, key):
                if name not in known:
                    raise ValueError(f"vesicles.{key}: unknown species {name!r}")
        self._check_fits_box()
        return self

    def _check_fits_box(self) -> None:
        """Refuse ice thicker than the box and vesicles that cannot fit in it."""
        sample = self.sample
        extent = [n * sample.pixel_size for n in sample.shape]  # (z, y, x) Å
        if sample.ice_thickness is not None and sample.ice_thickness > extent[0]:
            raise ValueError(
                f"sample.ice_thickness {sample.ice_thickness:g} Å is thicker than the box "
                f"({sample.shape[0]} voxels x {sample.pixel_size:g} Å = {extent[0]:g} Å in z); "
                "the ice must lie inside the volume"
            )
        ice = sample.ice_thickness if sample.ice_thickness is not None else extent[0]
        room = min(ice, extent[1], extent[2])
        vesicles = self.vesicles
        smallest = 2 * vesicles.radius[0] / vesicles.max_aspect  # thinnest diameter possible
        if vesicles.count > 0 and smallest > room:
            raise ValueError(
                f"vesicles.radius {list(vesicles.radius)} Å: even the smallest vesicle "
                f"({smallest:g} Å across its thinnest axis) does not fit in the sample "
                f"({room:g} Å in its smallest extent of ice and box)"
            )

    def used_labels(self) -> list[str]:
        """Class names used by species, filaments and vesicles, in config order (no background)."""
        out: list[str] = []
        for s in self.proteins.species:
            out.append(s.label or s.name)
        for f in self.filaments:
            out.append(f.label or f.name)
            if f.decoration is not None:
                out.append(f.decoration.label)
        if self.vesicles.count > 0 or self.vesicles.sheets > 0:
            out.append(self.vesicles.label)
        if self.context.fiducials.count > 0:
            out.append(self.context.fiducials.label)
        seen: list[str] = []
        for name in out:
            if name != "background" and name not in seen:
                seen.append(name)
        return seen

    def class_ids(self) -> dict[str, int]:
        """Map class name -> label id (1, 2, ...); ``background`` is 0. Ids never shift."""
        names = self.classes if self.classes is not None else self.used_labels()
        ids = {"background": 0}
        ids.update({name: i + 1 for i, name in enumerate(names)})
        return ids


# --------------------------------------------------------------------------------------------
# Loading and writing
# --------------------------------------------------------------------------------------------


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``dotted = "a.b.c"``; integer parts index lists."""
    parts = dotted.split(".")
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            try:
                idx = int(part)
                node[idx]
            except (ValueError, IndexError):
                raise TomosimError(f"--set {dotted}: {part!r} is not a valid list index") from None
            if last:
                node[idx] = value
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            elif part not in node and parts[i + 1].isdigit():
                raise TomosimError(f"--set {dotted}: there is no list {part!r} to index")
            else:
                node = node.setdefault(part, {})
        else:
            raise TomosimError(f"--set {dotted}: {part!r} is inside a value that is not a section")


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a config tree."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise TomosimError(f"--set expects section.key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise TomosimError(f"--set {key}: value {raw!r} is not valid YAML") from None
        _set_path(tree, key.strip(), value)
    return tree


def format_validation_error(exc: ValidationError, source: str, prefix: str = "") -> str:
    """Format a pydantic validation error as one line naming the source and the failing field.

    ``prefix`` (e.g. ``"reconstruction"``) is put before the field path of a section validated
    on its own.
    """
    err = exc.errors()[0]
    where = ".".join([prefix] * bool(prefix) + [str(p) for p in err["loc"]])
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    if isinstance(given, (int, float, str)) and err["type"] != "value_error":
        msg += f", got {given!r}"
    extra = f" ({len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"invalid config {source}: {where + ': ' if where else ''}{msg}{extra}"


def config_from_dict(
    tree: dict[str, Any], *, source: str = "<dict>", overrides: list[str] | None = None,
    seed: int | None = None,
) -> SimulationConfig:
    """Validate a config tree (after overrides and seed) into a :class:`SimulationConfig`."""
    tree = apply_overrides(dict(tree), overrides or [])
    if seed is not None:
        tree["seed"] = seed
    try:
        return SimulationConfig.model_validate(tree)
    except ValidationError as exc:
        raise TomosimError(format_validation_error(exc, source)) from None


SectionT = TypeVar("SectionT", bound=Section)


def validate_section(
    model: type[SectionT], tree: Any, *, source: str, where: str
) -> SectionT:
    """Validate one config section (``where``, e.g. ``"reconstruction"``) from a raw tree.

    Raises
    ------
    TomosimError
        ``invalid config SOURCE: WHERE.field: problem`` for a value out of range or unknown key.
    """
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise TomosimError(f"invalid config {source}: {where} must be a section (a mapping)")
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise TomosimError(format_validation_error(exc, source, where)) from None


def read_config_tree(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file as a raw tree (not validated; distributions kept).

    Raises
    ------
    TomosimError
        Missing file, invalid YAML (with the line), or a document that is not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise TomosimError(f"config file not found: {p}")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise TomosimError(f"config {p} is not valid YAML{at}") from None
    if loaded is None or loaded == {}:
        raise TomosimError(
            f"config {p} is empty; write the sections to simulate (an all-defaults run of empty "
            "ice needs at least one explicit key, e.g. 'seed: 0')"
        )
    if not isinstance(loaded, dict):
        raise TomosimError(f"config {p} must be a YAML mapping of sections")
    return loaded


def load_config(
    path: str | os.PathLike[str] | None,
    *,
    overrides: list[str] | None = None,
    seed: int | None = None,
) -> SimulationConfig:
    """Read a YAML config, apply overrides and seed, validate.

    Parameters
    ----------
    path
        YAML file; None starts from all defaults.
    overrides
        ``"section.key=value"`` strings; the value is parsed as YAML (``sample.shape=[64,64,64]``).
    seed
        Overrides the config's ``seed``.

    Raises
    ------
    TomosimError
        Missing or unparsable file, unknown keys, values out of range.
    """
    tree = read_config_tree(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    return config_from_dict(tree, source=source, overrides=overrides, seed=seed)


def dump_config(config: SimulationConfig) -> str:
    """The fully resolved config as YAML text (every default filled in)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
