"""The report files of a run, written from a `RunReport` alone (no network, no settings object).

    report.json   complete and versioned, for machines (docs/report-format.md, report.schema.json)
    junit.xml     one testcase per rule, for CI test widgets; fails exactly when the verdict does
    report.html   one self-contained page for people: the verdict and each failure with its curl on
                  the first screen, then every rule with its requests and responses
    summary.md    for a CI job summary: the verdict, a table of what failed, each failure's curl
                  (at most 60 KiB)

The key is never in a `RunReport`; as a second line of defence every writer shows the run settings
through `scrub_settings`, and curl commands read the key from $ENGINY_API_KEY.
"""

from __future__ import annotations

from pathlib import Path

from conformance.report._common import ENV_KEY, curl_command, group_of, key_header, ordered, scrub_settings
from conformance.report._html import render_html, write_html
from conformance.report._json import FORMAT, REPORT_SCHEMA_PATH, VERSION, to_document, write_json
from conformance.report._junit import write_junit
from conformance.report._markdown import render_markdown, write_markdown
from conformance.results import RunReport

__all__ = [
    "ENV_KEY",
    "FORMAT",
    "REPORT_FILES",
    "REPORT_SCHEMA_PATH",
    "VERSION",
    "curl_command",
    "group_of",
    "key_header",
    "ordered",
    "render_html",
    "render_markdown",
    "to_document",
    "write_reports",
]

# Format name -> file name, in the order they are written.
REPORT_FILES: dict[str, str] = {
    "json": "report.json",
    "junit": "junit.xml",
    "html": "report.html",
    "markdown": "summary.md",
}


def write_reports(report: RunReport, directory: Path) -> dict[str, Path]:
    """Write all four files into `directory` (created if missing) and return their paths by format.

    Existing files of the same names are replaced. Raises OSError when the directory is not writable.
    """
    directory.mkdir(parents=True, exist_ok=True)
    settings = scrub_settings(report.settings)
    return {
        "json": write_json(report, directory / REPORT_FILES["json"]),
        "junit": write_junit(report, directory / REPORT_FILES["junit"]),
        "html": write_html(report, directory / REPORT_FILES["html"], settings=settings),
        "markdown": write_markdown(report, directory / REPORT_FILES["markdown"]),
    }
