"""Checks of what users pass, made before any work: one-line errors that name the problem.

- :func:`check_keywords`: unknown keyword names, with a "did you mean" for a misspelling and
  the list of accepted names.
- :func:`check_signature`: a user's callable (a sampler, an initial-condition function) can
  be called the way ase-al will call it; the message states that contract.
- :class:`StrictParameters`: a calculator mixin that rejects parameters it does not know
  (ASE's :class:`~ase.calculators.calculator.Calculator` stores any keyword it is given, so
  ``PySCF(program="gaussian")`` would otherwise be silently ignored).
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable

_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def unknown_keyword(owner: str, name: str, accepted: Iterable[str]) -> TypeError:
    """The error for keyword ``name`` that ``owner`` does not take."""
    accepted = sorted(set(accepted))
    close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return TypeError(
        f"{owner} got an unknown keyword {name!r}{hint} Accepted: {', '.join(accepted)}"
    )


def check_keywords(owner: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """Raise :func:`unknown_keyword`'s ``TypeError`` for the first of ``given`` not accepted."""
    accepted = set(accepted)
    for name in given:
        if name not in accepted:
            raise unknown_keyword(owner, name, accepted)


def keyword_names(func: Callable) -> list[str]:
    """The parameters of ``func`` that can be passed by keyword."""
    return [p.name for p in inspect.signature(func).parameters.values() if p.kind in _KEYWORD_KINDS]


def takes_any_keyword(func: Callable) -> bool:
    """True if ``func`` has a ``**kwargs`` parameter."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def check_signature(func: Callable, contract: str, *args, **kwargs) -> None:
    """Raise a ``TypeError`` stating ``contract`` if ``func(*args, **kwargs)`` would not bind.

    Nothing is called: only the signature is compared with the call ase-al will make.
    """
    if not callable(func):
        raise TypeError(f"expected a callable: {contract}; got {type(func).__name__}")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        name = getattr(func, "__qualname__", type(func).__name__)
        raise TypeError(f"{name}{signature} does not fit: {contract} ({err})") from None


def check_defaults_kind(func: Callable, kwargs: dict, where: str) -> None:
    """Values for ``func``'s numeric parameters must be numbers, positive where the default
    is: ``time_step="0.5 fs"`` fails here, not in the middle of a sampling run."""
    import numbers

    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return
    for name, value in kwargs.items():
        parameter = parameters.get(name)
        if parameter is None:
            continue
        default = parameter.default
        if isinstance(default, bool) or not isinstance(default, numbers.Real):
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"{where}: {name} must be a number, got {type(value).__name__} ({value!r:.60})"
            )
        if default > 0 and not value > 0:
            raise ValueError(f"{where}: {name} must be positive, got {value}")


def _close(a, b, atol: float) -> bool:
    """ASE's ``equal(a, b, atol=atol)`` (``np.allclose`` with rtol 0) without its overhead on
    the small arrays of one molecule."""
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    same = a == b
    if same.all():
        return True
    if a.dtype.kind in "bOSU" or b.dtype.kind in "bOSU":
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.all(same | (np.abs(a - b) <= atol)))


def compare_atoms(atoms1, atoms2, tol: float = 1e-15, excluded_properties=()) -> list[str]:
    """What :func:`ase.calculators.calculator.compare_atoms` returns (the system changes
    since the last calculation, in the same order), several times faster: an MD step of a
    cheap calculator spent most of its time in ``np.allclose`` on 2×3 arrays."""
    from ase.calculators.calculator import all_changes

    if atoms1 is None:
        return all_changes[:]
    check = set(all_changes) - set(excluded_properties or ())
    changes = [
        p
        for p in ("cell", "pbc")
        if p in check and not _close(getattr(atoms1, p), getattr(atoms2, p), tol)
    ]
    check -= {"cell", "pbc"}
    arrays1, arrays2 = set(atoms1.arrays), set(atoms2.arrays)
    changes += check & (arrays1 ^ arrays2)
    for prop in check & arrays1 & arrays2:
        if not _close(atoms1.arrays[prop], atoms2.arrays[prop], tol):
            changes.append(prop)
    return changes


class StrictParameters:
    """Calculator mixin: ``set()`` accepts only the names in ``default_parameters``; the
    check for system changes is ASE's, done faster (:func:`compare_atoms`).

    Put it before :class:`~ase.calculators.calculator.Calculator` in the bases. The error
    lists what the class accepts: its constructor's named parameters and its
    ``default_parameters``.
    """

    def check_state(self, atoms, tol=1e-15):
        """ASE's ``Calculator.check_state``, with :func:`compare_atoms`."""
        return compare_atoms(self.atoms, atoms, tol, getattr(self, "ignored_changes", ()))

    @classmethod
    def extra_keywords(cls) -> Iterable[str]:
        """Keywords the constructor takes through ``**kwargs`` (listed in errors)."""
        return ()

    def set(self, **kwargs):
        accepted = set(getattr(self, "default_parameters", {}))
        for name in kwargs:
            if name not in accepted:
                raise unknown_keyword(type(self).__name__, name, accepted_parameters(type(self)))
        return super().set(**kwargs)


def accepted_parameters(cls) -> set[str]:
    """Every keyword the calculator class ``cls`` takes: named constructor parameters along
    its bases (up to ASE's ``Calculator``, whose ``restart``/``label``/``atoms``/``directory``
    count) and its ``default_parameters``."""
    from ase.calculators.calculator import Calculator

    names = set(getattr(cls, "default_parameters", {}))
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names.update(n for n in keyword_names(klass.__init__) if n != "self")
        if klass is Calculator:
            break
    names.update(getattr(cls, "extra_keywords", tuple)())
    names -= {"ignore_bad_restart_file"}
    return names


def check_type(name: str, value, types, optional: bool = False):
    """``value`` if it is an instance of ``types`` (or None with ``optional``), else a
    ``TypeError`` naming ``name``."""
    if value is None and optional:
        return value
    if not isinstance(value, types):
        wanted = types if isinstance(types, tuple) else (types,)
        raise TypeError(
            f"{name} must be {' or '.join(t.__name__ for t in wanted)}, "
            f"got {type(value).__name__} ({value!r:.60})"
        )
    return value


def check_number(name: str, value, minimum: float | None = None, optional: bool = False):
    """``value`` as a float, checked to be a real number ``>= minimum``."""
    import numbers

    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r:.60})")
    if value != value:
        raise ValueError(f"{name} must be a number, got nan")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return float(value)


def check_int(name: str, value, minimum: int | None = None) -> int:
    """``value`` as an int, checked to be an integer ``>= minimum``."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r:.60})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_threshold(value):
    """An uncertainty threshold in eV: None (automatic), a positive number, or a list of
    positive numbers (one per electronic state)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [check_number(f"uq_threshold[{i}]", v, minimum=0.0) for i, v in enumerate(value)]
    value = check_number("uq_threshold", value, minimum=0.0)
    if value == 0.0:
        raise ValueError("uq_threshold must be positive (eV), got 0")
    return value


def check_executor(executor):
    """None (the default pool) or an object with ``submit`` (a concurrent.futures.Executor,
    Dask's ``client.get_executor()``)."""
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            "executor must be a concurrent.futures.Executor (e.g. "
            "dask.distributed.Client(...).get_executor()), got "
            f"{type(executor).__name__}"
        )
    return executor


def check_calculator(value, name: str):
    """A method name (resolved now, so that an unknown one fails before any work) or an ASE
    calculator."""
    from ase.calculators.calculator import BaseCalculator

    if isinstance(value, str):
        from ase_al.calculators import methods

        methods(value)
        return value
    if not isinstance(value, BaseCalculator):
        raise TypeError(
            f"{name} must be a method name (e.g. 'GFN2-xTB', 'B3LYP/6-31G*') or an ASE "
            f"calculator, got {type(value).__name__}"
        )
    return value


def renamed(kwargs: dict, old: str, new: str, convert=None, owner: str = "") -> dict:
    """Accept the old keyword ``old`` for one release: a ``FutureWarning``, then its value
    (through ``convert``) under ``new``. Returns ``kwargs`` (changed in place)."""
    if old in kwargs:
        import warnings

        if new in kwargs:
            raise TypeError(f"{owner} got both {old!r} (old name) and {new!r}: give {new!r}")
        value = kwargs.pop(old)
        warnings.warn(
            f"{owner + ': ' if owner else ''}{old!r} is now {new!r}"
            + (" (see the docstring for its meaning)" if convert else "")
            + "; the old name goes in the next release",
            FutureWarning,
            stacklevel=3,
        )
        kwargs[new] = convert(value) if convert else value
    return kwargs


def renames(**old_to_new: str):
    """Decorate a function whose keywords were renamed: the old names keep working for one
    release with a ``FutureWarning``. The mapping is kept as ``func.renamed_keywords``."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for old, new in old_to_new.items():
                renamed(kwargs, old, new, owner=func.__name__)
            return func(*args, **kwargs)

        wrapper.renamed_keywords = dict(old_to_new)
        return wrapper

    return decorate
