"""Trusted grading: the learner's kernel computes in a sandbox, this process decides (grade.py, batch.py)."""
