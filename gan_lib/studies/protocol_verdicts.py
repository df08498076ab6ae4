"""Where the original report's FIDs fall under each FID protocol: a verdict per protocol.

:func:`score_protocols <gan_lib.studies.protocols.score_protocols>` measures each protocol on
this run; :func:`consistency` places the original FIDs against those measurements (below the
real-vs-real floor, inside the measured range, above it), and :func:`not_comparable` says when
the run differs from the original too much for any verdict.

Example:
    >>> not_comparable([500, 1000, 2000], True)
    "synthetic phantom data: the original's FIDs are of real chest X-rays"
"""

from __future__ import annotations

from typing import Any

# The FIDs at iterations 500 / 1000 / 2000 of the course report this package reproduces (the
# DCGAN on the Kermany training images; README.md quotes them): what is tested here
# is only which protocols' measured ranges could hold them, never how they were computed.
ORIGINAL_FIDS = (7.09, 3.83, 3.37)
ORIGINAL_ITERATIONS = (500, 1000, 2000)  # where the original report measured them


def not_comparable(iterations: list[int], is_synthetic: bool) -> str | None:
    """Why this run's numbers cannot place the original report's FIDs, or None.

    >>> not_comparable([200, 400, 600], False)
    "this run's snapshots are at iterations 200 / 400 / 600, the original's at 500 / 1000 / 2000"
    """
    if is_synthetic:
        return "synthetic phantom data: the original's FIDs are of real chest X-rays"
    if tuple(iterations) != ORIGINAL_ITERATIONS:
        return (f"this run's snapshots are at iterations {' / '.join(map(str, iterations))}, "
                f"the original's at {' / '.join(map(str, ORIGINAL_ITERATIONS))}")
    return None


def consistency(records: list[dict[str, Any]], name: str,
                why_not: str | None = None) -> dict[str, Any]:
    """Where each of the original report's FIDs falls against protocol ``name``'s measurements.

    ``why_not`` (from :func:`not_comparable`): the run differs from the original in data or
    iterations, so no verdict is given, only that reason.

    Below its real-vs-real floor: real images score more at this n pair, so no generator is
    expected there. Between the floor and the highest snapshot value: inside the measured range.
    Above every value measured here: these measurements cannot place it. Nothing is inferred
    about how the original numbers were computed.

    >>> recs = [{"protocol": "p", "kind": "generated", "value": 150.0, "n_fake": 8, "n_real": 8},
    ...         {"protocol": "p", "kind": "floor", "value": 3.9, "n_fake": 8, "n_real": 8}]
    >>> consistency(recs, "p")["verdict"]
    'partly: 3.83, 3.37 below the floor'
    """
    if why_not:
        return {"protocol": name, "verdict": "not comparable", "reason": why_not}
    rows = [r for r in records if r["protocol"] == name and r["value"] is not None]
    if not any(r["kind"] == "generated" for r in rows):
        return {"protocol": name, "verdict": "not measured", "reason": "not measured here"}
    top = max(r["value"] for r in rows if r["kind"] == "generated")
    floor = next((r["value"] for r in rows if r["kind"] == "floor"), None)
    place = {v: ("below the floor" if floor is not None and v < floor
                 else "above every value measured" if v > top
                 else "no floor to compare with" if floor is None else "inside")
             for v in ORIGINAL_FIDS}
    below = [f"{v:g}" for v, w in place.items() if w == "below the floor"]
    if all(w == "inside" for w in place.values()):
        verdict = "could be"
    elif len(below) == len(place):
        verdict = "no: all below the floor"
    elif all(w == "above every value measured" for w in place.values()):
        verdict = "not shown: all above every value measured"
    else:
        verdict = "partly: " + "; ".join(
            f"{', '.join(f'{v:g}' for v, w in place.items() if w == kind)} {kind}"
            for kind in dict.fromkeys(place.values()) if kind != "inside")
    n_fake, n_real = rows[0]["n_fake"], rows[0]["n_real"]
    reason = (f"At n = {n_fake:,} generated vs {n_real:,} real images this protocol gave "
              f"{_range(rows)}. Of the original's {' / '.join(f'{v:g}' for v in ORIGINAL_FIDS)}: "
              + "; ".join(f"{v:g} {w}" for v, w in place.items()) + ".")
    return {"protocol": name, "verdict": verdict, "reason": reason, "floor": floor,
            "highest": top, "places": {f"{v:g}": w for v, w in place.items()}}


def _range(records: list[dict[str, Any]]) -> str:
    gen = sorted(r["value"] for r in records if r["kind"] == "generated")
    floor = [r["value"] for r in records if r["kind"] == "floor"]
    text = (f"{gen[0]:.3g} for the final snapshot" if len(gen) == 1 else
            f"{gen[0]:.3g} for every snapshot" if f"{gen[0]:.3g}" == f"{gen[-1]:.3g}" else
            f"{gen[0]:.3g} to {gen[-1]:.3g} for the snapshots")
    return text + (f" and {floor[0]:.3g} for real images (the floor)" if floor else
                   " and no floor")
