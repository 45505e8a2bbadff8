"""Bridges to outside harnesses. Each module imports its harness, so none is imported here:
``l2v_hub.integrations.lmms_eval`` needs the ``lmms-eval`` extra (docs/eval.md), and the main
package never imports it."""

__all__: list[str] = []
