"""The HTML report. It reads result records and nothing else."""

from cnnbench.report.build import ReportError, build_report
from cnnbench.report.frames import records_frame, summary_frame

__all__ = ["ReportError", "build_report", "records_frame", "summary_frame"]
