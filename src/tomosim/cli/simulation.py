"""Commands that make data: ``potential``, ``demo``, ``simulate``, ``reconstruct``, ``dataset``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tomosim.errors import TomosimError

if TYPE_CHECKING:
    from tomosim.config import SimulationConfig
    from tomosim.pipeline import SimulationResult
from tomosim.cli.common import (
    MaxMemoryOption,
    OverwriteOption,
    SeedOption,
    SetOption,
    app,
)

# ---- commands: potential ----------------------------------------------------------------


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Config YAML; this command reads only the sections it uses."),
]


def _section_tree(
    config: Path | None, sections: tuple[str, ...], overrides: list[str] | None
) -> dict:
    """Return the named top-level sections of a config file, with ``--set`` applied."""
    from tomosim.config import apply_overrides, read_config_tree

    tree = read_config_tree(config) if config is not None else {}
    kept = {key: value for key, value in tree.items() if key in sections}
    for item in overrides or []:
        head = item.partition("=")[0].strip().split(".", 1)[0]
        if head not in sections:
            raise TomosimError(
                f"--set {item}: this command takes only sections {', '.join(sections)}"
            )
    return apply_overrides(kept, list(overrides or []))


def _put(tree: dict, dotted: str, value: object) -> None:
    """Set ``tree[a][b]... = value`` for a flag that was given (value not None)."""
    if value is None:
        return
    *parents, last = dotted.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[last] = value


def _source_name(config: Path | None) -> str:
    return f"{config} (with the command's options)" if config is not None else "options"


@app.command()
def potential(
    source: Annotated[
        str,
        typer.Argument(
            help="Model or map: file (.pdb/.cif/.ent/.mrc/.map[.gz]) or "
            "pdb:/emdb:/afdb:/builtin: id."
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output MRC file.")],
    pixel_size: Annotated[
        float | None, typer.Option("--pixel-size", help="Å per voxel (sample.pixel_size).")
    ] = None,
    resolution: Annotated[
        float | None, typer.Option("--resolution", help="Low-pass to this resolution, Å.")
    ] = None,
    b_factor: Annotated[
        float | None, typer.Option("--b-factor", help="Global B-factor added, Å².")
    ] = None,
    solvent: Annotated[
        str | None,
        typer.Option(
            "--solvent", help="none (default here): vacuum potential; ice: excess over ice."
        ),
    ] = None,
    hydrogens: Annotated[
        bool | None, typer.Option("--hydrogens/--no-hydrogens", help="Add implicit hydrogens.")
    ] = None,
    hydration_shell: Annotated[
        bool | None,
        typer.Option("--hydration-shell/--no-hydration-shell", help="3 Å hydration shell (ice)."),
    ] = None,
    cache: Annotated[
        bool | None,
        typer.Option("--cache/--no-cache", help="Read and write the potential cache."),
    ] = None,
    assembly: Annotated[
        str | None, typer.Option("--assembly", help="Biological assembly id to expand.")
    ] = None,
    chains: Annotated[
        str | None, typer.Option("--chains", help="Comma-separated chain ids to keep.")
    ] = None,
    map_mass_kda: Annotated[
        float | None,
        typer.Option("--map-mass-kda", help="Map: molecular mass (kDa) to scale to volts."),
    ] = None,
    map_scale_v: Annotated[
        float | None, typer.Option("--map-scale-v", help="Map: volts per map unit.")
    ] = None,
    map_threshold: Annotated[
        float | None,
        typer.Option("--map-threshold", help="Map: values below are not molecule."),
    ] = None,
    config: ConfigOption = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="SECTION.KEY=VALUE",
            help="Override potential.KEY, structure.KEY or sample.pixel_size (repeatable).",
        ),
    ] = None,
) -> None:
    """Compute the electrostatic potential (V) of a structure and write it as MRC.

    Settings come from the potential and structure sections (and sample.pixel_size) of
    --config, then --set, then the options, which carry the config field names. The MRC header
    carries the voxel size and an origin that puts the map on the model's coordinates (voxel 0 at
    centre_a - (shape // 2) * pixel size).
    """
    from tomosim.cache import load_potential
    from tomosim.config import PotentialConfig, SampleConfig, StructureOptions, validate_section
    from tomosim.io import write_mrc

    tree = {"potential": {"solvent": "none"}}
    tree.update(_section_tree(config, ("potential", "structure", "sample"), overrides))
    tree["potential"] = {"solvent": "none", **(tree.get("potential") or {})}
    chain_list = [c.strip() for c in chains.split(",") if c.strip()] if chains else None
    for key, value in {
        "sample.pixel_size": pixel_size, "potential.resolution": resolution,
        "potential.b_factor": b_factor, "potential.solvent": solvent,
        "potential.hydrogens": hydrogens, "potential.hydration_shell": hydration_shell,
        "potential.cache": cache, "structure.assembly": assembly, "structure.chains": chain_list,
        "structure.map_mass_kda": map_mass_kda, "structure.map_scale_v": map_scale_v,
        "structure.map_threshold": map_threshold,
    }.items():
        _put(tree, key, value)
    where = _source_name(config)
    sample = tree.get("sample") or {}
    if not isinstance(sample, dict) or sample.get("pixel_size") is None:
        raise TomosimError("give the pixel size: --pixel-size (or sample.pixel_size in --config)")
    pixel = validate_section(
        SampleConfig, {"pixel_size": sample["pixel_size"]}, source=where, where="sample"
    ).pixel_size
    potential_config = validate_section(
        PotentialConfig, tree.get("potential"), source=where, where="potential"
    )
    structure_options = validate_section(
        StructureOptions, tree.get("structure"), source=where, where="structure"
    )
    if structure_options.map_mass_kda is not None and structure_options.map_scale_v is not None:
        raise TomosimError("give either --map-mass-kda or --map-scale-v, not both")
    result = load_potential(
        source, pixel, potential=potential_config, structure=structure_options
    )
    shape = result.data.shape
    origin = tuple(
        c - (n // 2) * result.pixel_size for c, n in zip(result.centre_a, shape[::-1], strict=True)
    )
    write_mrc(output, result.data, voxel_size=result.pixel_size, origin=origin)
    typer.echo(
        f"{output}: shape (z, y, x) {shape}, {result.pixel_size:g} Å/voxel, "
        f"solvent {result.solvent}, integral {result.integral:.6g} V·Å³, "
        f"min {float(result.data.min()):.4g} V, max {float(result.data.max()):.4g} V"
    )


# ---- commands: demo, simulate -----------------------------------------------------------


def _simulate_to_folder(
    cfg: SimulationConfig, output: Path, *, overwrite: bool, max_memory_gb: float | None
) -> SimulationResult:
    """Check a simulation's size, then simulate into a staging folder renamed to OUTPUT."""
    from tomosim.io import staged_folder
    from tomosim.memory import check_memory
    from tomosim.microscope.tilt_scheme import tilt_angles
    from tomosim.pipeline import simulate as run_simulation
    from tomosim.pipeline import simulation_bytes

    tilt = cfg.microscope.tilt
    n_tilts = len(tilt_angles(tilt.min_angle, tilt.max_angle, tilt.step))
    check_memory(
        simulation_bytes(cfg),
        what=f"simulating a {tuple(cfg.sample.shape)} sample with {n_tilts} tilts",
        max_memory_gb=max_memory_gb,
    )
    nothing = not (cfg.proteins.species or cfg.filaments or cfg.vesicles.count)
    if nothing and cfg.context == type(cfg.context)():  # no cellular context either
        warnings.warn(
            "the config places no proteins, filaments or vesicles: simulating empty ice",
            stacklevel=2,
        )
    with staged_folder(output, overwrite=overwrite) as staging:
        result = run_simulation(cfg, staging, progress=True)
    return result


@app.command()
def demo(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output folder.")
    ] = Path("demo_out"),
    seed: SeedOption = None,
    overrides: SetOption = None,
    overwrite: OverwriteOption = False,
    max_memory_gb: MaxMemoryOption = None,
) -> None:
    """Simulate a small mixed phantom from the built-in coarse models (offline).

    The first run compiles the numerical kernels (about a minute); later runs reuse them.
    """
    from tomosim.pipeline import demo_config

    config = demo_config(overrides=overrides or [], seed=seed)
    _simulate_to_folder(config, output, overwrite=overwrite, max_memory_gb=max_memory_gb)
    typer.echo(f"demo written to {output}/ (open preview.png, tomogram.mrc, labels.mrc)")


@app.command()
def simulate(
    config: Annotated[Path, typer.Argument(help="Simulation config (YAML).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    seed: SeedOption = None,
    overrides: SetOption = None,
    overwrite: OverwriteOption = False,
    max_memory_gb: MaxMemoryOption = None,
) -> None:
    """Simulate a phantom, its tilt series and tomogram from a YAML config.

    The run folder is written under a hidden staging name and renamed to OUTPUT when complete;
    an existing non-empty OUTPUT is refused unless --overwrite (then replaced only at the end).
    """
    from tomosim.config import load_config

    cfg = load_config(config, overrides=overrides or [], seed=seed)
    result = _simulate_to_folder(
        cfg, output, overwrite=overwrite, max_memory_gb=max_memory_gb
    )
    crowding = [r.volume_fraction for r in result.phantom.report if r.volume_fraction is not None]
    if crowding:  # the protein envelopes' share of the volume they may occupy
        typer.echo(f"proteins: volume fraction {sum(crowding):.3f} reached")
    from tomosim.filaments import fitted_helix_lines

    for species in cfg.filaments:  # fitted values (also in config.resolved.yaml)
        for line in fitted_helix_lines(species) if species.count else []:
            typer.echo(line)
    typer.echo(f"simulation written to {output}/")


# ---- commands: reconstruct --------------------------------------------------------------


@app.command()
def reconstruct(
    tilt_series: Annotated[Path, typer.Argument(help="Tilt series (MRC stack), pixel size set.")],
    angles: Annotated[Path, typer.Option("--angles", help="Tilt angles (IMOD .tlt).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output tomogram (MRC).")],
    thickness_px: Annotated[
        int | None,
        typer.Option("--thickness-px", help="Tomogram thickness in unbinned pixels (required)."),
    ] = None,
    tilt_axis_angle: Annotated[
        float | None,
        typer.Option("--tilt-axis-angle", help="Tilt axis, degrees anticlockwise from y."),
    ] = None,
    lowpass_cutoff: Annotated[
        float | None,
        typer.Option("--lowpass-cutoff", help="Radial low-pass cutoff, cycles/pixel (0.35)."),
    ] = None,
    lowpass_falloff: Annotated[
        float | None,
        typer.Option("--lowpass-falloff", help="Gaussian falloff (sigma), cycles/pixel (0.035)."),
    ] = None,
    sirt_like_iterations: Annotated[
        int | None,
        typer.Option("--sirt-like-iterations", help="SIRT-like filter iterations (0: plain WBP)."),
    ] = None,
    binning: Annotated[
        int | None, typer.Option("--binning", help="Average BxB pixels first (1).")
    ] = None,
    invert: Annotated[
        bool | None,
        typer.Option("--invert/--no-invert", help="Flip the sign (protein bright)."),
    ] = None,
    phase_flip: Annotated[
        bool | None,
        typer.Option("--phase-flip/--no-phase-flip", help="Phase-flip the images (CTF) first."),
    ] = None,
    defocus_um: Annotated[
        float | None,
        typer.Option("--defocus-um", help="Defocus, µm, positive = underfocus (for phase flip)."),
    ] = None,
    voltage_kv: Annotated[
        float | None, typer.Option("--voltage-kv", help="Beam energy, kV (300).")
    ] = None,
    cs_mm: Annotated[
        float | None, typer.Option("--cs-mm", help="Spherical aberration, mm (2.7).")
    ] = None,
    amplitude_contrast: Annotated[
        float | None,
        typer.Option("--amplitude-contrast", help="Amplitude contrast fraction (0.07)."),
    ] = None,
    config: ConfigOption = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="SECTION.KEY=VALUE",
            help="Override reconstruction.KEY or microscope.optics/tilt.KEY (repeatable).",
        ),
    ] = None,
    max_memory_gb: MaxMemoryOption = None,
) -> None:
    """Reconstruct a tomogram from a tilt series by weighted backprojection (IMOD tilt geometry).

    Settings come from the reconstruction and microscope sections of --config (e.g. a run's
    config.resolved.yaml), then --set, then the options, which carry the config field names
    (reconstruction.*, microscope.tilt.tilt_axis_angle, microscope.optics.*). Writes a float32
    MRC whose voxel size is the stack's pixel size times the binning.
    """
    import numpy as np

    from tomosim.config import OpticsConfig, ReconstructionConfig, TiltConfig, validate_section
    from tomosim.io import read_mrc, read_tlt, require_finite, write_mrc
    from tomosim.memory import check_memory, reconstruct_bytes
    from tomosim.microscope.ctf import Optics
    from tomosim.reconstruct import PhaseFlipSettings, weighted_backprojection

    tree = _section_tree(config, ("reconstruction", "microscope"), overrides)
    for key, value in {
        "reconstruction.thickness_px": thickness_px,
        "reconstruction.lowpass_cutoff": lowpass_cutoff,
        "reconstruction.lowpass_falloff": lowpass_falloff,
        "reconstruction.sirt_like_iterations": sirt_like_iterations,
        "reconstruction.binning": binning, "reconstruction.invert": invert,
        "reconstruction.phase_flip": phase_flip,
        "microscope.tilt.tilt_axis_angle": tilt_axis_angle,
        "microscope.optics.defocus_um": defocus_um, "microscope.optics.voltage_kv": voltage_kv,
        "microscope.optics.cs_mm": cs_mm,
        "microscope.optics.amplitude_contrast": amplitude_contrast,
    }.items():
        _put(tree, key, value)
    where = _source_name(config)
    rec = validate_section(
        ReconstructionConfig, tree.get("reconstruction"), source=where, where="reconstruction"
    )
    microscope = tree.get("microscope") or {}
    if not isinstance(microscope, dict):
        raise TomosimError(f"invalid config {where}: microscope must be a section (a mapping)")
    optics_tree = microscope.get("optics") or {}
    optics = validate_section(
        OpticsConfig, optics_tree, source=where, where="microscope.optics"
    )
    tilt = validate_section(
        TiltConfig, microscope.get("tilt"), source=where, where="microscope.tilt"
    )
    if rec.thickness_px is None:
        raise TomosimError(
            "give the tomogram thickness: --thickness-px (or reconstruction.thickness_px)"
        )
    if rec.phase_flip and "defocus_um" not in optics_tree:
        raise TomosimError("--phase-flip needs --defocus-um (or microscope.optics.defocus_um)")

    tilt_angles = read_tlt(angles)
    stack = read_mrc(tilt_series, require_voxel_size=True)
    if stack.data.ndim != 3:
        raise TomosimError(f"not a tilt series stack (shape {stack.data.shape}): {tilt_series}")
    if tilt_angles.size != stack.data.shape[0]:
        raise TomosimError(
            f"{angles} has {tilt_angles.size} tilt angles but {tilt_series} has "
            f"{stack.data.shape[0]} images"
        )
    outside = tilt_angles[np.abs(tilt_angles) >= 90]
    if outside.size:
        raise TomosimError(f"tilt angle {outside[0]:g} is outside (-90, 90) degrees: {angles}")
    require_finite(stack.data, tilt_series)
    check_memory(
        reconstruct_bytes(stack.data.shape, thickness_px=rec.thickness_px, binning=rec.binning),
        what=f"a tomogram {rec.thickness_px} px thick from a {stack.data.shape} stack",
        max_memory_gb=max_memory_gb,
    )
    pixel_size = stack.voxel_size[2]
    settings = None
    if rec.phase_flip:
        settings = PhaseFlipSettings(
            defocus_u=optics.defocus_um * 1e4,
            defocus_v=optics.defocus_um * 1e4,
            optics=Optics(
                voltage_kv=optics.voltage_kv,
                cs_mm=optics.cs_mm,
                amplitude_contrast=optics.amplitude_contrast,
            ),
        )
    try:
        volume = weighted_backprojection(
            stack.data,
            tilt_angles,
            thickness_px=rec.thickness_px,
            tilt_axis_angle=tilt.tilt_axis_angle,
            lowpass_cutoff=rec.lowpass_cutoff,
            lowpass_falloff=rec.lowpass_falloff,
            sirt_like_iterations=rec.sirt_like_iterations,
            binning=rec.binning,
            invert=rec.invert,
            pixel_size=pixel_size,
            phase_flip=settings,
        )
    except TomosimError as exc:
        raise TomosimError(f"{exc}: {tilt_series}") from None
    voxel_size = pixel_size * rec.binning
    write_mrc(output, volume, voxel_size=voxel_size)
    typer.echo(
        f"{output}: tomogram (z, y, x) {volume.shape}, {voxel_size:g} Å/voxel, "
        f"{tilt_angles.size} tilts {tilt_angles.min():g}..{tilt_angles.max():g} degrees"
    )



# ---- commands: dataset ------------------------------------------------------------------


@app.command("dataset")
def dataset_command(
    config: Annotated[Path, typer.Argument(help="Config (YAML); values may be distributions.")],
    count: Annotated[int, typer.Option("-n", "--count", help="Number of phantoms.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Dataset folder.")],
    workers: Annotated[int, typer.Option("--workers", help="Local worker processes.")] = 1,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler address (tcp://host:port) or file."),
    ] = None,
    seed: SeedOption = None,
    overrides: SetOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a different dataset in the folder.")
    ] = False,
    max_memory_gb: MaxMemoryOption = None,
) -> None:
    """Simulate N randomised phantoms in parallel (resumable: re-run to continue).

    With local workers, the largest drawn phantom's memory estimate times the workers must fit
    in the memory available (or --max-memory-gb); phantoms run on a Dask scheduler's workers are
    not checked here.
    """
    import time

    from tomosim.dataset import generate_dataset

    if count < 1:
        raise TomosimError(f"-n must be at least 1, got {count}")
    if workers < 1:
        raise TomosimError(f"--workers must be at least 1, got {workers}")
    start = time.monotonic()
    index = generate_dataset(
        config, count, output, seed=seed, workers=workers, scheduler=scheduler,
        overrides=overrides or [], overwrite=overwrite, progress=True,
        max_memory_gb=max_memory_gb,
    )
    typer.echo(
        f"{index.done} phantoms in {output}/ (index.csv, index.json) "
        f"in {time.monotonic() - start:.1f} s"
    )


