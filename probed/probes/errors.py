"""Kept for `probed.runtime.attempt`, which imports `classify` from here: the classifier itself
lives in probed/probes/common/errors.py. Remove once the runtime imports it from there."""

from probed.probes.common.errors import classify

__all__ = ["classify"]
