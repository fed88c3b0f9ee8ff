"""sns_subscriptions: will an alert published to this topic reach anyone?

An email subscription nobody confirmed stays `PendingConfirmation` and silently drops every
message (FAILURE_MODES A10); a topic with no confirmed subscription pages nobody at all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from probed.probes.aws.check import Check, arn_resource, check_failed, require_at_least, require_prefix
from probed.result import ProbeResult

PENDING = "PendingConfirmation"
MAX_PAGES = 10
"""ListSubscriptionsByTopic returns 100 per page."""


@dataclass(frozen=True)
class TopicParams:
    topic_arn: str
    min_subscriptions: int = 1
    """Confirmed subscriptions required: with none, alerts reach nobody."""

    def __post_init__(self) -> None:
        require_prefix("topic_arn", self.topic_arn, "arn:", "arn:aws:sns:REGION:ACCOUNT:TOPIC")
        require_at_least("min_subscriptions", self.min_subscriptions, 0)


async def subscriptions(client: Any, p: TopicParams, probe: str) -> ProbeResult:
    subs: list[dict[str, Any]] = []
    token = None
    for _ in range(MAX_PAGES):
        resp = await client.list_subscriptions_by_topic(TopicArn=p.topic_arn, **({"NextToken": token} if token else {}))
        subs += resp.get("Subscriptions") or []
        token = resp.get("NextToken")
        if not token:
            break
    # Endpoints (e-mail addresses, phone numbers) are personal data: only protocols are reported.
    pending = Counter(s.get("Protocol", "?") for s in subs if s.get("SubscriptionArn") == PENDING)
    confirmed = sum(1 for s in subs if str(s.get("SubscriptionArn", "")).startswith("arn:"))
    values = {"sns_pending_subscriptions": float(sum(pending.values())),
              "sns_confirmed_subscriptions": float(confirmed)}
    facts = {"confirmed": confirmed, "pending_by_protocol": dict(pending)}
    topic = arn_resource(p.topic_arn)
    if pending:
        listed = ", ".join(f"{n} {proto}" for proto, n in sorted(pending.items()))
        return check_failed(f"topic {topic}: {sum(pending.values())} subscriptions {PENDING} ({listed}), "
                            f"{confirmed} confirmed", values=values, facts=facts)
    if confirmed < p.min_subscriptions:
        return check_failed(f"topic {topic}: {confirmed} confirmed subscriptions, need {p.min_subscriptions}",
                            values=values, facts=facts)
    return ProbeResult.ok(detail=f"topic {topic}: {confirmed} confirmed subscriptions", values=values, facts=facts)


SNS_SUBSCRIPTIONS = Check(
    name="sns_subscriptions", service="sns", params=TopicParams, run=subscriptions,
    target=lambda p: f"sns:{arn_resource(p.topic_arn)}", iam_actions=("sns:ListSubscriptionsByTopic",),
)
