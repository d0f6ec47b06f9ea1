"""A request's stored risk assessment in words, as its approvers read it: what `timbel deploy`
prints under a request, and what the API's risk route answers."""

from __future__ import annotations

from typing import Any

from timbel_dagster.ml.risk.words import CONFIDENCE_BASIS, confidence_text, reason_text


def advice(risk: dict[str, Any]) -> str:
    """`3.1% chance of failure -> APPROVE (model v2)`."""
    return (
        f"{risk['probability']:.1%} chance of failure -> {risk['recommendation'].upper()} "
        f"(model v{risk['model_version']})"
    )


def risk_in_words(number: int, risk: dict[str, Any]) -> dict[str, Any]:
    """The assessment stored on request `number`, each reason and the confidence in words.

    Raises:
        LookupError: the request has no assessment (no model was trained when it was made, or
            its image's commit is unknown).
    """
    if not risk:
        raise LookupError(
            f"request #{number} has no risk assessment: no model was trained when it was "
            "made, or its image's commit is unknown (`timbel risk score` assesses it)"
        )
    return {
        "request": number,
        "probability": risk["probability"],
        "recommendation": risk["recommendation"],
        "advice": advice(risk),
        "model_version": risk["model_version"],
        "confidence": risk["confidence"],
        "confidence_text": confidence_text(risk["confidence"]),
        "confidence_basis": CONFIDENCE_BASIS,
        "reasons": [
            {
                "feature": str(r["feature"]),
                "value": r["value"],
                "contribution": float(r["contribution"]),
                "text": reason_text(r),
            }
            for r in risk.get("reasons", [])
        ],
        "similar": list(risk.get("similar", [])),
        "ships": dict(risk.get("ships", {})),
        "scored_at": risk.get("scored_at"),
    }
