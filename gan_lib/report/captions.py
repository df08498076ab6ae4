"""The full caption of each report artefact, from what its notebook has at hand.

One builder per figure or table of :data:`gan_lib.report.artefacts.ARTEFACTS`: each says what
the artefact shows, its sizes and how it was made (run, data source, n), so that a PNG lifted
out of the report, or a table read alone in ``reports/tables/``, still does. Figures carry it
drawn in (:func:`stamp` is the one-line how-it-was-made of the figures whose numbers come from
Inception features); the report itself shows the registry's short captions and says how
everything was made once, in its Provenance section.

Example:
    >>> data_note({"data": {"description": "synthetic phantom data", "n_images": 8}})
    'Data: synthetic phantom data, 8 training images.'
"""

from __future__ import annotations

from typing import Any

from ..studies import utility_tables


def data_note(meta: dict[str, Any]) -> str:
    return f"Data: {meta['data']['description']}, {meta['data']['n_images']:,} training images."


def data_summary(ds: Any) -> str:
    return (f"Images per class and split ({ds.image_size}x{ds.image_size} px after "
            f"preprocessing). Data: {ds.description}.")


def data_aspect(ds: Any) -> str:
    return (f"The original image files of every split, sizes read from their headers (nothing "
            f"decoded): median width x height; aspect ratio (width / height) at the 5th "
            f"percentile, median and 95th percentile; the share wider than tall (above 1.05), "
            f"square and taller. This run makes them {ds.image_size} x {ds.image_size} px by "
            f"'{ds.resize}' (crop: the centre square; squash: all of it, narrowed; pad: "
            f"letterboxed with the border value). Data: {ds.description}.")


def real_samples(ds: Any) -> str:
    kind = "SYNTHETIC phantom" if ds.is_synthetic else "Real"
    return (f"Figure 1. {kind} training images, first 16 per class ({ds.split} split, "
            f"{len(ds):,} images, {ds.image_size}x{ds.image_size} px). Data: {ds.description}.")


def histograms(ds: Any) -> str:
    return (f"Pixel intensities (uint8, after preprocessing to {ds.image_size}x{ds.image_size} "
            f"px) per class, {ds.split} split. Data: {ds.description}.")


def losses(meta: dict[str, Any], n_rows: int) -> str:
    c = meta["config"]
    return (f"Run '{c['name']}': {n_rows:,} iterations, batch {c['batch_size']}, "
            f"{c['image_size']} px, Adam lr {c['lr']:g} (beta1 {c['beta1']}), "
            f"{meta['precision']} on {meta['device']}. " + (
                "Losses are the hinge loss on logits (D: real + fake; G: -D(G(z)))"
                if c.get("loss") == "hinge" else "Losses are BCE on logits (D: real + fake; "
                "G: non-saturating)") + f". {data_note(meta)}")


def halfway_final(meta: dict[str, Any], half: tuple, final: tuple) -> str:
    c = meta["config"]
    return (f"Run '{c['name']}': the same {c['grid_size']} latents (fixed noise) after "
            f"{half[1]:,} and {final[1]:,} of {c['iterations']:,} iterations, generator with "
            f"BatchNorm statistics re-estimated on its weights at each grid. {data_note(meta)}")


def evolution(meta: dict[str, Any]) -> str:
    return (f"Run '{meta['config']['name']}': the top row of each fixed-noise grid, epoch by "
            f"epoch (one column = one latent). {data_note(meta)}")


def samples(meta: dict[str, Any], snapshot: dict[str, Any], n: int, seed: int) -> str:
    return (f"Run '{meta['config']['name']}': {n} fresh samples (seed {seed}) from the final "
            f"snapshot ({snapshot['weights']}, iteration {snapshot['iteration']:,}; "
            f"{snapshot['sampling']['description']}) via gan_lib.gan.sampling.generate. "
            f"{data_note(meta)}")


def samples_by_class(meta: dict[str, Any], snapshot: dict[str, Any], n: int, seed: int) -> str:
    return (f"Run '{meta['config']['name']}' (class-conditional): {n} fresh samples per class "
            f"(seed {seed}), each class asked for by name, from the final snapshot "
            f"({snapshot['weights']}, iteration {snapshot['iteration']:,}). "
            f"{data_note(meta)}")


def utility(result: dict[str, Any]) -> str:
    return (f"Run '{result['run']}', iteration {result['iteration']:,} "
            f"({result['generator']}). "
            + utility_tables.caption(result, result["data"]["description"]))


def stamp(result: dict[str, Any]) -> str:
    """How a figure's numbers were made, in one line that a lifted PNG keeps: run, data
    fingerprint and resize policy, Inception weights, latents (the report's Provenance
    section has the rest)."""
    data, weights = result["data"], result.get("weights") or {}
    seed = result.get("settings", {}).get("seed")
    return (f"Run '{result['run']}'; data {data['description']} (fingerprint "
            f"{str(data['fingerprint'])[:12]}, resize {data.get('resize', 'crop')}); "
            f"{result['extractor']}, weights sha256 {str(weights.get('sha256'))[:12]}; "
            f"latents seed {seed}.")


def real_vs_generated(meta: dict[str, Any], n_real: int, iteration: int, n: int,
                       seed: int) -> str:
    return (f"Left: {n} real training images of run '{meta['config']['name']}' (drawn with "
            f"seed {seed} from the {n_real:,} it trained on). Right: {n} fresh samples of the "
            f"final snapshot (iteration {iteration:,}, latents seed {seed}), sampled by the "
            f"snapshot's rule. {data_note(meta)}")


def fid_curve(scores: dict[str, Any]) -> str:
    s = scores["settings"]
    return (f"FID of {s['n_fake']:,} generated images per snapshot against "
            f"{scores['real_stats']['n']:,} real training images; dashed: real-vs-real floors "
            f"(n pairs in the legend). {stamp(scores)}")


def fid_protocols(result: dict[str, Any]) -> str:
    band = " / ".join(f"{v:g}" for v in result["original"]["fid"])
    return ("FID of each snapshot (dots) and of held-out real images (crosses, the floor) under "
            "each protocol, n pairs as in the table above; shaded: the range of the original "
            f"report's FIDs ({band}). {stamp(result)}")


def closest(audit: dict[str, Any]) -> str:
    m = audit["memorization"]
    return (f"Run '{audit['run']}', iteration {m['iteration']}: the 16 generated images (of "
            f"{m['pixel (RMS)']['n_fake']}) closest in pixels to a training image, each above "
            "its nearest training image; titles: pixel RMS distance, cosine feature distance, "
            "and the share of test images closer to the training set (a percentile). "
            f"Data: {audit['data']['description']}.")


def fid_inverse_n(audit: dict[str, Any]) -> str:
    s = audit["settings"]
    return ("FID against 1/n for each snapshot and the real-vs-real sets (n from n/8 to "
            f"{s['n_fake']:,} generated or held-out images, against {s['n_real']:,} real), with "
            "the fit FID_n = FID_inf + k/n; a snapshot is above its floor where its line stays "
            f"above the floor's at every n. {stamp(audit)}")


def recipe_comparison(result: dict[str, Any]) -> str:
    options = ", ".join(f"{k}={v}" for k, v in result["options"].items())
    floor = result["floor"]
    return (f"Run '{result['recipe']}' ({options}) beside its DCGAN twin '{result['dcgan']}' "
            f"(the same data, length, batch and seed {result['seed']}, every option at the "
            f"DCGAN's value), both scored alike: {floor['n_fake']:,} generated images against "
            f"{floor['n_real']:,} real training images per snapshot; the floor is held-out "
            "training images at the same n pair. One training seed: the comparison over seeds "
            "by the declared rule is docs/recipes.md's.")


def recipe_figure(result: dict[str, Any], n: int) -> str:
    return (f"Real training images beside the final snapshots of '{result['dcgan']}' (DCGAN) and "
            f"'{result['recipe']}' (recipe), {n} images each; both generators are given the "
            "same latents (the scoring seed), so the panels differ only by the networks.")
