"""Checks from the policy's own `verify:` block: a later stage must keep what an earlier
one achieved (gate.optimize.verify finds the losses; `on_loss: fail` makes each a check)."""
from __future__ import annotations

from gate.config.steps import Verify
from gate.optimize.verify import Finding
from gate.verdict.check import Check


def verification_checks(findings: list[Finding], policy: Verify) -> list[Check]:
    if policy.on_loss == "warn":
        return []
    checks = []
    for f in findings:
        if f.what == "sparsity":
            checks.append(Check(name="verify.sparsity", metric=f"'{f.layer}' sparsity at {f.stage}", value=f.now,
                                limit=f.achieved - policy.sparsity_tolerance, direction=">=", unit="",
                                passed=False, reference=f.achieved, detail=f.message))
        else:
            checks.append(Check(name="verify.clusters", metric=f"'{f.layer}' unique values at {f.stage}",
                                value=f.now, limit=f.achieved + policy.cluster_tolerance, direction="<=",
                                unit="values", passed=False, reference=f.achieved, detail=f.message))
    return checks
