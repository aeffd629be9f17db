"""What the paper's Tables 1-3 compute: one `Unit` (a method with fixed options) per row or cell group.

* Table 1: GAG at each quantile p of the paper's sweep, 0, 15, 25, ..., 85 %.
* Table 2: every method, then the reversed ("misplaced", Proposition 1) maps of
  SG, IG, Guided IG, BlurIG and GB with the paper's (top, swap) fractions.
* Table 3: the +, -, A, G, GA variants of those five families, each reported
  as metric(variant) / metric(the family's Table 2 row), averaged over them.

Every method runs with the library's defaults, which are the paper's settings
(n = 20 samples or steps, p = 0.85); the metrics are the named defaults (RCAP
lower bound 50 / interval 10, AUC 10 steps). A subset of methods keeps the
rows that use only them.
"""
from dataclasses import dataclass, field

#: Table 2's methods in row order: method name -> the paper's short name (the paper's methods, then the library's
#: others: IDGI over each path, the CAM family, Deconvnet and the LRP composites).
SHORT = {"guided_absolute_grad": "GAG", "vargrad": "VarGrad", "smoothgrad": "SG", "integrated_gradients": "IG",
         "guided_ig": "Guided IG", "blur_ig": "BlurIG", "guided_backprop": "GB", "vanilla_gradient": "VG",
         "grad_cam": "Grad-CAM", "rectified_gradients": "RectGrad", "rectified_gradients_nobias": "RectGrad no-bias",
         "geometrically_guided_ig": "GGIG", "idgi": "IDGI", "guided_idgi": "Guided IDGI", "blur_idgi": "Blur IDGI",
         "grad_cam_plus_plus": "Grad-CAM++", "xgrad_cam": "XGrad-CAM", "hires_cam": "HiResCAM", "layer_cam": "LayerCAM",
         "score_cam": "Score-CAM", "deconvnet": "Deconvnet", "lrp_epsilon": "LRP-eps",
         "lrp_epsilon_plus": "LRP-eps+", "lrp_epsilon_plus_flat": "LRP-eps+flat",
         "lrp_epsilon_gamma_box": "LRP-eps-gamma-box", "lrp_epsilon_alpha2_beta1": "LRP-eps-a2b1"}
#: The five families of the reversed maps and of Table 3.
FAMILIES = ("smoothgrad", "integrated_gradients", "guided_ig", "blur_ig", "guided_backprop")
#: The reversed maps' (top, swap) fractions (REFERENCE.md section 3).
REVERSE = {"smoothgrad": (0.07, 0.10), "integrated_gradients": (0.07, 0.10), "guided_ig": (0.07, 0.10),
           "blur_ig": (0.07, 0.10), "guided_backprop": (0.03, 0.10)}
#: Table 1's columns: GAG's quantile p, in percent.
P_SWEEP = (0, 15, 25, 35, 45, 55, 65, 75, 85)
#: Table 3's rows, with the names their stored results go under.
VARIANTS = {"+": "positive", "-": "negative", "A": "absolute", "G": "guide", "GA": "guide_absolute"}
#: The tables' metrics, in column order.
METRICS = ("sqrt_mae", "log_cosh_dice", "rcap", "dauc", "iauc")
#: Column headers of the named metrics.
LABELS = {"sqrt_mae": "√MAE", "mae": "MAE", "log_cosh_dice": "LcDice", "rcap": "RCAP", "dauc": "DAUC",
          "iauc": "IAUC"}


@dataclass(frozen=True)
class Unit:
    """One method with fixed options, explained and scored on every image.

    ``key`` names the folder of its stored batches; ``table`` and ``row``
    place it (Table 3 rows gather one unit per family).
    """

    key: str
    table: int
    row: str
    method: str
    options: dict = field(default_factory=dict, hash=False)

    @property
    def label(self):
        """How progress bars name it: "Table 1 p=15", "Table 2 SG^R", "Table 3 SG GA"."""
        if self.table == 1:
            return f"Table 1 p={self.row}"
        if self.table == 3:
            return f"Table 3 {SHORT[self.method]} {self.row}"
        return f"Table 2 {self.row}"


def resolve_methods(methods=None):
    """None (all), a comma-separated string or names/aliases -> Table 2's preset names, in its row order."""
    from ..methods.registry import resolve_method

    if methods is None:
        return list(SHORT)
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m.strip()]
    chosen = set()
    for method in methods:
        name = resolve_method(method).name
        if name not in SHORT:
            raise ValueError(f"methods: {method!r} is not a method of the paper's tables; choose from "
                             f"{list(SHORT)} (or their aliases)")
        chosen.add(name)
    if not chosen:
        raise ValueError(f"methods: expected at least one of {list(SHORT)}, got none")
    return [m for m in SHORT if m in chosen]


def resolve_metrics(metrics=METRICS):
    """A comma-separated string or names -> metric names (each once, in the order given)."""
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    names = list(dict.fromkeys(metrics))
    unknown = [m for m in names if m not in LABELS]
    if unknown or not names:
        raise ValueError(f"metrics: expected names from {list(LABELS)}, got {list(metrics)}")
    return names


def plan(methods):
    """The units of Tables 1-3 for ``methods`` (preset names from `resolve_methods`), in computing order."""
    units = []
    if "guided_absolute_grad" in methods:
        units += [Unit(f"table1_p{p:02d}", 1, str(p), "guided_absolute_grad", {"p": p / 100}) for p in P_SWEEP]
    units += [Unit(f"table2_{m}", 2, SHORT[m], m) for m in methods]
    units += [Unit(f"table2_{m}_reversed", 2, SHORT[m] + "^R", m, {"reverse": REVERSE[m]})
              for m in methods if m in REVERSE]
    units += [Unit(f"table3_{family}_{name}", 3, variant, family, {"variant": variant})
              for variant, name in VARIANTS.items() for family in FAMILIES if family in methods]
    return units
