"""Our SAEs in other tools' formats: SAELens folders (export_saelens / load_saelens), which SAEBench, SAEDashboard
and most interpretability tooling read, and SAEBench's custom-SAE interface for Switch SAEs (SAEBenchSwitchSAE).
"""

from .saebench import SAEBenchConfig, SAEBenchSwitchSAE
from .saelens import SAELensFormatError, export_saelens, load_saelens

__all__ = ["SAEBenchConfig", "SAEBenchSwitchSAE", "SAELensFormatError", "export_saelens", "load_saelens"]
