"""conformance.redaction: the key out as a whole value everywhere, inside text only where it is no word."""

from __future__ import annotations

import pytest

from conformance.redaction import REDACTED, LearnedSecrets, Redactor, credential_values, is_strong

LONG = "Kq7-x9Lm2x9Lm2x9Lm2x9Lm2x9Lm2x9Lm2zZ1"


@pytest.mark.parametrize(
    ("secret", "strong"),
    [
        ("k", False),
        ("test", False),
        ("password", False),
        ("secretkey", False),
        ("s3cr3t-k", True),
        (LONG, True),
    ],
)
def test_a_key_is_strong_when_it_cannot_be_part_of_ordinary_words(secret, strong):
    assert is_strong(secret) is strong


@pytest.mark.parametrize("secret", ["k", "test"])
def test_a_weak_key_is_replaced_as_a_value_and_never_inside_words(secret):
    redactor = Redactor(secret, "X-API-Key")
    assert redactor.text(f"the {secret}-task and the test task") == f"the {secret}-task and the test task"
    assert redactor.text(secret) == REDACTED
    assert redactor.text(f"X-API-Key: {secret}") == f"X-API-Key: {REDACTED}"
    assert redactor.text(f'{{"apiKey": "{secret}"}}') == f'{{"apiKey": "{REDACTED}"}}'
    assert redactor.body(f'{{"echo": "{secret}", "subject": "a test of {secret}"}}') == (
        f'{{"echo": "{REDACTED}", "subject": "a test of {secret}"}}'
    )
    assert redactor.url(f"http://crm/tasks/batch?key={secret}&q=task") == (
        f"http://crm/tasks/batch?key={REDACTED.replace('[', '%5B').replace(']', '%5D')}&q=task"
    )
    assert redactor.url(f"http://crm/tasks/{secret}ask") == f"http://crm/tasks/{secret}ask"


def test_a_strong_key_is_replaced_wherever_it_occurs_in_any_form():
    redactor = Redactor(LONG, "X-API-Key")
    assert redactor.text(f"prefix{LONG}suffix") == f"prefix{REDACTED}suffix"
    assert redactor.url(f"http://crm/x/{LONG}") == f"http://crm/x/{REDACTED}"


def test_headers_hold_the_key_only_as_redacted_and_a_wrong_key_stays_visible():
    redactor = Redactor("test", "X-API-Key")
    headers = redactor.headers(
        {
            "X-API-Key": "test",
            "x-api-key": "enginy-conformance-wrong-key",
            "Authorization": "Basic abc",
            "X-Echo": "Bearer test",
            "X-Note": "latest test run",
        }
    )
    assert headers == {
        "X-API-Key": REDACTED,
        "x-api-key": "enginy-conformance-wrong-key",  # the curl then replays the wrong key, as sent
        "Authorization": REDACTED,
        "X-Echo": REDACTED,
        "X-Note": REDACTED,  # "test" is a word of it: a header value is never shown half
    }


def test_no_key_means_nothing_to_hide():
    redactor = Redactor("", "X-API-Key")
    assert redactor.text("anything") == "anything" and redactor.header_value("X-API-Key", "") == ""


# --- secrets a proxy learns from the traffic it sees ------------------------------------------------------


def test_credential_values_are_the_values_under_credential_names_only():
    headers = [
        ("x-api-key", "k"),  # the key header, whatever its case
        ("Authorization", "Bearer tok-123"),
        ("Cookie", "session=s-1; theme=dark"),
        ("X-Session-Token", "st-9"),
        ("X-Request-Id", "r-1"),  # not a credential
        ("X-Api-Key-Old", "[REDACTED]"),  # a placeholder is no credential
        ("Accept", "application/json"),
    ]
    found = credential_values(headers, key_header="X-API-Key", query="api_key=q-7&page=2")
    assert found == ["k", "Bearer tok-123", "tok-123", "s-1", "dark", "st-9", "q-7"]


def test_learned_secrets_redact_each_value_taught_and_the_longest_first():
    secrets = LearnedSecrets(header="X-API-Key")
    assert secrets.header_value("Authorization", "anything") == REDACTED  # with nothing learned yet
    secrets.learn(["tasks", "Bearer " + LONG, LONG, "tasks"])
    assert len(secrets) == 3
    assert secrets.text(f"Authorization: Bearer {LONG} for /tasks") == f"Authorization: {REDACTED} for /tasks"
    assert secrets.header_value("X-API-Key", "tasks") == REDACTED
    assert secrets.url("http://crm/tasks?api_key=tasks") == "http://crm/tasks?api_key=%5BREDACTED%5D"
    assert secrets.body('{"subject": "all the tasks", "echo": "tasks"}') == (
        f'{{"subject": "all the tasks", "echo": "{REDACTED}"}}'
    )
