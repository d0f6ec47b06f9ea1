"""What the approvals page shows of one request, in words: the risk advisor's stored
assessment (`ml.risk.words` says it the way `timbel deploy status` does) and the security
gate's verdict. Presentation only: the numbers come from the domain unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.risk.words import CONFIDENCE_BASIS, confidence_text, reason_text

if TYPE_CHECKING:
    from timbel_dagster.security.policy import GateResult


def _outcome(value: Any) -> str:
    # The advisor names outcomes when it knows the deployment; a bare 0/1 otherwise.
    if isinstance(value, str):
        return value
    return "failed" if value else "succeeded"


def risk_view(risk: dict[str, Any] | None) -> dict[str, Any] | None:
    """The assessment stored on the request (`deployment_requests.risk`), or None when the
    request was not assessed (no model yet, or its image's commit is unknown)."""
    if not risk:
        return None
    ships = risk.get("ships") or {}
    return {
        "probability": f"{float(risk['probability']):.1%}",
        "recommendation": str(risk["recommendation"]).upper(),
        "model_version": risk.get("model_version"),
        "confidence": confidence_text(float(risk["confidence"])),
        "basis": CONFIDENCE_BASIS,
        "reasons": [reason_text(reason) for reason in risk.get("reasons", [])],
        "commits": int(ships.get("commits", 0)),
        "lines_added": f"{float(ships.get('lines_added', 0)):.0f}",
        "lines_deleted": f"{float(ships.get('lines_deleted', 0)):.0f}",
        "similar": [
            {
                "service": item.get("service", "?"),
                "environment": item.get("environment", "?"),
                "when": str(item.get("started_at", ""))[:16],
                "outcome": _outcome(item.get("outcome")),
            }
            for item in risk.get("similar", [])
        ],
    }


def gate_view(gate: GateResult) -> dict[str, Any]:
    """The gate's verdict: whether the final approval would pass, and why not."""
    return {
        "allowed": gate.allowed,
        "summary": gate.summary,
        "refusal": None if gate.allowed else gate.refusal(),
        "warnings": len(gate.warnings),
        "notes": list(gate.notes),
    }


def steps_view(steps: list[dict[str, Any]]) -> list[str]:
    """Each approval step in one line, as `timbel deploy status` prints them."""
    lines = []
    for step in steps:
        who = f" by {step['decided_by']}: {step['reason']}" if step["decided_by"] else ""
        lines.append(f"{step['position']}. {step['role']} {step['decision']}{who}")
    return lines
