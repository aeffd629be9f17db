"""The photos a peer on the same torch weights and tf_gag both explain, and how far their logits agree."""
import numpy as np


def explained_photos(model, net, to_model, photos):
    """(NHWC images, NCHW images, torch's top classes as targets, {"targets", "logits_rel_max"}) for ``photos``.

    ``to_model`` maps the 224 px offline photos into the models' input space; the targets are the torch
    module's top classes, and ``logits_rel_max`` is tf_gag's largest logit difference relative to torch's.
    """
    import torch

    from tf_gag import assets

    nhwc = to_model(assets.photos(photos, size=224))
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    with torch.no_grad():
        logits = net(torch.tensor(nchw)).numpy()
    targets = logits.argmax(axis=1)
    ours = model.predict_logits(nhwc, len(nhwc))
    return nhwc, nchw, targets, {"targets": targets.tolist(),
                                 "logits_rel_max": float(np.abs(ours - logits).max() / np.abs(logits).max()),
                                 "same_top1": bool((ours.argmax(axis=1) == targets).all())}
