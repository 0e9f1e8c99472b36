"""copick export, checked with the copick package's own API: runs, voxel spacings, tomogram and
segmentation arrays, picks (count, positions, orientations) against particles.star as copick's own
RELION importer reads it; refusals of existing runs and forbidden names."""

from __future__ import annotations

import json

import numpy as np
import pytest

copick = pytest.importorskip("copick")
from copick.util.formats import read_relion_tomograms, relion_coordinates_to_angstrom  # noqa: E402
from copick.util.relion import relion_rows_to_poses  # noqa: E402

from formats_run import PIXEL, make_run  # noqa: E402
from tomosim.errors import TomosimError  # noqa: E402
from tomosim.formats.copick import export_copick  # noqa: E402
from tomosim.formats.relion import write_relion_project  # noqa: E402
from tomosim.formats.run_folder import read_particle_star, read_run_folder  # noqa: E402
from tomosim.formats.volumes import read_volume  # noqa: E402
from tomosim.io import read_mrc  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("copick")
    run = make_run(root / "run_a")
    result = export_copick([read_run_folder(run)], root / "project")
    return run, root / "project", result


def test_project_opens_with_copick_and_arrays_match(exported):
    run, project, result = exported
    root = copick.from_file(str(result.config))
    assert [r.name for r in root.runs] == ["TS_07"]
    names = {o.name: o for o in root.pickable_objects}
    assert set(names) == {"apoferritin", "proteasome", "actin"}
    assert [names[n].label for n in ("apoferritin", "proteasome", "actin")] == [1, 2, 3]
    assert names["apoferritin"].color == (0xF3, 0xC3, 0x00, 255)
    assert 40 < names["apoferritin"].radius < 80  # apoferritin's outer radius is ~60 Å
    copick_run = root.get_run("TS_07")
    assert [vs.voxel_size for vs in copick_run.voxel_spacings] == [PIXEL]
    tomogram = copick_run.get_voxel_spacing(PIXEL).get_tomograms("wbp")[0]
    np.testing.assert_array_equal(tomogram.numpy(), read_mrc(run / "tomogram.mrc").data)
    segmentations = copick_run.get_segmentations(is_multilabel=True)
    assert len(segmentations) == 1 and segmentations[0].voxel_size == PIXEL
    labels = read_mrc(run / "labels.mrc", require_voxel_size=False).data
    np.testing.assert_array_equal(segmentations[0].numpy(), labels)
    # a copick run reads as a volume wherever tomosim reads MRC
    np.testing.assert_array_equal(read_volume(project / "ExperimentRuns" / "TS_07").data,
                                  tomogram.numpy())


def test_picks_match_particles_star_as_copick_reads_it(exported, tmp_path):
    run, project, result = exported
    relion = write_relion_project([read_run_folder(run)], tmp_path / "relion")
    optics, particles = read_particle_star(run / "particles.star")
    tomograms = read_relion_tomograms(str(relion.tomograms))
    # copick's RELION 5 importer: centred Å + rlnTomoSize / 2 * pixel, poses from the angles
    expected_positions = relion_coordinates_to_angstrom(
        particles, tomograms=tomograms, optics=optics, relion_version="relion5"
    )
    expected_rotations, _ = relion_rows_to_poses(particles)
    copick_run = copick.from_file(str(result.config)).get_run("TS_07")
    total = 0
    for name, label in (("apoferritin", 1), ("proteasome", 2), ("actin", 3)):
        rows = np.flatnonzero(particles.rlnClassNumber.to_numpy() == label)
        picks = copick_run.get_picks(object_name=name)
        assert len(picks) == 1
        positions, transforms = picks[0].numpy()
        assert len(positions) == len(rows) > 0
        np.testing.assert_array_less(
            np.abs(positions - expected_positions[rows]), 0.5 * PIXEL
        )
        np.testing.assert_allclose(transforms[:, :3, :3], expected_rotations[rows], atol=1e-6)
        np.testing.assert_allclose(transforms[:, :3, 3], 0.0)
        total += len(rows)
    assert total == len(particles)


def test_existing_runs_and_forbidden_names_are_refused(exported, tmp_path, run_cli):
    run, project, result = exported
    before = result.config.read_text()
    with pytest.raises(TomosimError, match="already holds run 'TS_07'"):
        export_copick([read_run_folder(run)], project)
    code, out, err = run_cli("export", "copick", str(run), "-o", str(project))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--overwrite" in err
    assert result.config.read_text() == before
    assert not list(project.glob(".tomosim-staging-*"))
    code, out, err = run_cli("export", "copick", str(run), "-o", str(project), "--overwrite")
    assert code == 0, err
    assert copick.from_file(str(result.config)).get_run("TS_07") is not None
    code, out, err = run_cli("export", "copick", str(run), "-o", str(tmp_path / "p"),
                             "--name", "bad name")
    assert code == 2 and "not valid for copick" in err and not (tmp_path / "p").exists()
    # a class whose name copick forbids (underscore) is refused before anything is written
    renamed = make_run(tmp_path / "renamed")
    classes = (renamed / "classes.csv").read_text().replace("proteasome", "proteasome_26S")
    (renamed / "classes.csv").write_text(classes)
    with pytest.raises(TomosimError, match="not a valid copick object name"):
        export_copick([read_run_folder(renamed)], tmp_path / "q")
    assert not (tmp_path / "q").exists()


def test_second_run_is_added_with_the_same_objects(exported, tmp_path):
    run, project, result = exported
    other = make_run(tmp_path / "run_b", tomogram_name="TS_08")
    export_copick([read_run_folder(other)], project)
    root = copick.from_file(str(result.config))
    assert sorted(r.name for r in root.runs) == ["TS_07", "TS_08"]
    config = json.loads(result.config.read_text())
    assert [o["label"] for o in config["pickable_objects"]] == [1, 2, 3]


def test_export_is_reproducible(exported, tmp_path):
    run, project, result = exported
    again = export_copick([read_run_folder(run)], tmp_path / "again")
    first = project / "ExperimentRuns" / "TS_07"
    second = tmp_path / "again" / "ExperimentRuns" / "TS_07"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert any("wbp.zarr" in str(f) for f in files)
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert again.runs == ("TS_07",)
