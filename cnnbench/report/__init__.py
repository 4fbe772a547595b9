"""The HTML report. It reads result records and nothing else."""

from cnnbench.report.build import build_report, records_frame, summary_frame

__all__ = ["build_report", "records_frame", "summary_frame"]
