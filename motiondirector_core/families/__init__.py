"""Every base-model family the pack knows, behind one interface (family.py): each one's module names, LoRA
placement, single-frame bypass, loaders, defaults and file formats live in its own package here."""

from .animatediff import AnimateDiffFamily
from .family import Export, FamilyDefaults, ModelFamily, ModelSource
from .modelscope import ModelScopeFamily

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (ModelScopeFamily(), AnimateDiffFamily())}

__all__ = ["FAMILIES", "Export", "FamilyDefaults", "ModelFamily", "ModelSource"]
