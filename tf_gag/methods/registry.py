"""The method registry, and how a `Method` becomes the parts the engine runs.

One registry holds every method by name: the built-ins of
`tf_gag.methods.presets`, registered here in their order, and the user's
(`register_method`). Everything that lists methods reads it: `list_methods`,
the command line's choices, the public classes and the tests' matrix.

Options: each part declares its own (``options``: name -> default) and
validates them when built. A method's options are the union of its parts'
options, ``objective``, ``noise_samples`` (and its noise settings) for a
method that does not sample noise itself, ``idgi`` for a path method
(`tf_gag.methods.idgi`), and the method's own ``defaults``.
Two parts that declare the same option name are refused when the method is
resolved, naming both, so one option never silently sets two parts. A slot
holding a configured part contributes no options (they are fixed).

The registry is the only process-wide state of the library: additions take a
lock, and an entry, once registered, is never replaced or removed.
"""
import threading
from dataclasses import dataclass
from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from ..io.checks import check_choice
from .cams import CAMS
from .composites import COMPOSITES
from .engine import Parts
from .folds import FOLDS
from .idgi import IDGI
from .interpretations import INTERPRETATIONS
from .kernel import OBJECTIVES
from .method import VARIANTS, Method
from .modifications import MODIFICATIONS, GaussianNoise, Noised
from .part import Part
from .post import POST_STAGES
from .presets import BUILTIN
from .rules import RULES
from .sources import SOURCES

#: slot -> {registered part name: part class}.
PARTS = {
    "source": SOURCES, "rule": {**RULES, **COMPOSITES}, "modification": MODIFICATIONS,
    "interpretation": INTERPRETATIONS, "fold": FOLDS, "cam": CAMS, "post": POST_STAGES,
}
#: Options every method takes.
COMMON_OPTIONS = {"objective": "logit"}
#: What `resolve_method` calls a `Method` that was passed without being registered.
UNREGISTERED = "composed"


@dataclass(frozen=True)
class Entry:
    """A registered method: its name, aliases, the `Method`, and its public class's name (built-ins only)."""

    name: str
    aliases: Tuple[str, ...]
    method: Method
    class_name: Optional[str] = None


class Resolved(NamedTuple):
    """A method as a call names it: its registered name (or `UNREGISTERED`) and its `Method`."""

    name: str
    method: Method


def _key(name):
    return name.strip().lower().replace("-", "_")


def _part_class(slot, part):
    """The class filling ``slot`` (None for an empty slot): from a registered name, a class or a configured part."""
    if part is None:
        return None
    if isinstance(part, str):
        return PARTS[slot][check_choice(slot, part, PARTS[slot])]
    if isinstance(part, type) and issubclass(part, Part):
        return part
    if isinstance(part, Part):
        return type(part)
    raise ValueError(f"{slot}: expected a part name (one of {sorted(PARTS[slot])}), a part class or a part, got "
                     f"{part!r}")


def slots(method, variant=None, name=UNREGISTERED):
    """{slot: what fills it} of a `Method` (called ``name``) with an ablation ``variant`` applied (None: as
    declared)."""
    filled = dict(method.slots())
    if variant is None:
        return filled
    if not method.variants:
        raise ValueError(f"variant: {name} has no ablation variants; methods with variants: "
                         f"{sorted(e.name for e in REGISTRY.entries() if e.method.variants)}")
    check_choice("variant", variant, VARIANTS)
    filled["interpretation"], filled["fold"] = VARIANTS[variant]
    if FOLDS[filled["fold"]].min_samples > 1 and filled["modification"] == "identity":
        filled["modification"] = "noise"
    return filled


def option_defaults(method, variant=None, name=UNREGISTERED):
    """Every option ``method`` (with ``variant``) takes, with its default; refuses two parts sharing an option."""
    options, owner = dict(COMMON_OPTIONS), dict.fromkeys(COMMON_OPTIONS, "every method")
    filled = slots(method, variant, name)
    for slot, part in filled.items():
        if isinstance(part, Part):
            continue  # a configured part: its options are fixed
        cls = _part_class(slot, part)
        for option, default in cls.options.items():
            if option in owner:
                raise ValueError(
                    f"{slot}: option {option!r} of {cls.__name__} is also an option of {owner[option]}; one option "
                    "cannot set two parts: configure one of them as a part (e.g. "
                    f"{cls.__name__}({option}=...)) instead of by name"
                )
            options[option], owner[option] = default, f"{cls.__name__} ({slot})"
    modification = _part_class("modification", filled["modification"])
    if modification is not GaussianNoise:
        options.update(Noised.options)
        if variant is not None and FOLDS[filled["fold"]].min_samples > 1 and not modification.options:
            # a variance of a single-job method (input x gradient) samples it under the paper's n noisy copies
            options["noise_samples"] = GaussianNoise.options["n_samples"]
    if hasattr(modification, "path_point") or hasattr(modification, "points"):
        options.update(IDGI.options)
    unknown = sorted(set(method.defaults) - set(options))
    if unknown:
        raise ValueError(f"defaults: {unknown} are not options of this method's parts; its options: {sorted(options)}")
    options.update(method.defaults)
    return options


def build_parts(method, variant, options, black=None, name=UNREGISTERED):
    """The `Parts` of ``method`` from ``options`` (every key of `option_defaults`), each checked by its part."""
    check_choice("objective", options["objective"], OBJECTIVES)
    built = {}
    for slot, part in slots(method, variant, name).items():
        if isinstance(part, Part):
            built[slot] = part
            continue
        cls = _part_class(slot, part)
        extra = {"black": black} if getattr(cls, "needs_black", False) else {}
        built[slot] = cls(**{key: options[key] for key in cls.options}, **extra)
    modification = built["modification"]
    if "idgi" in options and IDGI.check_options(options["idgi"]):
        modification = IDGI(modification)
    if "noise_samples" in options:  # a method without noise of its own, run over noisy copies when > 0
        noise = {key: options[key] for key in Noised.options}
        if Noised.check_options(**noise):
            modification = Noised(modification, **noise)
    fold = built["fold"]
    if modification.n_jobs < fold.min_samples:
        options_of = type(built["modification"]).options
        name = "n_samples" if isinstance(built["modification"], GaussianNoise) else (
            "steps" if "steps" in options_of else "noise_samples")  # a single-job method samples only under noise
        raise ValueError(f"{name}: a variance needs at least {fold.min_samples} samples, got {modification.n_jobs}")
    return Parts(built["source"], built["rule"], modification, built["interpretation"], fold, options["objective"],
                 cam=built.get("cam"), post=built["post"])


class Registry:
    """Methods by name and alias (case-insensitive, ``-`` read as ``_``), in registration order; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: Dict[str, Entry] = {}
        self._aliases: Dict[str, str] = {}

    def register(self, name, method, aliases=(), class_name=None):
        """Add ``method`` under ``name`` and ``aliases``; its parts and options are checked first."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name: expected a non-empty method name, got {name!r}")
        if not isinstance(method, Method):
            raise ValueError(f"method: expected a tf_gag.Method, got {type(method).__name__}")
        if isinstance(aliases, str) or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise ValueError(f"aliases: expected a list of non-empty names, got {aliases!r}")
        option_defaults(method)  # refuses unknown parts and colliding options now, not at the first call
        keys = [_key(name)] + [_key(a) for a in aliases]
        with self._lock:
            taken = [k for k in keys if k in self._aliases]
            if taken or len(set(keys)) < len(keys):
                raise ValueError(f"name: {sorted(set(taken)) or keys} already name a method; names are never "
                                 "replaced, choose another")
            entry = Entry(_key(name), tuple(aliases), method, class_name)
            self._entries[entry.name] = entry
            self._aliases.update(dict.fromkeys(keys, entry.name))
        return entry

    def entries(self):
        """The registered `Entry` s, in registration order (a snapshot)."""
        with self._lock:
            return tuple(self._entries.values())

    def names(self) -> Mapping[str, str]:
        """{name or alias: method name} (a snapshot)."""
        with self._lock:
            return dict(self._aliases)

    def get(self, name):
        """The `Entry` of a name or alias, or a ValueError naming the choices."""
        key = _key(name)
        with self._lock:
            if key in self._aliases:
                return self._entries[self._aliases[key]]
            choices = sorted(self._aliases)
        raise ValueError(f"method: unknown method {name!r}; choose one of {choices}")


REGISTRY = Registry()
for _builtin in BUILTIN:
    REGISTRY.register(_builtin.name, _builtin.method, _builtin.aliases, _builtin.class_name)


def register_method(name: str, method: Method, *, aliases: Sequence[str] = ()) -> str:
    """Register a composed `Method` under ``name`` (and ``aliases``), usable by name everywhere afterwards.

    Its parts and options are checked now. Names are case-insensitive; a
    name or alias already taken is refused (a registered method is never
    replaced). Returns the registered name.
    """
    return REGISTRY.register(name, method, aliases).name


def resolve_method(method: Union[str, Method]) -> Resolved:
    """`Resolved` for a method name or alias (case-insensitive) or a `Method` (registered or not)."""
    if isinstance(method, Method):
        for entry in REGISTRY.entries():
            if entry.method == method:
                return Resolved(entry.name, method)
        return Resolved(UNREGISTERED, method)
    if not isinstance(method, str):
        raise ValueError(f"method: expected a method name (str) or a tf_gag.Method, got {type(method).__name__}")
    entry = REGISTRY.get(method)
    return Resolved(entry.name, entry.method)


def describe(entry):
    """{"aliases", "summary", "parts", "options", "variants"} of a registered `Entry`, for `list_methods`."""
    method = entry.method
    return {
        "aliases": list(entry.aliases),
        "summary": method.summary,
        "parts": {slot: _name(slot, part) for slot, part in method.slots()},
        "options": option_defaults(method),
        "variants": list(VARIANTS) if method.variants else [],
    }


def _name(slot, part):
    """A slot's content as text: a registered name, a class's name, or a configured part's repr."""
    if isinstance(part, str):
        return part
    if isinstance(part, Part):
        return repr(part)
    return part.name or part.__name__

