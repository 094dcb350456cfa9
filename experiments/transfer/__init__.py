"""Experiment harness for few-shot cross-lingual transfer with gradient surgery."""
