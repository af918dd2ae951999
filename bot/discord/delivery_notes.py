"""What a set's status message tells about how its images were posted (public: said in the server's language)."""

from __future__ import annotations

from bot.discord.i18n import Text, t, tn
from bot.discord.post_refusal import CHANNEL_GONE_TEXT, MISSING_PERMISSION_TEXT
from bot.engine.delivery import KEPT_REFUSING_TEXT, TIME_LIMIT_TEXT, DeliveryReport

# Why posting stopped, as the engine and the Discord side record it, in words a translation can carry.
STOP_REASONS = {
    KEPT_REFUSING_TEXT: t("Discord kept refusing the upload"),
    TIME_LIMIT_TEXT: t("the job's time limit passed"),
    MISSING_PERMISSION_TEXT: t("I'm not allowed to post in that channel (missing permissions)"),
    CHANNEL_GONE_TEXT: t("the channel no longer exists"),
}


def stop_reason(reason: str) -> str:
    return STOP_REASONS.get(reason, reason)


def jump_note(url: str) -> Text:
    return t("[Jump to the images]({url})", url=url)


def delivery_notes(report: DeliveryReport) -> list[Text]:
    """What a member should be told about how the set was posted."""
    notes = []
    if report.returned < report.asked:
        notes.append(
            tn(
                "RunComfy made {returned} of the {count} image asked for "
                "(the model decides how many, up to the number asked).",
                "RunComfy made {returned} of the {count} images asked for "
                "(the model decides how many, up to the number asked).",
                report.asked,
                returned=report.returned,
            )
        )
    if report.missing:
        notes.append(
            tn(
                "{count} image could not be downloaded from RunComfy: not charged.",
                "{count} images could not be downloaded from RunComfy: not charged.",
                len(report.missing),
            )
        )
    if report.late:
        notes.append(
            tn(
                "The job's time limit passed before {count} image could be delivered: not charged.",
                "The job's time limit passed before {count} images could be delivered: not charged.",
                len(report.late),
            )
        )
    if report.limit_cut:
        notes.append(t("Discord refused a message as too large, so the set was split into smaller messages."))
    if report.reencoded:
        notes.append(
            tn(
                "{count} image converted to JPEG to fit this server's upload limit.",
                "{count} images converted to JPEG to fit this server's upload limit.",
                report.reencoded,
            )
        )
    if report.linked:
        notes.append(
            tn(
                "{count} image too large to upload even as JPEG: linked below instead "
                "(the links expire after about a day).",
                "{count} images too large to upload even as JPEG: linked below instead "
                "(the links expire after about a day).",
                report.linked,
            )
        )
    if report.failed:
        notes.append(t("The rest could not be posted ({reason}): not charged.", reason=stop_reason(report.failed)))
    return notes
