"""The ``tomosim`` command line: thin commands over the library functions.

Each command loads its inputs, calls one library function and writes files. Bad input raises
:class:`tomosim.errors.TomosimError`, which :func:`main` prints as one line on stderr with exit
code 2 (no traceback). Heavy imports (torch, dask) happen inside the commands, so ``--help`` is
instant.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tomosim.errors import TomosimError

if TYPE_CHECKING:
    from tomosim.config import SimulationConfig
    from tomosim.pipeline import SimulationResult

app = typer.Typer(
    name="tomosim",
    help="Simulated cryo-electron tomograms with perfect labels, and networks trained on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Override a config value (repeatable).",
    ),
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Random seed (overrides config).")]


def _version_callback(value: bool) -> None:
    if value:
        from tomosim import __version__

        typer.echo(f"tomosim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True)
    ] = False,
) -> None:
    """tomosim: phantoms, tilt series and tomograms with perfect labels."""


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


OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing non-empty output folder.")
]
MaxMemoryOption = Annotated[
    float | None,
    typer.Option(
        "--max-memory-gb",
        help="Memory limit for the size check, GiB (default: the memory available now).",
    ),
]


def _simulate_to_folder(
    cfg: SimulationConfig, output: Path, *, overwrite: bool, max_memory_gb: float | None
) -> SimulationResult:
    """Check a simulation's size, then simulate into a staging folder renamed to OUTPUT."""
    from tomosim.io import staged_folder
    from tomosim.memory import check_memory, simulate_bytes
    from tomosim.microscope.tilt_scheme import tilt_angles
    from tomosim.pipeline import simulate as run_simulation

    tilt = cfg.microscope.tilt
    n_tilts = len(tilt_angles(tilt.min_angle, tilt.max_angle, tilt.step))
    needed = simulate_bytes(
        cfg.sample.shape, n_tilts=n_tilts, padding=cfg.microscope.optics.padding,
        reconstruction_binning=cfg.reconstruction.binning,
    )
    check_memory(
        needed, what=f"simulating a {tuple(cfg.sample.shape)} sample with {n_tilts} tilts",
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


# ---- commands: train, segment, finetune, evaluate, pick ---------------------------------


ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads for torch (default: all). Trained weights depend on it: give it to "
        "reproduce a model (recorded in metrics.json).",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
DeviceOption = Annotated[
    str,
    typer.Option("--device", help="auto, cpu, cuda or mps (mixed precision on CUDA)."),
]


def _require_torch(threads: int | None) -> None:
    """Check that the training extra is installed and set torch's thread count."""
    try:
        import monai  # noqa: F401
        import torch
    except ImportError:
        raise TomosimError(
            "this command needs the training extra: pip install 'tomosim[train]' (torch, monai)"
        ) from None
    if threads is not None:
        if threads < 1:
            raise TomosimError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def _class_table_near(path: Path, explicit: Path | None):
    """--classes, else ``<stem>.classes.csv`` or ``classes.csv`` beside a label file, else None."""
    from tomosim.labels import read_class_table

    if explicit is not None:
        return read_class_table(explicit)
    stem = path.name.removesuffix(".gz").rsplit(".", 1)[0]
    for candidate in (path.with_name(f"{stem}.classes.csv"), path.with_name("classes.csv")):
        if candidate.is_file():
            return read_class_table(candidate)
    return None


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _refuse_writing_into_inputs(output: Path, inputs: list[Path], *, option: str = "-o") -> None:
    """Refuse an output that is one of the command's inputs (or a folder holding one)."""
    for path in inputs:
        if _same_path(output, path) or (output.is_dir() and _same_path(output, path.parent)):
            raise TomosimError(f"{option} {output} would overwrite the input {path}")


def _refuse_existing_model(output: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train over a model folder unless continuing it or replacing it on purpose."""
    from tomosim.train.checkpoint import MODEL_FILE, RESUME_FILE

    if resume or overwrite:
        return
    for name in (MODEL_FILE, RESUME_FILE):
        if (output / name).exists():
            raise TomosimError(
                f"-o {output} already holds a model ({name}); use a new folder, --resume to "
                "continue it, or --overwrite to replace it"
            )


MAX_RESAMPLING = 8.0
"""segment refuses tomograms whose voxel size is more than this factor from the model's."""


@app.command()
def train(
    output: Annotated[Path, typer.Option("-o", "--output", help="Model folder to write.")],
    data: Annotated[
        list[Path] | None,
        typer.Argument(help="Simulation folders with tomogram.mrc, labels.mrc, classes.csv."),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Training config YAML.")] = None,
    on_the_fly: Annotated[
        Path | None,
        typer.Option(
            "--on-the-fly",
            help="Simulation config (distributions allowed): train on phantoms simulated in the "
            "background instead of DATA folders (settings: on_the_fly section of --config).",
        ),
    ] = None,
    overrides: SetOption = None,
    seed: SeedOption = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue from OUTPUT/last.pt (its config, plus --set)."),
    ] = False,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a model already in OUTPUT.")
    ] = False,
    device: DeviceOption = "cpu",
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="segmentation (labels.mrc) or picking (balls at the particles of "
            "particles.star); overrides the config's task.",
        ),
    ] = None,
) -> None:
    """Train a 2.5D U-Net on simulated tomograms and their labels.

    DATA are simulation folders (tomosim simulate / dataset); or, with --on-the-fly CONFIG,
    phantoms are simulated in background processes while the network trains and nothing is
    stored (phantom_config.yaml keeps the config and seed). Writes OUTPUT/model.pt (for segment),
    last.pt (for --resume), metrics.json, training_curve.png, classes.csv and
    config.resolved.yaml.
    """
    _require_torch(threads)
    from tomosim.config import read_config_tree
    from tomosim.labels import merge_class_tables
    from tomosim.train.checkpoint import RESUME_FILE, load_checkpoint
    from tomosim.train.config import load_train_config
    from tomosim.train.data import (
        prepare_training_volume,
        read_simulation_folder,
    )
    from tomosim.train.device import resolve_device
    from tomosim.train.training import train_network, train_on_the_fly

    if bool(data) == (on_the_fly is not None):
        raise TomosimError("give either simulation folders (DATA) or --on-the-fly CONFIG, not both")
    _refuse_writing_into_inputs(output, [*(data or []), *([on_the_fly] if on_the_fly else [])])
    if (output / "tomogram.mrc").exists() or (output / "labels.mrc").exists():
        raise TomosimError(f"-o {output} is a simulation folder; give a new folder for the model")
    _refuse_existing_model(output, resume=resume, overwrite=overwrite)
    resolve_device(device)  # an unavailable device fails before any work
    base = None
    if resume and (output / RESUME_FILE).is_file():  # continue with the stored config
        base = load_checkpoint(output / RESUME_FILE).config
    if task is not None:
        overrides = [*(overrides or []), f"task={task}"]
    settings = load_train_config(config, overrides=list(overrides or []), seed=seed, base=base)
    if settings.task == "picking":
        from tomosim.train.localisation import read_picking_folder

        if on_the_fly is not None:
            raise TomosimError("--task picking trains on simulation folders, not --on-the-fly")
        radii = dict(settings.picking.radii)
        folders = []
        for folder in data or []:  # the first folder with a class fixes its estimated radius
            labelled, used = read_picking_folder(
                folder, radii=radii, target_fraction=settings.picking.target_fraction
            )
            radii = {**used, **radii}
            folders.append(labelled)
        settings = settings.model_copy(
            update={"picking": settings.picking.model_copy(update={"radii": radii})}
        )
    elif on_the_fly is None:
        folders = [read_simulation_folder(folder) for folder in data or []]
    if on_the_fly is not None:
        tree = read_config_tree(on_the_fly)
        result = train_on_the_fly(
            tree, phantom_seed=tree.get("seed", 0), config=settings, output_dir=output,
            device=device,
            resume=resume, progress=not quiet,
        )
        classes, pixel_size = result.checkpoint.classes, result.checkpoint.pixel_size
    else:
        classes = merge_class_tables([folder.classes for folder in folders])
        pixel_size = settings.pixel_size or float(folders[0].voxel_size[2])
        for prepared in folders:
            if abs(prepared.voxel_size[2] / pixel_size - 1) > 0.01:
                warnings.warn(
                    f"{prepared.name} has voxel size {prepared.voxel_size[2]:g} Å, the model "
                    f"{pixel_size:g} Å: resampled for training",
                    stacklevel=1,
                )
        volumes = []
        while folders:  # prepare one at a time, letting go of the raw copies
            volumes.append(
                prepare_training_volume(folders.pop(0), classes=classes, pixel_size=pixel_size)
            )
        result = train_network(
            volumes, classes=classes, pixel_size=pixel_size, config=settings, output_dir=output,
            resume=resume, progress=not quiet, device=device,
        )
    final = result.history[-1] if result.history else {}
    dice = final.get("validation_dice")
    seen = final.get("phantoms_seen")
    typer.echo(
        f"{output}: {result.checkpoint.epoch} epochs, {result.checkpoint.iteration} iterations, "
        f"classes {list(classes.names[1:])}, pixel size {pixel_size:g} Å, "
        f"loss {final.get('loss', float('nan')):.4f}"
        + (f", validation Dice {dice:.3f}" if dice is not None else "")
        + (f", {seen} phantoms simulated on the fly" if seen is not None else "")
    )


@app.command()
def segment(
    model: Annotated[Path, typer.Argument(help="Model file (model.pt) or model folder.")],
    tomogram: Annotated[
        Path, typer.Argument(help="Tomogram: MRC (voxel size set), OME-Zarr or copick run.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output label MRC (uint8).")],
    probabilities: Annotated[
        Path | None,
        typer.Option("--probabilities", help="Folder for per-class probability MRCs."),
    ] = None,
    probability_dtype: Annotated[
        str, typer.Option("--probability-dtype", help="float16 or float32.")
    ] = "float16",
    batch_size: Annotated[int, typer.Option("--batch-size", help="z-slices per network call.")] = 4,
    chunk_slices: Annotated[
        int, typer.Option("--chunk-slices", help="z-slices held in memory at a time.")
    ] = 32,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    max_memory_gb: MaxMemoryOption = None,
    match_spectrum: Annotated[
        bool,
        typer.Option(
            "--match-spectrum",
            help="Filter the tomogram to the amplitude spectrum of the model's training data.",
        ),
    ] = False,
    device: DeviceOption = "cpu",
) -> None:
    """Segment a tomogram: uint8 labels on the input grid (voxel size and origin kept).

    The tomogram is resampled to the model's pixel size if needed and the result mapped back.
    Also writes OUTPUT's class table as <stem>.classes.csv beside it. MODEL "default" is the
    pretrained model shipped with tomosim (docs/pretrained_model.md).
    """
    _require_torch(threads)
    import contextlib

    import numpy as np

    from tomosim.formats.volumes import read_volume
    from tomosim.io import require_finite, write_mrc
    from tomosim.labels import write_class_table
    from tomosim.memory import check_memory, segment_bytes
    from tomosim.train.checkpoint import load_checkpoint
    from tomosim.train.device import resolve_device
    from tomosim.train.inference import probability_map_files, segment_tomogram

    resolve_device(device)
    if batch_size < 1 or chunk_slices < 1:
        raise TomosimError("--batch-size and --chunk-slices must be at least 1")
    if probability_dtype not in ("float16", "float32"):
        raise TomosimError(
            f"--probability-dtype must be float16 or float32, got {probability_dtype!r}"
        )
    _refuse_writing_into_inputs(output, [tomogram, model])
    if probabilities is not None:
        _refuse_writing_into_inputs(probabilities, [tomogram, model], option="--probabilities")
    checkpoint = load_checkpoint(model)
    volume = read_volume(tomogram)
    if volume.data.ndim != 3:
        raise TomosimError(
            f"tomogram must be a 3D volume, got shape {volume.data.shape}: {tomogram}"
        )
    require_finite(volume.data, tomogram)
    scale = max(volume.voxel_size) / checkpoint.pixel_size
    scale_low = min(volume.voxel_size) / checkpoint.pixel_size
    if scale > MAX_RESAMPLING or scale_low < 1 / MAX_RESAMPLING:
        raise TomosimError(
            f"tomogram voxel size {volume.voxel_size[::-1]} Å (x, y, z) is too far from the "
            f"model's {checkpoint.pixel_size:g} Å (resampling by more than {MAX_RESAMPLING:g}x "
            f"gives no useful segmentation; check the header): {tomogram}"
        )
    check_memory(
        segment_bytes(volume.data.shape, scale=scale),
        what=f"segmenting a {volume.data.shape} tomogram resampled by {scale:.3g}",
        max_memory_gb=max_memory_gb,
    )
    maps: contextlib.AbstractContextManager[list[np.ndarray] | None] = contextlib.nullcontext()
    if probabilities is not None:
        maps = probability_map_files(
            probabilities, checkpoint.classes.names, shape=volume.data.shape,
            dtype=probability_dtype, voxel_size=volume.voxel_size, origin=volume.origin,
        )
    with maps as arrays:
        labels = segment_tomogram(
            checkpoint, volume.data, voxel_size=volume.voxel_size, batch_size=batch_size,
            chunk_slices=chunk_slices, probabilities=arrays, progress=not quiet,
            match_spectrum=match_spectrum, device=device,
        )
    write_mrc(output, labels, voxel_size=volume.voxel_size, origin=volume.origin)
    stem = output.name.rsplit(".", 1)[0]
    write_class_table(output.with_name(f"{stem}.classes.csv"), checkpoint.classes)
    classes = zip(checkpoint.classes.ids, checkpoint.classes.names, strict=True)
    counts = {name: int((labels == label_id).sum()) for label_id, name in classes}
    typer.echo(f"{output}: shape (z, y, x) {labels.shape}, voxels per class {counts}")


@app.command()
def finetune(
    model: Annotated[Path, typer.Argument(help="Model file (model.pt) or model folder.")],
    tomogram: Annotated[Path, typer.Argument(help="Real tomogram (MRC, OME-Zarr, copick run).")],
    labels: Annotated[
        Path, typer.Argument(help="Its labels, MRC or OME-Zarr (uint8; 255 = not labelled).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the new model.")],
    classes: Annotated[
        Path | None,
        typer.Option("--classes", help="classes.csv naming LABELS' ids (default: the model's)."),
    ] = None,
    phantoms: Annotated[
        list[Path] | None,
        typer.Option("--phantoms", help="Simulation folder mixed into every batch (repeatable)."),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Training config YAML.")] = None,
    overrides: SetOption = None,
    seed: SeedOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a model already in OUTPUT.")
    ] = False,
    device: DeviceOption = "cpu",
) -> None:
    """Fine-tune a model on a partly labelled tomogram (label 255 = not labelled, no loss).

    Uses finetune.learning_rate and finetune.epochs of the config (the model's stored config,
    updated by --config and --set); finetune.phantom_fraction of each batch comes from --phantoms.
    """
    _require_torch(threads)
    from tomosim.labels import read_class_table
    from tomosim.train.checkpoint import load_checkpoint
    from tomosim.train.config import load_train_config
    from tomosim.train.data import (
        prepare_training_volume,
        read_labelled_tomogram,
        read_simulation_folder,
    )
    from tomosim.train.device import resolve_device
    from tomosim.train.training import finetune_network

    model_folder = model if model.is_dir() else model.parent
    _refuse_writing_into_inputs(
        output, [model_folder, model, tomogram, labels, *(phantoms or [])]
    )
    _refuse_existing_model(output, resume=False, overwrite=overwrite)
    resolve_device(device)
    checkpoint = load_checkpoint(model)
    settings = load_train_config(
        config, overrides=list(overrides or []), seed=seed, base=checkpoint.config
    )
    table = read_class_table(classes) if classes is not None else checkpoint.classes
    model_classes, model_pixel = checkpoint.classes, checkpoint.pixel_size
    volumes = [
        prepare_training_volume(
            read_labelled_tomogram(tomogram, labels, table),
            classes=model_classes, pixel_size=model_pixel,
        )
    ]
    phantom_volumes = [
        prepare_training_volume(
            read_simulation_folder(folder), classes=model_classes, pixel_size=model_pixel
        )
        for folder in phantoms or []
    ]
    result = finetune_network(
        checkpoint, volumes, config=settings, output_dir=output, phantoms=phantom_volumes,
        progress=not quiet, device=device,
    )
    final = result.history[-1] if result.history else {}
    dice = final.get("validation_dice")
    typer.echo(
        f"{output}: fine-tuned {result.checkpoint.epoch} epochs, "
        f"loss {final.get('loss', float('nan')):.4f}"
        + (f", validation Dice {dice:.3f}" if dice is not None else "")
    )


@app.command()
def evaluate(
    prediction: Annotated[Path, typer.Argument(help="Predicted labels (MRC or OME-Zarr).")],
    truth: Annotated[
        Path, typer.Argument(help="True labels, MRC or OME-Zarr (255 = not labelled, ignored).")
    ],
    classes: Annotated[
        Path | None,
        typer.Option("--classes", help="classes.csv (default: beside TRUTH or PREDICTION)."),
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Metrics JSON.")] = None,
    filaments: Annotated[
        list[str] | None,
        typer.Option(
            "--filament",
            help="Class also scored with clDice (repeatable; default: names like actin, "
            "microtubule).",
        ),
    ] = None,
) -> None:
    """Per-class Dice, IoU, precision, recall, and clDice for filament classes."""
    import json

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from tomosim.formats.volumes import read_volume
    from tomosim.io import write_text
    from tomosim.labels import label_ids
    from tomosim.train.metrics import is_filament_name, segmentation_scores, summarise_scores

    if output is not None:
        _refuse_writing_into_inputs(output, [prediction, truth])
    predicted_volume = read_volume(prediction, require_voxel_size=False)
    true_volume = read_volume(truth, require_voxel_size=False)
    predicted = label_ids(np.asarray(predicted_volume.data), prediction)
    true = label_ids(np.asarray(true_volume.data), truth)
    if predicted.shape != true.shape:
        raise TomosimError(
            f"prediction shape {predicted.shape} differs from truth shape {true.shape}: "
            f"{prediction}"
        )
    sizes = (predicted_volume.voxel_size, true_volume.voxel_size)
    if min(sizes[0]) > 0 and min(sizes[1]) > 0 and not np.allclose(*sizes, rtol=0.01):
        raise TomosimError(
            f"prediction voxel size {sizes[0][::-1]} Å differs from the truth's {sizes[1][::-1]} Å "
            f"(x, y, z): {prediction}"
        )
    table = _class_table_near(truth, classes) or _class_table_near(prediction, None)
    names = dict(zip(table.ids, table.names, strict=True)) if table is not None else {}
    for label_id in np.union1d(np.unique(predicted), np.unique(true)):
        if int(label_id) not in (0, 255):
            names.setdefault(int(label_id), f"class_{int(label_id)}")
    chosen = list(filaments) if filaments else [n for n in names.values() if is_filament_name(n)]
    unknown = [n for n in chosen if n not in names.values()]
    if unknown:
        raise TomosimError(
            f"--filament {unknown[0]!r} is not a class name (classes {sorted(names.values())})"
        )
    scores = segmentation_scores(predicted, true, classes=names, filaments=chosen)
    summary = summarise_scores(scores)
    grid = Table(title=f"{prediction} vs {truth}")
    keys = ("dice", "iou", "precision", "recall", "cl_dice")
    for column in ("id", "class", "Dice", "IoU", "precision", "recall", "clDice", "true voxels",
                   "predicted voxels"):
        grid.add_column(column, justify="left" if column == "class" else "right", no_wrap=True)

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    for s in scores:
        grid.add_row(str(s.id), s.name, *(show(getattr(s, k)) for k in keys),
                     str(s.true_voxels), str(s.predicted_voxels))
    grid.add_row("", "mean", *(show(summary[f"mean_{k}"]) for k in keys), "", "")
    Console(width=None if sys.stdout.isatty() else 140).print(grid)
    if output is not None:
        report = {"prediction": str(prediction), "truth": str(truth), "summary": summary,
                  "classes": [s.as_dict() for s in scores]}
        write_text(output, json.dumps(report, indent=2) + "\n")


@app.command()
def pick(
    source: Annotated[
        Path,
        typer.Argument(
            help="A picking model (model folder or .pt) followed by TOMOGRAM, or a label MRC "
            "(voxel size set) whose connected components are picked."
        ),
    ],
    tomogram: Annotated[
        Path | None, typer.Argument(help="Tomogram MRC to pick (with a model only).")
    ] = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output particles STAR file.")
    ] = ...,  # type: ignore[assignment]
    classes: Annotated[
        Path | None,
        typer.Option("--classes", help="classes.csv (labels only; default: beside LABELS)."),
    ] = None,
    class_names: Annotated[
        list[str] | None,
        typer.Option(
            "--class",
            help="Class to pick (repeatable; default: the model's classes, or for labels all "
            "but membrane/filament names).",
        ),
    ] = None,
    min_size_px: Annotated[
        int, typer.Option("--min-size-px", help="Labels: smallest component kept, voxels.")
    ] = 1,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Model: smallest peak score (default: the model's)."),
    ] = None,
    tomogram_name: Annotated[
        str, typer.Option("--tomogram-name", help="rlnTomoName of the particles.")
    ] = "TS_01",
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Model: z-slices per network call.")
    ] = 4,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Particles as a RELION 5 style STAR file, from a picking network or from labels.

    With a model: peaks of the network's smoothed class probabilities, at least nms_fraction x
    radius apart (class-dependent), scores in rlnAutopickFigureOfMerit. With a label MRC:
    centroids of connected components. Coordinates: rlnCoordinateX/Y/Z in voxels of the input
    (voxel i centred at i) and rlnCenteredCoordinateX/Y/ZAngst from the centre voxel shape // 2.
    """
    import numpy as np

    from tomosim.formats.volumes import read_volume
    from tomosim.io import read_mrc, require_finite
    from tomosim.labels import label_ids, make_class_table
    from tomosim.particles import write_particles_star
    from tomosim.train.picking import is_globular_name, pick_particles

    _refuse_writing_into_inputs(output, [source, *([tomogram] if tomogram else [])])
    if source.is_dir() or source.suffix == ".pt":
        if tomogram is None:
            raise TomosimError(f"give the TOMOGRAM to pick with the model {source}")
        if batch_size < 1:
            raise TomosimError(f"--batch-size must be at least 1, got {batch_size}")
        _require_torch(threads)
        from tomosim.train.checkpoint import load_checkpoint
        from tomosim.train.picking_network import pick_tomogram

        checkpoint = load_checkpoint(source)
        volume = read_volume(tomogram)
        require_finite(np.asarray(volume.data), tomogram)
        try:
            particles = pick_tomogram(
                checkpoint, volume.data, voxel_size=volume.voxel_size, classes=class_names,
                threshold=threshold, tomogram_name=tomogram_name, batch_size=batch_size,
                progress=not quiet,
            )
        except TomosimError as exc:
            raise TomosimError(f"{exc}: {source}") from None
    else:
        if tomogram is not None:
            raise TomosimError(
                f"{source} is not a model folder or .pt file; a label MRC takes no TOMOGRAM"
            )
        if min_size_px < 1:
            raise TomosimError(f"--min-size-px must be at least 1 voxel, got {min_size_px}")
        volume = read_mrc(source)
        label_data = label_ids(volume.data, source)
        table = _class_table_near(source, classes)
        if table is None:
            present = [int(v) for v in np.unique(label_data) if int(v) not in (0, 255)]
            table = make_class_table(present, [f"class_{v}" for v in present])
        if class_names:
            wanted = {table.id_of(name): name for name in class_names}
        else:
            wanted = {
                i: n for i, n in zip(table.ids, table.names, strict=True)
                if i != 0 and is_globular_name(n)
            }
        particles = pick_particles(
            label_data, classes=wanted, voxel_size=volume.voxel_size, min_size_px=min_size_px,
            tomogram_name=tomogram_name,
        )
    write_particles_star(output, particles)
    per_class = particles.groupby("tomosimClassName").size().to_dict() if len(particles) else {}
    typer.echo(f"{output}: {len(particles)} particles {per_class}")


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
) -> None:
    """Simulate N randomised phantoms in parallel (resumable: re-run to continue)."""
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
    )
    typer.echo(
        f"{index.done} phantoms in {output}/ (index.csv, index.json) "
        f"in {time.monotonic() - start:.1f} s"
    )


# ---- commands: picking-targets ----------------------------------------------------------


@app.command("picking-targets")
def picking_targets(
    folder: Annotated[
        Path, typer.Argument(help="Simulation folder: tomogram.mrc, particles.star, classes.csv.")
    ],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="spheres: label MRC; heatmaps: folder of MRCs."),
    ],
    kind: Annotated[str, typer.Option("--kind", help="spheres or heatmaps.")] = "spheres",
    target_fraction: Annotated[
        float,
        typer.Option(
            "--target-fraction",
            help="Ball radius (spheres) or Gaussian sigma (heatmaps) as a fraction of the radius.",
        ),
    ] = 0.5,
    radius: Annotated[
        list[str] | None,
        typer.Option("--radius", help="Particle radius NAME=Å (default: from labels.mrc)."),
    ] = None,
) -> None:
    """Write the localisation targets that --task picking builds on the fly from particles.star.

    spheres: uint8 labels, a ball of TARGET_FRACTION x radius per particle, with
    <stem>.classes.csv; heatmaps: OUTPUT/<class>.mrc, float32 unit-peak Gaussians of standard
    deviation TARGET_FRACTION x radius. Radii not given are estimated from labels.mrc.
    """
    from tomosim.io import write_mrc
    from tomosim.labels import write_class_table
    from tomosim.train.localisation import read_heatmap_targets, read_picking_folder
    from tomosim.train.picking_metrics import parse_name_values

    if kind not in ("spheres", "heatmaps"):
        raise TomosimError(f"--kind must be spheres or heatmaps, got {kind!r}")
    if not 0 < target_fraction <= 5:
        raise TomosimError(f"--target-fraction must be in (0, 5], got {target_fraction}")
    radii = parse_name_values(radius or [], option="--radius")
    if kind == "spheres":
        data, used = read_picking_folder(folder, radii=radii, target_fraction=target_fraction)
        write_mrc(output, data.labels, voxel_size=data.voxel_size)
        stem = output.name.rsplit(".", 1)[0]
        write_class_table(output.with_name(f"{stem}.classes.csv"), data.classes)
    else:
        heatmaps, classes, used, voxel_size = read_heatmap_targets(
            folder, radii=radii, sigma_fraction=target_fraction
        )
        output.mkdir(parents=True, exist_ok=True)
        for name, heatmap in zip(classes.names[1:], heatmaps, strict=True):
            write_mrc(output / f"{name}.mrc", heatmap, voxel_size=voxel_size)
    shown = ", ".join(f"{n} {r:.0f} Å" for n, r in used.items())
    typer.echo(f"{output}: {kind} for {len(used)} classes (radii {shown})")


# ---- commands: match --------------------------------------------------------------------


@app.command("match")
def match_command(
    tomogram: Annotated[
        Path, typer.Argument(help="A real tomogram (MRC, OME-Zarr, copick run), beam along z.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Config to write (match.yaml).")],
    pixel_size: Annotated[
        float | None,
        typer.Option("--pixel-size", help="Å per voxel (required when the header has none)."),
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option("--base", help="Config the measurements are merged into (default: demo)."),
    ] = None,
    seed: SeedOption = None,
    no_picture: Annotated[
        bool, typer.Option("--no-picture", help="Skip the phantom and the comparison PNG.")
    ] = False,
) -> None:
    """Measure a tomogram and write a simulation config that resembles it.

    Measures pixel size, sample thickness, contrast polarity, background noise and spectrum, and
    the apparent tilt range; writes OUTPUT (a config with distributions centred on them),
    OUTPUT.json (all numbers) and OUTPUT.png (slices and spectra beside a phantom simulated from
    the config).
    """
    from tomosim.config import read_config_tree
    from tomosim.match import match_tomogram_file

    if pixel_size is not None and not 0 < pixel_size <= 100:
        raise TomosimError(f"--pixel-size must be in (0, 100] Å, got {pixel_size}")
    tree = read_config_tree(base) if base is not None else None
    measured = match_tomogram_file(
        tomogram, output, pixel_size=pixel_size, base=tree, seed=seed or 0,
        picture=not no_picture,
    )
    low, high = measured.tilt_range
    typer.echo(
        f"{output}: pixel size {measured.pixel_size:g} Å, thickness {measured.thickness:.0f} Å, "
        f"protein {measured.polarity}, tilt range {low:.1f}..{high:.1f} degrees, "
        f"background noise s.d. {measured.noise_sd:.4g}"
    )


# ---- commands: evaluate-picks -----------------------------------------------------------


@app.command("evaluate-picks")
def evaluate_picks(
    truth: Annotated[Path, typer.Argument(help="True particles STAR (e.g. particles.star).")],
    prediction: Annotated[Path, typer.Argument(help="Predicted particles STAR (tomosim pick).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Scores JSON.")] = None,
    radius: Annotated[
        list[str] | None,
        typer.Option(
            "--radius",
            help="Particle radius NAME=Å (repeatable; the CZII class names have the challenge's).",
        ),
    ] = None,
    weight: Annotated[
        list[str] | None,
        typer.Option(
            "--weight",
            help="Class weight NAME=W in the weighted F-beta (repeatable; default 1, or the "
            "challenge's with --czii-weights).",
        ),
    ] = None,
    czii_weights: Annotated[
        bool, typer.Option("--czii-weights", help="Start from the CZII challenge's class weights.")
    ] = False,
    beta: Annotated[
        float, typer.Option("--beta", help="F-beta's beta (recall weighs beta²).")
    ] = 4.0,
    distance_fraction: Annotated[
        float,
        typer.Option("--distance-fraction", help="Match within this fraction of the radius."),
    ] = 0.5,
    matching: Annotated[
        str, typer.Option("--matching", help="hungarian (one-to-one) or czii (challenge counting).")
    ] = "hungarian",
    pixel_size: Annotated[
        float | None,
        typer.Option("--pixel-size", help="Å/pixel if the files have only rlnCoordinateX/Y/Z."),
    ] = None,
) -> None:
    """Score picked particles against the truth: per-class precision, recall and F-beta.

    A pick is a true positive within DISTANCE_FRACTION x radius (inclusive) of an unmatched true
    particle of its class in its tomogram (rlnTomoName); counts are summed over tomograms.
    Distractors (class 0) and filament subunits in either file are not scored.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from tomosim.io import write_text
    from tomosim.train.picking_metrics import (
        CZII_WEIGHTS,
        evaluate_pick_files,
        parse_name_values,
    )

    if matching not in ("hungarian", "czii"):
        raise TomosimError(f"--matching must be hungarian or czii, got {matching!r}")
    weights = dict(CZII_WEIGHTS) if czii_weights else {}
    weights.update(parse_name_values(weight or [], option="--weight"))
    result = evaluate_pick_files(
        truth, prediction, radii=parse_name_values(radius or [], option="--radius"),
        distance_fraction=distance_fraction, beta=beta, weights=weights,
        matching=matching,  # type: ignore[arg-type]
        pixel_size=pixel_size,
    )
    title = f"{prediction} vs {truth} (F{beta:g}, within {distance_fraction:g} x radius)"
    grid = Table(title=title)
    for column in ("class", "radius Å", "weight", "true", "picked", "TP", "FP", "FN",
                   "precision", "recall", f"F{beta:g}"):
        grid.add_column(column, justify="left" if column == "class" else "right", no_wrap=True)

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    for c in result.classes:
        grid.add_row(c.name, f"{c.radius:g}", f"{c.weight:g}", str(c.true_particles),
                     str(c.predicted_particles), str(c.true_positives), str(c.false_positives),
                     str(c.false_negatives), show(c.precision), show(c.recall), show(c.fbeta))
    grid.add_row("weighted", "", "", "", "", "", "", "", "", "", show(result.weighted_fbeta))
    Console(width=None if sys.stdout.isatty() else 160).print(grid)
    if output is not None:
        report = {"truth": str(truth), "prediction": str(prediction), **result.as_dict()}
        write_text(output, json.dumps(report, indent=2) + "\n")


# ---- commands: export (copick, RELION 5) -------------------------------------------------

export_app = typer.Typer(
    help="Export run folders to other tools' formats: copick projects, RELION 5 projects.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")

RunsArgument = Annotated[
    list[Path],
    typer.Argument(help="Run folders of tomosim simulate, or dataset folders (their phantoms)."),
]


def _expand_run_folders(paths: list[Path]) -> list[Path]:
    """Run folders; a dataset folder (index.json) stands for its complete phantom folders."""
    out: list[Path] = []
    for path in paths:
        if (path / "index.json").is_file() and not (path / "config.resolved.yaml").exists():
            phantoms = sorted(
                p for p in path.glob("phantom_*") if (p / "config.resolved.yaml").is_file()
            )
            if not phantoms:
                raise TomosimError(f"dataset folder has no complete phantom folders: {path}")
            out.extend(phantoms)
        else:
            out.append(path)
    return out


@export_app.command("copick")
def export_copick_command(
    runs: RunsArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="copick project folder.")],
    names: Annotated[
        list[str] | None,
        typer.Option("--name", help="Run name, one per run folder (default: tomogram names)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace runs the project already holds.")
    ] = False,
) -> None:
    """Write run folders as runs of a copick project (tomogram, labels, picks per class)."""
    from tomosim.formats.copick import export_copick
    from tomosim.formats.run_folder import read_run_folder

    folders = [read_run_folder(path) for path in _expand_run_folders(runs)]
    result = export_copick(folders, output, names=names, overwrite=overwrite)
    typer.echo(f"{result.config}: runs {', '.join(result.runs)}")


@export_app.command("relion")
def export_relion_command(
    runs: RunsArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="RELION 5 project folder.")],
) -> None:
    """Write tomograms.star, tilt-series STAR files, particles.star and optimisation_set.star."""
    from tomosim.formats.relion import write_relion_project
    from tomosim.formats.run_folder import read_run_folder

    folders = [read_run_folder(path) for path in _expand_run_folders(runs)]
    project = write_relion_project(folders, output)
    typer.echo(
        f"{project.optimisation_set}: {len(project.tilt_series)} tilt series, "
        f"particles in {project.particles.name}"
    )


# ---- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with one error path for every command.

    Usage errors (unknown command or option, a value of the wrong type, a missing argument),
    :class:`TomosimError` (bad input), ``OSError`` (unwritable or full disk, a name too long ...)
    and ``MemoryError`` end in one line ``tomosim: error: ...`` on stderr naming the input and the
    problem, exit code 2; usage errors print the usage line first. Ctrl-C prints
    ``tomosim: interrupted`` and exits 130. Temporary files are removed on the way out.

    Returns the exit code (also raised as ``SystemExit`` when run as a script).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings():
        # every warning of the run as one line on stderr (not an error, whatever the caller's
        # filters say), library deprecations left out
        warnings.simplefilter("default")
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.showwarning = _show_warning
        return _run(args, argv)


def _run(args: list[str], argv: list[str] | None) -> int:
    """Run the typer app on ``args``; every failure ends in one line and an exit code."""
    try:
        result = app(args=args, prog_name="tomosim", standalone_mode=False)
    except typer.Exit as exc:
        if _interrupt_in_chain(exc):  # typer turns Ctrl-C into Exit(130)
            return _exit(_interrupted(), argv)
        return _exit(exc.exit_code, argv)
    except typer.TyperException as exc:  # typer's (bundled click's) usage errors
        return _exit(_usage_error(exc), argv)
    except TomosimError as exc:
        return _exit(_error(str(exc)), argv)
    except MemoryError as exc:
        detail = f": {exc}" if str(exc) else ""
        return _exit(_error(f"out of memory{detail} (try a smaller volume or more memory)"), argv)
    except OSError as exc:
        return _exit(_error(_os_error_message(exc)), argv)
    except (KeyboardInterrupt, typer.Abort):
        return _exit(_interrupted(), argv)
    except Exception as exc:
        if _interrupt_in_chain(exc):  # Ctrl-C inside compiled code re-raised as SystemError
            return _exit(_interrupted(), argv)
        raise
    code = result if isinstance(result, int) else 0
    if code == 130:  # typer turns Ctrl-C into exit code 130 without a word
        return _exit(_interrupted(), argv)
    return _exit(code, argv)


def _error(message: str) -> int:
    """Print one error line on stderr; return the exit code 2."""
    typer.echo(f"tomosim: error: {message}", err=True)
    return 2


def _usage_error(exc: typer.TyperException) -> int:
    """Print a usage error: the usage line (if known), then one error line; return 2."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help text is already printed
        return _error("missing command or arguments (see the help above)")
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
    message = exc.format_message().replace("\n", " ")
    return _error(message)


def _os_error_message(exc: OSError) -> str:
    """``OSError`` as '<problem>: <path>' (both file names for a failed rename)."""
    problem = exc.strerror or str(exc) or type(exc).__name__
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{problem}: {' -> '.join(names)}" if names else problem


def _interrupt_in_chain(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None:
            return False
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _interrupted() -> int:
    typer.echo("tomosim: interrupted", err=True)
    return 130


def _show_warning(  # noqa: D417
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """Warnings (e.g. a placement target not reached) as one plain line on stderr."""
    typer.echo(f"tomosim: warning: {message}", err=True)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # console script
        sys.exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
