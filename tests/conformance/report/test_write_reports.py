"""write_reports: the four files, no secrets in any of them, curl commands that replay faithfully."""

from __future__ import annotations

import shlex
from pathlib import Path

from conformance.report import REPORT_FILES, curl_command, to_document, write_reports
from conformance.results import RecordedRequest, RunReport


def test_writes_all_four_files(report: RunReport, tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir"
    paths = write_reports(report, target)
    assert {name: path.name for name, path in paths.items()} == REPORT_FILES
    assert all(path.parent == target and path.stat().st_size > 0 for path in paths.values())


def test_no_file_holds_a_secret_from_the_settings(report: RunReport, tmp_path: Path, canary: str) -> None:
    # RunReport never holds the key; a setting that looks secret is still scrubbed by every writer.
    for path in write_reports(report, tmp_path).values():
        text = path.read_text(encoding="utf-8")
        assert canary not in text, path.name


def test_curl_uses_the_environment_variable_and_replays_the_body() -> None:
    request = RecordedRequest(
        method="post",
        url="http://crm.test/tasks?x=1&y=2",
        headers={"X-API-Key": "[REDACTED]", "Content-Type": "application/json", "Content-Length": "9"},
        body='{"a": "it\'s $HOME `x`"}',
    )
    command = curl_command(request, key_header="X-API-Key")
    assert '-H "X-API-Key: $ENGINY_API_KEY"' in command
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:6] == ["curl", "-sS", "-i", "-X", "POST", "http://crm.test/tasks?x=1&y=2"]
    assert argv[argv.index("--data-raw") + 1] == '{"a": "it\'s $HOME `x`"}'  # single-quoted: nothing expands
    assert "Content-Length: 9" not in command


def test_curl_keeps_a_wrong_key_and_leaves_out_other_masked_headers() -> None:
    request = RecordedRequest(
        method="GET",
        url="http://crm.test/health",
        headers={"X-API-Key": "SCHEMATHESIS-INVALID-VALUE", "Authorization": "[Filtered]"},
    )
    command = curl_command(request, key_header="X-API-Key")
    assert "'X-API-Key: SCHEMATHESIS-INVALID-VALUE'" in command
    assert "Authorization" not in command and "ENGINY_API_KEY" not in command


def test_curl_for_an_unusual_header_name_still_expands_only_the_variable() -> None:
    request = RecordedRequest(method="GET", url="http://crm.test/health", headers={"X.Key": "[REDACTED]"})
    command = curl_command(request, key_header="x.key")
    assert command.endswith("""-H 'X.Key: '"$ENGINY_API_KEY\"""")


def test_writers_do_not_invent_keys(report: RunReport) -> None:
    # Every curl in the report names the key only through the variable, and only where one was sent.
    document = to_document(report)
    curls = [
        (exchange["request"]["headers"], exchange["curl"])
        for result in document["results"]
        for item in result["evidence"]
        for exchange in item["exchanges"]
    ]
    assert len(curls) == 4
    for headers, command in curls:
        assert "[REDACTED]" not in command and "[Filtered]" not in command
        assert ("$ENGINY_API_KEY" in command) == ("X-API-Key" in headers)


def test_public_surface() -> None:
    import conformance.report as report

    public = sorted(name for name in vars(report) if not name.startswith("_") and name.isidentifier())
    modules_and_imports = {"Path", "RunReport", "annotations", "write_html", "write_json", "write_junit"}
    modules_and_imports |= {"write_markdown", "scrub_settings"}
    assert sorted(report.__all__) == report.__all__
    assert [name for name in public if name not in modules_and_imports] == report.__all__
