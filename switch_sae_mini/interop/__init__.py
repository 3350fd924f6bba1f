"""Our SAEs in other tools' formats: SAELens folders (export_saelens / load_saelens), which SAEBench, SAEDashboard
and most interpretability tooling read.
"""

from .saelens import SAELensFormatError, export_saelens, load_saelens

__all__ = ["SAELensFormatError", "export_saelens", "load_saelens"]
