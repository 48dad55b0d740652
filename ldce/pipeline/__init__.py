"""Counterfactual explanations from Python: ``LDCEPipeline.from_config("quickstart")(images, targets)``."""

from ldce.pipeline.pipeline import LDCEPipeline, LDCEPipelineOutput

__all__ = ["LDCEPipeline", "LDCEPipelineOutput"]
