"""Account mails as small string templates: a plain-text and an HTML body for each.

Values are substituted as given into the text part and HTML-escaped into the HTML part.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class MailTemplate:
    subject: str
    text: str
    html: str

    def render(self, **values: str) -> Rendered:
        escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
        return Rendered(
            subject=Template(self.subject).substitute(values),
            text=Template(self.text).substitute(values),
            html=Template(_HTML_FRAME).substitute(
                body=Template(self.html).substitute(escaped),
                subject=html.escape(Template(self.subject).substitute(values)),
            ),
        )


_HTML_FRAME = """<!doctype html>
<html><head><meta charset="utf-8"><title>$subject</title></head>
<body style="font-family: sans-serif; line-height: 1.5">
$body
</body></html>
"""

PASSWORD_RESET = MailTemplate(
    subject="Reset your password",
    text=(
        "Hello $name,\n\n"
        "Someone (hopefully you) asked to reset the password of your account.\n"
        "Open this link within $minutes minutes to choose a new one:\n\n"
        "$link\n\n"
        "If you did not ask for this, ignore this mail: your password stays as it is.\n"
    ),
    html=(
        "<p>Hello $name,</p>"
        "<p>Someone (hopefully you) asked to reset the password of your account. "
        "Open this link within $minutes minutes to choose a new one:</p>"
        '<p><a href="$link">Reset your password</a></p>'
        "<p>If you did not ask for this, ignore this mail: your password stays as it is.</p>"
    ),
)

VERIFY_EMAIL = MailTemplate(
    subject="Confirm your e-mail address",
    text=(
        "Hello $name,\n\n"
        "Please confirm that this is your address by opening this link within $hours hours:"
        "\n\n$link\n\n"
        "If you did not create an account, ignore this mail.\n"
    ),
    html=(
        "<p>Hello $name,</p>"
        "<p>Please confirm that this is your address by opening this link within "
        "$hours hours:</p>"
        '<p><a href="$link">Confirm your e-mail address</a></p>'
        "<p>If you did not create an account, ignore this mail.</p>"
    ),
)

EMAIL_CHANGE_CONFIRM = MailTemplate(
    subject="Confirm your new e-mail address",
    text=(
        "Hello $name,\n\n"
        "You asked to use this address for your account. Open this link within $hours hours "
        "to confirm:\n\n$link\n\n"
        "If you did not ask for this, ignore this mail.\n"
    ),
    html=(
        "<p>Hello $name,</p>"
        "<p>You asked to use this address for your account. Open this link within "
        "$hours hours to confirm:</p>"
        '<p><a href="$link">Confirm your new address</a></p>'
        "<p>If you did not ask for this, ignore this mail.</p>"
    ),
)

EMAIL_CHANGE_NOTICE = MailTemplate(
    subject="Your e-mail address is being changed",
    text=(
        "Hello $name,\n\n"
        "A change of your account's e-mail address away from this one was requested. "
        "It takes effect once the new address is confirmed.\n\n"
        "If this was not you, change your password at once and contact support.\n"
    ),
    html=(
        "<p>Hello $name,</p>"
        "<p>A change of your account's e-mail address away from this one was requested. "
        "It takes effect once the new address is confirmed.</p>"
        "<p>If this was not you, change your password at once and contact support.</p>"
    ),
)
