"""Membranes: lipid bilayers as vesicles (ellipsoidal or free-form) and sheets.

- :mod:`tomosim.membranes.bilayer`: the bilayer potential profile (its physics and literature
  values are written there), the anti-aliasing and the label rule;
- :mod:`tomosim.membranes.vesicles`: vesicles, their distances, potentials, masks and placement;
- :mod:`tomosim.membranes.sheets`: flat or curved sheets crossing the volume.

Every public name is importable from ``tomosim.membranes``.
"""

from tomosim.membranes.bilayer import (
    CHAIN_METHYLENES,
    CHAIN_METHYLS,
    CORE_EDGE_SIGMA,
    HEAD_GROUP_FORMULA,
    HEAD_GROUP_VOLUME,
    HEAD_POTENTIAL_V,
    HEAD_SIGMA,
    HEAD_TO_CORE,
    METHYL_POTENTIAL_V,
    METHYL_SIGMA,
    METHYLENE_POTENTIAL_V,
    METHYLENE_VOLUME,
    POTENTIAL_CONSTANT,
    PROFILE_REACH_SIGMAS,
    LocalBox,
    mean_inner_potential,
    membrane_profile,
)
from tomosim.membranes.sheets import (
    Sheet,
    SheetPopulation,
    place_sheets,
    sheet_potential,
    sheet_surface_points,
    vesicles_clear_of_sheets,
)
from tomosim.membranes.vesicles import (
    Deformation,
    Vesicle,
    VesiclePopulation,
    check_deformation,
    deformed_distance,
    draw_deformation,
    inside_mask,
    membrane_mask,
    place_vesicles,
    points_inside,
    radius_function,
    signed_distance,
    vesicle_area,
    vesicle_potential,
    vesicle_surface_points,
)

__all__ = [
    "CHAIN_METHYLENES", "CHAIN_METHYLS", "CORE_EDGE_SIGMA", "HEAD_GROUP_FORMULA",
    "HEAD_GROUP_VOLUME", "HEAD_POTENTIAL_V", "HEAD_SIGMA", "HEAD_TO_CORE", "METHYL_POTENTIAL_V",
    "METHYL_SIGMA", "METHYLENE_POTENTIAL_V", "METHYLENE_VOLUME", "POTENTIAL_CONSTANT",
    "PROFILE_REACH_SIGMAS", "LocalBox", "mean_inner_potential", "membrane_profile", "Sheet",
    "SheetPopulation", "place_sheets", "sheet_potential", "sheet_surface_points",
    "vesicles_clear_of_sheets", "Deformation", "Vesicle", "VesiclePopulation",
    "check_deformation", "deformed_distance", "draw_deformation", "inside_mask", "membrane_mask",
    "place_vesicles", "points_inside", "radius_function", "signed_distance", "vesicle_area",
    "vesicle_potential", "vesicle_surface_points",
]
