"""The visits area's share of personal-data rights (events.privacy) and retention (events.retention).

Disclosure: the household profile and its own address (the family's own data: no audit entry, as on their
form), slots, a student's requests and matches, pins and forbids, and what a coordinator created or vetted.

Erasure, after the kernel has ended the person's places through the ledger (this module's confirmations follow
it on PLACE_CHANGED): a student's offered visits are declined as the student would decline them, their requests
withdrawn (with any pending consent). A host family that leaves: its vetting ends, so the ledger's safeguarding
invariant puts every upcoming visit there on hold (seats freed, both sides and the coordinator told), offered
visits go on hold too, and the round page asks for the one re-match; its slots are withdrawn, the profile
anonymised and the address deleted. Matches stay as rows (counts of visits survive).

Retention: a household's address goes `retention_address_months` after its vetting expired (or after the
family's account was disabled), unless a legal hold applies; a guardian's status-page link
`retention_token_days` after it expired.
"""

from __future__ import annotations

from typing import Any

from events import places, privacy, retention
from events.visits import confirmations, requests
from events.visits.tables import (
    LIVE_MATCH_STATES,
    Household,
    HouseholdAddress,
    VisitGuardianLink,
    VisitMatch,
    VisitPairRule,
    VisitProposal,
    VisitRequest,
    VisitRound,
    VisitSlot,
)

LEFT_NAME = "退会した家庭"
TABLES = {
    "visit_household": "受け入れ家庭のプロフィール",
    "visit_household_address": "受け入れ家庭の住所",
    "visit_slot": "受け入れの枠",
    "visit_request": "家庭訪問の希望",
    "visit_guardian_link": "保護者向けの訪問状況ページのリンク",
    "visit_match": "家庭訪問のマッチング",
    "visit_pair_rule": "組み合わせの指定",
    "visit_round": "作成した訪問回",
    "visit_proposal": "作成したマッチング案",
}


async def _household_id(person_id: int) -> int | None:
    row = await Household.select(Household.id).where(Household.person == person_id).first()
    return row["id"] if row else None


async def export(person_id: int) -> dict[str, list[dict[str, Any]]]:
    household_id = await _household_id(person_id) or -1
    households = await Household.select().where(Household.person == person_id).output(load_json=True)
    vetted = await Household.select(Household.id, Household.vetted_on, Household.vetted_until).where(
        Household.vetted_by == person_id)
    student_matches = await VisitMatch.select(
        VisitMatch.id, VisitMatch.round, VisitMatch.round.name.as_alias("round_name"), VisitMatch.slot,
        VisitMatch.slot.starts_at.as_alias("starts_at"), VisitMatch.household.district.as_alias("district"),
        VisitMatch.status, VisitMatch.student_response, VisitMatch.family_response, VisitMatch.registration,
        VisitMatch.created_at, VisitMatch.responded_at,
    ).where(VisitMatch.student == person_id).order_by(VisitMatch.id)
    family_matches = await VisitMatch.select(
        VisitMatch.id, VisitMatch.round, VisitMatch.slot, VisitMatch.slot.starts_at.as_alias("starts_at"),
        VisitMatch.status, VisitMatch.family_response, VisitMatch.created_at, VisitMatch.responded_at,
    ).where((VisitMatch.household == household_id) & (VisitMatch.student != person_id)).order_by(VisitMatch.id)
    rules = await VisitPairRule.select(VisitPairRule.id, VisitPairRule.round, VisitPairRule.kind,
                                       VisitPairRule.created_at, VisitPairRule.student, VisitPairRule.household,
                                       VisitPairRule.created_by).where(
        (VisitPairRule.student == person_id) | (VisitPairRule.household == household_id)
        | (VisitPairRule.created_by == person_id)).order_by(VisitPairRule.id)
    return {
        "visit_household": households + privacy.tagged(vetted, "vetted_by"),
        "visit_household_address": await HouseholdAddress.select().where(HouseholdAddress.household == household_id),
        "visit_slot": await VisitSlot.select(
            VisitSlot.id, VisitSlot.round, VisitSlot.starts_at, VisitSlot.ends_at, VisitSlot.capacity,
            VisitSlot.status, VisitSlot.created_at).where(VisitSlot.household == household_id).order_by(VisitSlot.id),
        "visit_request": await VisitRequest.select(
            VisitRequest.all_columns(), VisitRequest.round.name.as_alias("round_name"),
        ).where(VisitRequest.student == person_id).order_by(VisitRequest.id).output(load_json=True),
        "visit_guardian_link": await VisitGuardianLink.select(
            VisitGuardianLink.id, VisitGuardianLink.request, VisitGuardianLink.guardian_email,
            VisitGuardianLink.created_at, VisitGuardianLink.expires_at,
        ).where(VisitGuardianLink.request.student == person_id).order_by(VisitGuardianLink.id),
        "visit_match": student_matches + privacy.tagged(family_matches, "household"),
        "visit_pair_rule": [
            {"id": r["id"], "round": r["round"], "kind": r["kind"], "created_at": r["created_at"],
             "as": "student" if r["student"] == person_id else "household" if r["household"] == household_id
             else "created_by"} for r in rules],
        "visit_round": privacy.tagged(await VisitRound.select(VisitRound.id, VisitRound.name, VisitRound.created_at).where(
            VisitRound.created_by == person_id), "created_by"),
        "visit_proposal": privacy.tagged(await VisitProposal.select(
            VisitProposal.id, VisitProposal.round, VisitProposal.status, VisitProposal.created_at).where(
            VisitProposal.created_by == person_id), "created_by"),
    }


async def subjects(person_id: int) -> list[tuple[str, str]]:
    found = [("visit_request", str(r["id"])) for r in await VisitRequest.select(VisitRequest.id).where(
        VisitRequest.student == person_id)]
    household_id = await _household_id(person_id)
    if household_id is not None:
        found.append(("visit_household", str(household_id)))
    return found


async def erase(erasure: privacy.Erasure) -> None:
    person_id = erasure.person_id
    live = await VisitMatch.select(VisitMatch.id).where(
        (VisitMatch.student == person_id) & VisitMatch.status.is_in(list(LIVE_MATCH_STATES))).order_by(VisitMatch.id)
    for match in live:  # an offered visit: declined as the student would (the family and coordinator are told)
        await confirmations.respond(match["id"], person_id, side="student", accept=False)
    await VisitMatch.update({VisitMatch.status: "superseded"}).where(
        (VisitMatch.student == person_id) & (VisitMatch.status == "proposed"))
    await VisitMatch.update({VisitMatch.status: "cancelled", VisitMatch.responded_at: erasure.now}).where(
        (VisitMatch.student == person_id) & (VisitMatch.status == "on_hold"))  # no re-match for someone who left
    for request in await VisitRequest.select(VisitRequest.id).where(
            (VisitRequest.student == person_id) & (VisitRequest.status == "active")):
        await requests.withdraw_request(person_id, request["id"])
    await VisitRequest.update({VisitRequest.note: ""}).where(VisitRequest.student == person_id)
    mine = await VisitRequest.select(VisitRequest.id).where(VisitRequest.student == person_id)
    if mine:  # the guardian's status-page links: the guardian's address goes, the page is no one's to see
        await VisitGuardianLink.delete().where(VisitGuardianLink.request.is_in([r["id"] for r in mine]))
    household_id = await _household_id(person_id)
    if household_id is not None:
        await _household_leaves(household_id, erasure)


async def _household_leaves(household_id: int, erasure: privacy.Erasure) -> None:
    now = erasure.now
    await Household.update({
        Household.vetted_on: None, Household.vetted_until: None, Household.display_name: LEFT_NAME,
        Household.pets: "", Household.allergy_notes: "", Household.introduction: "", Household.children_ages: [],
        Household.updated_at: now,
    }).where(Household.id == household_id)
    await HouseholdAddress.delete().where(HouseholdAddress.household == household_id)
    upcoming = await VisitSlot.select(VisitSlot.event).where(
        (VisitSlot.household == household_id) & VisitSlot.event.is_not_null() & (VisitSlot.ends_at > now))
    for event_id in sorted({row["event"] for row in upcoming}):
        await places.recheck(event_id, by=erasure.by)  # no vetting: every place there goes on hold
    offered = await VisitMatch.select(VisitMatch.id).where(
        (VisitMatch.household == household_id) & VisitMatch.status.is_in(list(LIVE_MATCH_STATES))
        & (VisitMatch.slot.starts_at > now)).order_by(VisitMatch.id)
    for match in offered:
        await VisitMatch.update({VisitMatch.status: "on_hold", VisitMatch.responded_at: now}).where(
            VisitMatch.id == match["id"])
        await confirmations.tell_cancelled(match["id"], reason="hold")
    await VisitMatch.update({VisitMatch.status: "superseded"}).where(
        (VisitMatch.household == household_id) & (VisitMatch.status == "proposed"))
    await VisitSlot.update({VisitSlot.status: "withdrawn"}).where(
        (VisitSlot.household == household_id) & (VisitSlot.starts_at > now) & (VisitSlot.status == "offered"))



def _address_period(cfg) -> retention.Period:
    return retention.Period(cfg.retention_address_months, "months")


_ADDRESS_DUE = (
    "household IN (SELECT h.id FROM visit_household h JOIN person p ON p.id = h.person "
    f"WHERE h.person NOT IN {retention.HELD} AND ((h.vetted_until IS NOT NULL AND h.vetted_until < {{}}) "
    "OR (NOT p.active AND visit_household_address.updated_at < {})))"
)


def register() -> None:
    privacy.register_part(privacy.Part("visits", TABLES, export, erase, subjects))
    retention.register(retention.table_category(
        "household_addresses", "受け入れ家庭の住所", "削除します", _address_period, table="visit_household_address",
        condition=_ADDRESS_DUE, args=lambda cutoff: (cutoff.date(), cutoff),
        from_="面談の有効期限切れ・退会から"))
    retention.register(retention.table_category(
        "visit_guardian_links", "保護者向けの訪問状況ページのリンク", "削除します", retention.token_period,
        table="visit_guardian_link", condition="expires_at < {}", args=lambda cutoff: (cutoff,), from_="有効期限から"))

